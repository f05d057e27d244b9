"""The runner both scripts share: operations in, one plan, paced writes, a write-ahead log.

    arguments or CSV or log -> Operation.request -> bulk lookup -> Operation.plan -> [Change]
    -> (dry run: print) -> pool paced to Canvas's limit: intent, write, result -> report

A script declares one Operation: its columns, how values become a frozen
request, and how a request and the user's enrollments become Changes. The
runner does the rest the same way for one user, a CSV file or an undo: it
looks users up in bulk, plans, and applies the changes through a pool whose
size follows Canvas's rate limiter. Before every write it appends an intent to
the audit log and fsyncs; after Canvas answers it appends the result. A run cut
short is continued by running the same command again (same job), and
--undo puts back a whole job, settling any intent whose answer was lost by
looking at Canvas.
"""

from __future__ import annotations

import argparse
import codecs
import csv
import dataclasses
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import canvas_common as cc
import canvas_journal as audit

DEFAULT_LOG = "enrollments.audit.jsonl"
DEFAULT_WORKERS = 16
BLOCK_ROWS = 1000
MAX_LISTED = 50  # failed rows named in the summary; --json has them all
EXIT_OUTPUT_CLOSED = 141  # as a shell reports a command stopped by SIGPIPE


# --- options ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Options:
    """Everything a run needs from the command line, in one place."""

    prog: str
    argv: tuple[str, ...] = ()
    single: dict | None = None  # values of one user from the command line
    csv: str | None = None
    undo: str | None = None
    run_id: str | None = None
    config: str | None = None
    dry_run: bool = False
    as_json: bool = False
    verbose: bool = False
    timeout: float = 30.0
    retries: int = 5
    workers: int = DEFAULT_WORKERS
    log: str | None = None
    ca_bundle: str | None = None
    extra: dict = dataclasses.field(default_factory=dict)  # an operation's own options

    @property
    def log_path(self) -> str | None:
        """Batches and undo always log; one user only when --log is given."""
        if self.dry_run:
            return None
        return self.log or self.undo or (None if self.single is not None else DEFAULT_LOG)


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other error here."""

    argv: list = []

    def parse_args(self, args=None, namespace=None):
        self.argv = list(sys.argv[1:] if args is None else args)
        return super().parse_args(self.argv, namespace)

    def error(self, message):
        dashed = [a for a in self.argv if a.startswith("-") and a != "--" and
                  a.split("=", 1)[0] not in self._option_string_actions]
        hint = f"; a SIS ID that starts with '-' goes after --, as in: {self.prog} [options] -- " \
               f"COURSE {dashed[0]} ..." if dashed and "--" not in self.argv else ""
        self.exit(cc.EXIT_USAGE, f"{self.prog}: error: {message}{hint} (see --help)\n")


def build_parser(operation: Operation, usage: str, description: str) -> Parser:
    parser = Parser(prog=operation.prog, usage=usage, description=description)
    operation.add_arguments(parser)
    parser.add_argument("--config", metavar="FILE",
                        help="JSON config file (default: CANVAS_URL/CANVAS_TOKEN, else ./config.json)")
    parser.add_argument("--dry-run", action="store_true",
                        help="look up and say what would change; change nothing")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per line per enrollment")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show each request and its status on stderr (token redacted)")
    parser.add_argument("--timeout", type=positive_float, default=30.0, metavar="SECONDS",
                        help="seconds to wait for each Canvas answer (default: 30)")
    parser.add_argument("--retries", type=non_negative_int, default=5, metavar="N",
                        help="retries after throttling or a Canvas outage (default: 5)")
    parser.add_argument("--ca-bundle", metavar="FILE",
                        help="trust the CA certificates in this PEM file (a network that inspects "
                             "TLS); default: the config's ca_bundle, else REQUESTS_CA_BUNDLE, "
                             "else SSL_CERT_FILE, else the usual ones")
    parser.add_argument("--version", action="version", version=f"%(prog)s {cc.__version__}")
    group = parser.add_argument_group("batches and undo")
    group.add_argument("--csv", metavar="FILE",
                       help=f"run every row of this CSV file ('-' reads stdin); columns: "
                            f"{', '.join(operation.columns)}"
                            + (f" [, {', '.join(operation.optional)}]" if operation.optional else ""))
    group.add_argument("--undo", metavar="LOG",
                       help="put back everything the last job recorded in this audit log changed")
    group.add_argument("--run", metavar="ID", help="with --undo: the job or run to undo")
    group.add_argument("--workers", type=_workers, default=DEFAULT_WORKERS, metavar="N",
                       help="most writes in flight at once, 1-32; fewer when Canvas's rate "
                            f"limiter asks (default: {DEFAULT_WORKERS})")
    group.add_argument("--log", metavar="FILE",
                       help=f"audit log to append to (batches default to ./{DEFAULT_LOG})")
    return parser


def parse_options(operation: Operation, parser: Parser, argv) -> Options:
    """Check the combination of arguments; one usage line if it is wrong."""
    args = parser.parse_args(argv)
    single = operation.single_values(args)
    ways = (single is not None) + (args.csv is not None) + (args.undo is not None)
    if ways != 1 or single == {}:
        parser.error(f"give {operation.usage_line}, or --csv FILE, or --undo LOG")
    if single is None and operation.per_user_options(args):
        parser.error(f"{'/'.join(operation.per_user_options(args))} go with one user: "
                     "with --csv, give them as CSV columns")
    if args.run and args.undo is None:
        parser.error("--run goes with --undo LOG")
    return Options(prog=parser.prog, argv=tuple(argv), single=single, csv=args.csv,
                   undo=args.undo, run_id=args.run, config=args.config, dry_run=args.dry_run,
                   as_json=args.json, verbose=args.verbose, timeout=args.timeout,
                   retries=args.retries, workers=args.workers, log=args.log, ca_bundle=args.ca_bundle,
                   extra=operation.extra_options(args))


def arg_type(parse):
    """Wrap a parse_* function so argparse reports its ValueError as a usage error."""
    def convert(text):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = parse.__name__.replace("parse_", "")
    return convert


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, not {text!r}")
    return value


def non_negative_int(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}")
    return int(text)


def _workers(text):
    value = non_negative_int(text)
    if not 1 <= value <= 32:
        raise argparse.ArgumentTypeError("--workers must be from 1 to 32")
    return value


# --- what flows from plan to apply ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Request:
    """One user's row, checked: what an Operation plans from."""

    course: str
    sis_id: str
    line: int = 0


@dataclasses.dataclass(frozen=True)
class Change:
    """One enrollment's planned, made or failed change; --json prints these fields."""

    course_id: str
    sis_user_id: str
    action: str  # created, deactivated, reactivated, deleted, unchanged, failed
    enrollment_id: int | None = None
    role: str | None = None
    section_id: int | None = None
    before: str | None = None
    after: str | None = None
    dry_run: bool = False
    error: str | None = None
    section: str | None = dataclasses.field(default=None, compare=False)  # as asked, for a POST
    notify: bool = dataclasses.field(default=False, compare=False)
    section_name: str | None = dataclasses.field(default=None, compare=False)  # for the text
    hint: str = dataclasses.field(default="", compare=False)

    @classmethod
    def of_row(cls, request: Request, row: dict, action: str, after=None, **extra) -> Change:
        return cls(request.course, request.sis_id, action, row.get("id"),
                   row.get("role") or row.get("type"), row.get("course_section_id"),
                   row.get("enrollment_state"), after or row.get("enrollment_state"), **extra)

    def failed(self, error: str) -> Change:
        return dataclasses.replace(self, action="failed", error=error, after=self.before)

    def as_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("section", "notify", "section_name", "hint")}
        if self.error is None:
            del data["error"]
        if self.action == "created":  # the section as asked: where a new enrollment goes
            data["section"] = self.section or "default"
        return data

    def intent_fields(self) -> dict:
        """What the audit log records before the write: enough to undo or settle it."""
        fields = self.as_dict()
        del fields["dry_run"]
        return {**fields, "section": self.section}

    def result_fields(self) -> dict:
        return {"action": self.action, "enrollment_id": self.enrollment_id,
                "section_id": self.section_id, "after": self.after,
                **({"error": self.error} if self.error else {})}

    def describe(self) -> str:
        who = f"{self.sis_user_id} in course {self.course_id}"
        what = f"enrollment {self.enrollment_id} ({self.role}, section {self.section_id})"
        if self.action == "failed":
            text = f"{who}: failed: {self.error}"
        elif self.action == "unchanged":
            text = f"{who}: {what} is already {self.before}; nothing to do"
        elif self.action == "created" and self.dry_run:
            where = "the course's default section" if not self.section else \
                f"section {self.section_id}" + (f" ({self.section_name})" if self.section_name else "")
            text = f"would enroll {who} as {self.role} ({self.after}) in {where}"
        elif self.action == "created":
            text = f"enrolled {who}: {what} {self.after}"
        else:
            verb = f"would be {self.action}" if self.dry_run else self.action
            text = f"{who}: {what} {verb}: {self.before} -> {self.after}"
        return text + (f"; {self.hint}" if self.hint else "")


class Operation:
    """What a script declares; the runner does everything else.

    A subclass names its CSV columns, adds its arguments, turns values (from the
    command line, a CSV row or the log) into a Request, and plans Changes from a
    Request and the user's active and inactive enrollments. Applying a Change is
    the same Canvas call whatever planned it.
    """

    name = ""
    prog = ""
    columns: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    usage_line = "COURSE SIS_ID ..."

    def add_arguments(self, parser: Parser) -> None:
        """COURSE and SIS_ID, then the operation's own arguments."""
        parser.add_argument("course", nargs="?", metavar="COURSE", type=arg_type(cc.parse_course),
                            help="course id (12345) or sis_course_id:XYZ")
        parser.add_argument("sis_id", nargs="?", type=arg_type(cc.parse_sis_id), metavar="SIS_ID",
                            help="the user's SIS ID (exact, case-sensitive)")
        self.add_own_arguments(parser)

    def add_own_arguments(self, parser: Parser) -> None:
        """The third positional (named as the third column) and options named as the optional columns."""
        raise NotImplementedError

    def single_values(self, args) -> dict | None:
        """The command line's one user as CSV-like values; None for --csv/--undo, {} if incomplete."""
        third = self.columns[2]
        if args.course is None and args.sis_id is None:
            return None
        if args.sis_id is None or getattr(args, third) is None:
            return {}
        return {"course_id": args.course, "sis_user_id": args.sis_id, third: getattr(args, third),
                **{column: getattr(args, column) for column in self.optional}}

    def per_user_options(self, args) -> list[str]:
        """Options given that only make sense for one user (refused with --csv)."""
        return [f"--{column}" for column in self.optional if getattr(args, column)]

    def extra_options(self, args) -> dict:
        return {}

    def request(self, values: dict, options: Options, line: int = 0) -> Request:
        """Check one row's values as the command line checks them; ValueError if bad."""
        raise NotImplementedError

    def plan(self, canvas: cc.Canvas, request: Request, rows: list[dict], dry_run: bool) -> list[Change]:
        raise NotImplementedError

    def log_fields(self) -> dict:
        """What the start record of a run says beyond the command."""
        return {}

    def job_key(self, options: Options, source_digest: str) -> str:
        """Runs with the same key continue one job."""
        extra = json.dumps(options.extra, sort_keys=True)
        return hashlib.sha256(f"{self.name}\0{source_digest}\0{extra}".encode()).hexdigest()[:16]


# --- applying a change: the same Canvas calls for every operation --------------------


def apply(canvas: cc.Canvas, change: Change) -> Change:
    """Make one change in Canvas; return it with what Canvas made."""
    if change.action == "created":
        row = create(canvas, change)
        return dataclasses.replace(change, enrollment_id=row.get("id"), role=row.get("role") or change.role,
                                   section_id=row.get("course_section_id"),
                                   after=row.get("enrollment_state"))
    calls = {"deactivated": canvas.deactivate, "reactivated": canvas.reactivate,
             "deleted": canvas.delete}
    body = calls[change.action](change.course_id, change.enrollment_id)
    if cc.state_group(body.get("enrollment_state")) != cc.state_group(change.after):
        raise cc.CanvasBadResponse(
            f"Canvas answered that enrollment {change.enrollment_id} is "
            f"{body.get('enrollment_state')!r}, not {change.after!r}")
    return dataclasses.replace(change, after=body.get("enrollment_state"))


def create(canvas: cc.Canvas, change: Change) -> dict:
    """POST the enrollment; a 404 with a section given names whichever is missing."""
    try:
        return canvas.enroll(change.course_id, change.sis_user_id, change.role, change.after,
                             change.section, change.notify)
    except cc.CanvasNotFound:
        if change.section and canvas.user_exists(cc.sis_ref("sis_user_id", change.sis_user_id)):
            raise cc.CanvasNotFound(
                f"section {change.section} not found in course {change.course_id}") from None
        raise cc.no_such_user(change.sis_user_id) from None


def write(canvas: cc.Canvas, change: Change) -> Change:
    """Apply with care: after an unclear failure, or a refusal because the enrollment
    is no longer as planned, look at Canvas before (never blindly) writing again."""
    for attempt in range(3):
        try:
            return apply(canvas, change)
        except cc.CanvasError as exc:
            refused = isinstance(exc, cc.CanvasBadRequest) and change.action != "created"
            if not (exc.unclear or refused) or attempt == 2:
                raise
            seen = observe(canvas, change)
            if seen is None and not exc.unclear:
                raise  # refused, and not done: writing again would be refused again
            if seen is not None:
                return seen if exc.unclear else dataclasses.replace(
                    seen, action="unchanged", before=seen.after,
                    hint="already so in Canvas (a linked enrollment, or someone else, changed it)")


def observe(canvas: cc.Canvas, change: Change) -> Change | None:
    """The change as Canvas shows it now, if Canvas shows it made; else None (2 lookups)."""
    rows = cc.user_enrollments(canvas, change.course_id, change.sis_user_id)
    return observed(change, rows)


def observed(change: Change, rows: list[dict]) -> Change | None:
    if change.action == "created":
        row = next((r for r in rows if r.get("role") == change.role and
                    (change.enrollment_id is None or r.get("id") == change.enrollment_id) and
                    cc.section_matches(r, change.section)), None)
        if row is None:
            return None
        return dataclasses.replace(change, enrollment_id=row["id"], section_id=row.get("course_section_id"),
                                   after=row.get("enrollment_state"))
    row = next((r for r in rows if r.get("id") == change.enrollment_id), None)
    now = row.get("enrollment_state") if row else "deleted"
    if change.action == "deleted":
        return dataclasses.replace(change, after="deleted") if row is None else None
    return dataclasses.replace(change, after=now) if cc.state_group(now) == cc.state_group(change.after) else None


# --- sources of rows: the command line, a CSV file, an audit log ------------------------


def open_csv(path: str):
    """The CSV as a seekable binary file (a pipe or stdin is spooled to disk); ConfigError if unreadable."""
    try:
        source = sys.stdin.buffer if path == "-" else open(path, "rb")
        if path != "-" and source.seekable():
            return source
        spool = tempfile.TemporaryFile()  # it is read twice: checked whole, then run
        with source:
            shutil.copyfileobj(source, spool)
        spool.seek(0)
        return spool
    except OSError as exc:
        raise cc.ConfigError(f"cannot read CSV file {path}: {exc.strerror}") from None


def digest(raw) -> str:
    raw.seek(0)
    return hashlib.file_digest(raw, "sha256").hexdigest() if hasattr(hashlib, "file_digest") \
        else hashlib.sha256(raw.read()).hexdigest()


def text_lines(raw, name: str):
    """Decode line by line, so a bad byte is reported with its line number.

    Lines end in LF, CRLF or a lone CR (old Mac Excel); each comes out ending in LF.
    """
    raw.seek(0)
    number = 0
    for chunk in raw:
        for line in chunk.splitlines(keepends=True):
            number += 1
            try:
                text = line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise cc.ConfigError(
                    f"{name} line {number}: not UTF-8 text; save the file as UTF-8 (in Excel: "
                    "Save As, 'CSV UTF-8 (Comma delimited)')") from None
            yield text.rstrip("\r\n") + "\n" if text.endswith(("\r", "\n")) else text


def column_name(text: str) -> str:
    """'Course ID', 'course_id' and ' COURSE  id' are one column."""
    return re.sub(r"[\s_]+", "_", text.strip().lower())


def csv_reader(raw, columns, name: str):
    """(header, reader) with the delimiter the header line uses: ',' ';' or tab (Excel's)."""
    first = next(text_lines(raw, name), "")
    def found(delimiter):
        names = [column_name(h) for h in next(csv.reader([first], delimiter=delimiter), [])]
        return sum(c in names for c in columns), len(names)
    delimiter = max([",", ";", "\t"], key=found)
    reader = csv.reader(text_lines(raw, name), delimiter=delimiter, strict=True)
    header = [column_name(h) for h in next(reader, None) or []]
    return header, reader


def check_csv(raw, columns, name: str) -> int:
    """Refuse a bad file before any change: every error names its line. Returns the row count."""
    count, reader = 0, None
    try:
        header, reader = csv_reader(raw, columns, name)
        if not header:
            raise cc.ConfigError(f"{name}: empty file; the first line must name the columns "
                                 f"({', '.join(columns)})")
        missing = [c for c in columns if c not in header]
        if missing:
            raise cc.ConfigError(f"{name} line 1: missing column(s) {', '.join(missing)}; "
                                 f"the header has: {', '.join(header)}")
        needed = max(header.index(c) for c in columns) + 1
        course = header.index("course_id")
        for fields in reader:
            if fields and len(fields) < needed:
                raise cc.ConfigError(f"{name} line {reader.line_num}: only {len(fields)} field(s), "
                                     f"expected {len(header)}")
            if fields and any(v.strip() for v in fields):
                try:  # as on the command line: a malformed course refuses the whole file
                    cc.parse_course(fields[course])
                except ValueError as exc:
                    raise cc.ConfigError(f"{name} line {reader.line_num}: {exc}") from None
                count += 1
    except csv.Error as exc:
        line = reader.line_num if reader else 1
        raise cc.ConfigError(f"{name} line {line}: not valid CSV ({exc})") from None
    return count


def csv_rows(raw, columns, name: str):
    """(line number, {column: value}) for each non-blank row; values exactly as written."""
    header, reader = csv_reader(raw, columns, name)
    for fields in reader:
        if fields and any(v.strip() for v in fields):
            yield reader.line_num, dict(zip(header, fields))


# --- the write-ahead audit log: what its records mean in Canvas -------------------------


def settle(canvas: cc.Canvas, journal: audit.Journal | None, intents: list[dict]) -> list[dict]:
    """Close intents whose answer was lost: done if Canvas shows the change, else not done."""
    made = []
    for course in dict.fromkeys(i["course_id"] for i in intents):
        mine = [i for i in intents if i["course_id"] == course]
        found = cc.users_enrollments(canvas, course, [i["sis_user_id"] for i in mine])
        for intent in mine:
            change = change_of(intent)
            seen = observed(change, found.get(intent["sis_user_id"], []))
            outcome = seen or dataclasses.replace(change, action="not done", after=change.before)
            if journal:
                journal.result(intent["seq"], outcome.result_fields(), of_run=intent["run"], settled=True)
            if seen:
                made.append({**intent, "enrollment_id": seen.enrollment_id,
                             "section_id": seen.section_id, "after": seen.after})
    return made


def change_of(entry: dict) -> Change:
    names = {f.name for f in dataclasses.fields(Change)}
    return Change(**{k: v for k, v in entry.items() if k in names})


# --- pacing at Canvas's limit ---------------------------------------------------------


class Pacer:
    """How many requests may be in flight: as many as Canvas's rate limiter allows.

    Canvas reserves 50 units of its bucket (600) for every request in flight
    and refuses one that would reach the mark, so the room left in
    X-Rate-Limit-Remaining says how many more it will take. Additive increase
    while there is room for several more; multiplicative decrease, at once, when
    it runs low or a request is throttled; never past the cap (--workers).
    """

    ROOM = 150.0  # three more reservations fit: grow
    LOW = 100.0  # fewer than two fit: shrink before Canvas refuses
    RESERVED, OUTFLOW = 50.0, 10.0  # Canvas's defaults: reserved per request, leaked per second

    def __init__(self, cap: int):
        self.cap, self.limit, self.in_flight = cap, min(2.0, cap), 0
        self.slow_start = True  # double per round trip until Canvas first pushes back
        self.calm = 0  # answers to wait after a decrease before the next one
        self.not_before = 0.0  # when the bucket itself is near full: wait for its outflow
        self.lock = threading.Lock()

    def acquire(self):
        # polled: a Condition.wait interrupted by Ctrl-C can leave its lock broken
        while True:
            with self.lock:
                if self.in_flight < int(self.limit) and time.monotonic() >= self.not_before:
                    self.in_flight += 1
                    return
            time.sleep(0.002)

    def release(self):
        with self.lock:
            self.in_flight -= 1

    def observe(self, remaining: float | None, throttled: bool):
        """Called by the Canvas client for every answer."""
        with self.lock:
            self.calm = max(0, self.calm - 1)
            if remaining is not None:
                # the room left once the other requests in flight give back their reservations
                room = remaining + self.RESERVED * max(0, self.in_flight - 1)
                if room < self.LOW:  # concurrency is not the limit now, the outflow is
                    self.not_before = max(self.not_before,
                                          time.monotonic() + (self.LOW - room) / self.OUTFLOW)
            if throttled or (remaining is not None and remaining < self.LOW):
                if not self.calm:
                    self.limit = max(1.0, self.limit * (0.5 if throttled else 0.8))
                    self.slow_start, self.calm = False, max(1, self.in_flight)
            elif remaining is None or remaining >= self.ROOM:
                step = 1.0 if self.slow_start else 1.0 / self.limit
                self.limit = min(float(self.cap), self.limit + step)


# --- the runner -----------------------------------------------------------------------


class Terminated(Exception):
    """SIGTERM, raised in the main thread so a run stops as on Ctrl-C."""


class OutputClosed(Exception):
    """stdout was closed (| head): a run stops as on Ctrl-C."""


def run(operation: Operation, options: Options) -> int:
    """Run one operation to the end; the one place errors and interrupts become output."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):  # what a console cannot show is escaped, never a crash
            stream.reconfigure(errors="backslashreplace")
    try:
        if options.undo is not None:
            operation = Undo(operation.prog)
        with Run(operation, options) as job:
            return job.execute()
    except cc.CanvasError as exc:
        print(f"{options.prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{options.prog}: interrupted", file=sys.stderr)
        return 130


class Run:
    """One run: a source of rows, Canvas, the journal, the pool, and the report."""

    def __init__(self, operation: Operation, options: Options):
        self.operation, self.options = operation, options
        self.single = options.single is not None
        self.report = Report(options, batch=not self.single)
        self.canvas = cc.connect(options.config, options.timeout, options.retries, options.verbose,
                                 pool=1 if self.single else options.workers, ca_bundle=options.ca_bundle)
        self.report.token = self.canvas.config.token
        self.pacer = Pacer(1 if self.single else options.workers)
        self.canvas.observer = self.pacer.observe
        self.journal = None
        self.raw = None  # the CSV file, read twice
        self.planned: dict = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.journal:
            self.journal.close()
        if self.raw:
            self.raw.close()

    def execute(self) -> int:
        rows, total, source_digest = self.source()
        previous = signal.signal(signal.SIGTERM, _raise_terminated) \
            if threading.current_thread() is threading.main_thread() else None
        status = "stopped"
        try:
            self.open_journal(source_digest)
            if self.options.undo is not None:
                rows = self.operation.rows(self.canvas, self.journal, self.report.warn)
                total = len(rows)
                if not rows:
                    return cc.EXIT_OK
            self.report.total = total
            self.process(rows)
            status = "finished"
        except KeyboardInterrupt:
            return self.stop("interrupted", 130)
        except Terminated:
            return self.stop("terminated", 143)
        except OutputClosed:
            return self.stop("stopped: stdout was closed", EXIT_OUTPUT_CLOSED)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            if self.journal:
                self.journal.end(status, self.report.counts)
        return self.report.finish()

    def stop(self, word: str, code: int) -> int:
        self.report.finish(stopped=f"{self.options.prog}: {word}")
        return code

    def source(self):
        """(rows, count, digest): the rows to run, however they were given."""
        options = self.options
        if self.single:
            values = options.single
            return [(0, values)], 1, json.dumps(values, sort_keys=True)
        if options.undo is not None:
            return None, 0, "undo:" + self.operation.select(options, self.report.warn)
        name = "stdin" if options.csv == "-" else options.csv
        self.raw = raw = open_csv(options.csv)
        total = check_csv(raw, self.operation.columns, name)
        return csv_rows(raw, self.operation.columns, name), total, digest(raw)

    def open_journal(self, source_digest: str):
        """Start (or continue) the job in the log; settle what a cut-short run left open."""
        path = self.options.log_path
        if path is None:
            return
        key = self.operation.job_key(self.options, source_digest)
        entries = audit.read_log(path, self.report.warn) if os.path.exists(path) else []
        self.journal = self.journal or audit.Journal(path, self.canvas.config.token)
        last = audit.open_job(entries, key)
        self.journal.start(" ".join((self.options.prog, *self.options.argv)), self.operation.name,
                           key, continues=last, **self.operation.log_fields())
        if last:
            settle(self.canvas, self.journal, audit.job_writes(entries, last["job"])[1])

    def process(self, rows):
        """Plan and apply block by block; a block's writes land before the next block's lookups."""
        with ThreadPoolExecutor(max(1, self.options.workers)) as pool:
            self.pool, self.pending = pool, set()
            try:
                block = []
                for row in rows:
                    block.append(row)
                    if len(block) == BLOCK_ROWS:
                        self.run_block(block)
                        block = []
                self.run_block(block)
                self.drain(0)
            except BaseException:
                for future in self.pending:
                    future.cancel()  # not started: not written; started: finish and get logged
                self.drain(0)
                raise

    def run_block(self, block):
        self.drain(0)
        self.stop_if_output_closed()
        self.planned = {}
        requests = []
        for line, values in block:
            try:
                requests.append(self.operation.request(values, self.options, line))
            except ValueError as exc:
                self.report.add(line, Change(values.get("course_id", ""), values.get("sis_user_id", ""),
                                             "failed", dry_run=self.options.dry_run, error=str(exc)))
        for course in dict.fromkeys(r.course for r in requests):
            mine = [r for r in requests if r.course == course]
            try:
                found = cc.users_enrollments(self.canvas, course, [r.sis_id for r in mine], self.paced_map)
            except cc.CanvasError as exc:
                for r in mine:
                    self.report.add(r.line, Change(course, r.sis_id, "failed",
                                                   dry_run=self.options.dry_run, error=str(exc)))
                continue
            for r in mine:
                self.plan(r, found.get(r.sis_id, []))

    def plan(self, request: Request, rows: list[dict]):
        try:
            changes = self.operation.plan(self.canvas, request, rows, self.options.dry_run)
        except cc.CanvasError as exc:
            return self.report.add(request.line, Change(request.course, request.sis_id, "failed",
                                                        dry_run=self.options.dry_run, error=str(exc)))
        self.report.expect(request.line, len(changes))
        for change in changes:
            key = (change.course_id, change.enrollment_id) if change.enrollment_id else \
                (change.course_id, change.sis_user_id, change.role, change.section)
            if change.action != "unchanged" and key in self.planned:
                # the same change twice in one block: write once, never race with ourselves
                change = dataclasses.replace(change, action="unchanged",
                                             hint=f"done by line {self.planned[key]}")
            if change.action == "unchanged" or self.options.dry_run:
                self.report.add(request.line, change)
                continue
            self.planned[key] = request.line
            self.drain(self.options.workers * 2)  # a bounded queue: memory stays flat
            self.stop_if_output_closed()
            self.pacer.acquire()
            self.pending.add(self.pool.submit(self.write, request.line, change))

    def stop_if_output_closed(self):
        """A closed stdout (| head) stops a batch before its next write, as Ctrl-C does."""
        if self.report.closed and not self.single:
            raise OutputClosed()

    def paced_map(self, fn, items) -> list:
        """map() through the pool, no more in flight than the pacer allows."""
        futures = []
        for item in items:
            self.pacer.acquire()
            futures.append(self.pool.submit(self.paced, fn, item))
        return [f.result() for f in futures]

    def paced(self, fn, item):
        try:
            return fn(item)
        finally:
            self.pacer.release()

    def write(self, line: int, change: Change):
        """In a worker: intent on disk, the write, its result on disk."""
        try:
            seq = self.journal.intent(change.intent_fields()) if self.journal else None
            try:
                done = write(self.canvas, change)
            except cc.CanvasError as exc:
                done = change.failed(str(exc))
            if self.journal:
                self.journal.result(seq, done.result_fields())
            return line, done
        finally:
            self.pacer.release()

    def drain(self, limit: int):
        while len(self.pending) > limit:
            finished, self.pending = wait(self.pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in finished:
                if not future.cancelled():
                    self.report.add(*future.result())


def _raise_terminated(signum, frame):
    raise Terminated()


def _terminal_width(stream) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (OSError, ValueError, AttributeError):
        return 80


# --- the report ------------------------------------------------------------------------


class Report:
    """Results on stdout (text or JSON lines); progress, failures and summary on stderr."""

    def __init__(self, options: Options, batch: bool):
        self.options, self.batch = options, batch
        self.token, self.total, self.done = "", 0, 0
        self.counts = {"created": 0, "changed": 0, "unchanged": 0, "failed": 0}
        self.failures: list[str] = []
        self.progress = batch and sys.stderr.isatty()
        self.open_rows: dict[int, int] = {}  # line -> changes not yet reported
        self.closed = False  # stdout's reader went away
        self.drawn = False  # the progress line is on the terminal
        encoding = getattr(sys.stdout, "encoding", None) or "ascii"
        self.ascii_json = codecs.lookup(encoding).name != "utf-8"  # valid JSON on any console

    def expect(self, line: int, changes: int):
        self.open_rows[line] = changes

    def add(self, line: int, change: Change):
        kind = change.action if change.action in self.counts else "changed"
        self.counts[kind] += 1
        left = self.open_rows.pop(line, 1) - 1
        if left:
            self.open_rows[line] = left
        else:
            self.done += 1
        if change.action == "failed":
            if not self.batch:
                self.warn(f"{self.options.prog}: error: {change.error}")
            elif len(self.failures) < MAX_LISTED:  # memory stays flat on huge files
                self.failures.append(f"  line {line} ({change.sis_user_id}): {change.error}")
        if self.options.as_json:
            self.out(json.dumps({**change.as_dict(), **({"row": line} if self.batch else {})},
                                ensure_ascii=self.ascii_json))
        elif change.action != "failed":
            self.out(change.describe())
        self.show_progress()

    def out(self, text: str):
        if self.closed:
            return
        self.clear_progress()
        try:
            print(cc.redact(text, self.token), flush=True)
        except BrokenPipeError:
            # the runner stops at its next write; what is in flight is still counted
            self.closed = True
            # nothing more can reach the reader, and Python's exit flush must not complain
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    def warn(self, text: str):
        self.clear_progress()
        print(cc.redact(text, self.token), file=sys.stderr, flush=True)

    def show_progress(self):
        """One line on the terminal, rewritten in place, never wider than the terminal."""
        if self.progress:
            width = _terminal_width(sys.stderr) - 1
            sys.stderr.write(f"\r{f'row {self.done}/{self.total}: {self.summary()}'[:width]}\x1b[K")
            sys.stderr.flush()
            self.drawn = True

    def clear_progress(self):
        if self.drawn:  # a line printed after it must not start in its middle
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.drawn = False

    def summary(self) -> str:
        dry = " (dry run: nothing changed)" if self.options.dry_run else ""
        return ", ".join(f"{k} {v}" for k, v in self.counts.items()) + dry

    def finish(self, stopped: str | None = None) -> int:
        if stopped:
            self.warn(f"{stopped} after {self.done} of {self.total} rows "
                      f"({self.summary()}); run the same command again to finish")
            return cc.EXIT_CANVAS
        if self.batch:
            self.warn(f"summary: {self.summary()}")
            if self.failures:
                self.warn("\n".join(["failed:", *self.failures]))
                if self.counts["failed"] > MAX_LISTED:
                    self.warn(f"  ... and {self.counts['failed'] - MAX_LISTED} more")
        if self.closed and self.batch:
            return EXIT_OUTPUT_CLOSED  # every write was already under way when stdout closed
        return cc.EXIT_CANVAS if self.counts["failed"] else cc.EXIT_OK


# --- undo: an operation over the log ---------------------------------------------------

UNDO = {"deactivated": "reactivated", "reactivated": "deactivated", "created": "deleted"}


@dataclasses.dataclass(frozen=True)
class UndoRequest(Request):
    enrollment_id: int | None = None
    first_action: str = ""
    before: str | None = None  # before the job's first write
    after: str | None = None  # after its last
    role: str | None = None
    section_id: int | None = None


class Undo(Operation):
    """Put back every enrollment a job (or one run) changed, newest first."""

    name = "undo"
    columns = ("course_id", "sis_user_id")

    def __init__(self, prog: str):
        self.prog, self.target = prog, None

    def select(self, options: Options, warn) -> str:
        """Read the log and pick the job or run to undo; return its id."""
        self.path = options.undo
        entries = audit.read_log(options.undo, warn)
        job, self.one_run = audit.pick_job(entries, options.undo, options.run_id)
        self.target = self.one_run or job
        self.made, self.open = audit.job_writes(entries, job, self.one_run)
        if options.run_id is None and not (self.made or self.open):
            raise cc.CanvasError(f"the last job in {options.undo} ({job}) made no changes; "
                                 + audit.recent_jobs(entries) + ": undo one with --run ID")
        return self.target

    def rows(self, canvas: cc.Canvas, journal: audit.Journal | None, warn) -> list:
        """One row per enrollment to put back; intents with no answer settled first."""
        made = self.made + settle(canvas, journal, self.open)
        if not made:
            warn(f"{self.prog}: {'run' if self.one_run else 'job'} {self.target} in "
                 f"{self.path} made no changes; nothing to undo")
        return [(n, values) for n, values in enumerate(audit.undo_values(made), start=1)]

    def log_fields(self) -> dict:
        return {"target": self.target}

    def request(self, values: dict, options: Options, line: int = 0) -> UndoRequest:
        if values.get("first_action") not in UNDO:
            raise ValueError(f"cannot undo {values.get('first_action')!r}")
        return UndoRequest(values["course_id"], values["sis_user_id"], line,
                           values["enrollment_id"], values["first_action"], values["before"],
                           values["after"], values.get("role"), values.get("section_id"))

    def plan(self, canvas, request: UndoRequest, rows, dry_run):
        """Undo only what is still as the job left it; anything changed since is reported."""
        target = "deleted" if request.first_action == "created" else request.before
        row = next((r for r in rows if r.get("id") == request.enrollment_id), None) or {
            "id": request.enrollment_id, "role": request.role, "course_section_id": request.section_id,
            "enrollment_state": "deleted" if target == "deleted" else "concluded or deleted"}
        now = row["enrollment_state"]
        if cc.state_group(now) == cc.state_group(target):
            return [Change.of_row(request, row, "unchanged", dry_run=dry_run)]
        if now != request.after:
            raise cc.CanvasError(
                f"enrollment {request.enrollment_id} is {now} now, not {request.after} as the job "
                "left it; changed since, so not undone")
        action = UNDO[request.first_action]
        return [Change.of_row(request, row, action, dry_run=dry_run,
                              after="active" if action == "reactivated" else target)]
