"""Runs of enroll_user.py and set_user_state.py beyond the Canvas helper:
results and shared options, and batches: --csv, a worker pool, the audit log
and --undo.

A batch reads its CSV twice: once to refuse a bad file before any change,
then in blocks: per block and course, all the block's users are looked up in
a few bulk requests, each row is planned exactly as the single-user command
would plan it, and the writes run in a bounded pool. Every change Canvas
confirms is appended to the audit log as one whole JSON line.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Callable

import canvas_common as cc

DEFAULT_LOG = "enrollments.audit.jsonl"
DEFAULT_WORKERS = 4
BLOCK_ROWS = 1000
MAX_LISTED = 50  # failed rows named in the summary; --json has them all


# --- results and options, for single runs and batches --------------------------


@dataclasses.dataclass
class Outcome:
    """What happened (or would happen) to one enrollment; --json prints these fields."""

    course_id: str
    sis_user_id: str
    action: str  # created, unchanged, deactivated, reactivated, failed
    enrollment_id: int | None = None
    role: str | None = None
    section_id: int | None = None
    before: str | None = None
    after: str | None = None
    dry_run: bool = False
    error: str | None = None
    hint: str = dataclasses.field(default="", compare=False)  # text output only

    @classmethod
    def from_row(cls, course, sis_id, row, action, after=None, **extra):
        return cls(course, sis_id, action, row.get("id"), row.get("role") or row.get("type"),
                   row.get("course_section_id"), row.get("enrollment_state"),
                   after or row.get("enrollment_state"), **extra)

    def as_dict(self) -> dict:
        data = dataclasses.asdict(self)
        del data["hint"]
        if self.error is None:
            del data["error"]
        return data

    def describe(self) -> str:
        who = f"{self.sis_user_id} in course {self.course_id}"
        what = f"enrollment {self.enrollment_id} ({self.role}, section {self.section_id})"
        if self.action == "failed":
            text = f"{who}: failed: {self.error}"
        elif self.action == "unchanged":
            text = f"{who}: {what} is already {self.before}; nothing to do"
        elif self.action == "created" and self.dry_run:
            text = f"would enroll {who} as {self.role} ({self.after})"
        elif self.action == "created":
            text = f"enrolled {who}: {what} {self.after}"
        else:
            verb = f"would be {self.action}" if self.dry_run else self.action
            text = f"{who}: {what} {verb}: {self.before} -> {self.after}"
        return text + (f"; {self.hint}" if self.hint else "")


class Reporter:
    """Prints results on stdout (text or JSON lines) with the token scrubbed."""

    def __init__(self, token: str, as_json: bool):
        self.token, self.as_json = token, as_json

    def __call__(self, outcome: Outcome, **extra):
        if outcome.action == "failed" and not self.as_json:
            return  # the error line on stderr says it
        text = json.dumps({**outcome.as_dict(), **extra}, ensure_ascii=False) \
            if self.as_json else outcome.describe()
        print(cc.redact(text, self.token), flush=True)


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other error here."""

    def error(self, message):
        self.exit(cc.EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def add_common_options(parser: argparse.ArgumentParser):
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
    parser.add_argument("--version", action="version", version=f"%(prog)s {cc.__version__}")


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


def common_options(args) -> dict:
    """The keyword arguments every work function takes, from parsed options."""
    return dict(config=args.config, dry_run=args.dry_run, as_json=args.json,
                verbose=args.verbose, timeout=args.timeout, retries=args.retries)


def run_work(prog: str, work, as_json: bool, failed: Outcome) -> int:
    """Run a script's work; a cc.CanvasError becomes one stderr line (and a failed
    JSON object with --json) and its exit code."""
    try:
        return work()
    except cc.CanvasError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        if as_json and failed.course_id is not None:  # a batch's bad file has no row
            failed = getattr(exc, "outcome", None) or failed
            failed.action, failed.error = "failed", str(exc)
            print(json.dumps(failed.as_dict(), ensure_ascii=False), flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


class Terminated(Exception):
    """SIGTERM, raised in the main thread so a batch stops like on Ctrl-C."""


@dataclasses.dataclass(frozen=True)
class Job:
    """What a script contributes to a batch: its columns and its per-user rules."""

    columns: tuple[str, ...]  # required CSV columns
    parse: Callable  # (values dict) -> (course, sis_id, params dict); ValueError for a bad row
    plan: Callable  # (canvas, course, sis_id, rows, params, dry_run) -> [Outcome]
    apply: Callable  # (canvas, outcome, params) -> Outcome, after the write


# --- the CSV --------------------------------------------------------------------


def open_csv(path: str):
    """The CSV as a seekable binary file (stdin is spooled to disk); ConfigError if unreadable."""
    try:
        if path == "-":
            spool = tempfile.TemporaryFile()
            shutil.copyfileobj(sys.stdin.buffer, spool)
            spool.seek(0)
            raw = spool
        else:
            raw = open(path, "rb")
    except OSError as exc:
        raise cc.ConfigError(f"cannot read CSV file {path}: {exc.strerror}") from None
    return raw


def text_lines(raw, name: str):
    """Decode line by line, so a bad byte is reported with its line number."""
    raw.seek(0)
    for number, line in enumerate(raw, start=1):
        try:
            text = line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise cc.ConfigError(f"{name} line {number}: not UTF-8 text; "
                                 "save the file as UTF-8 CSV") from None
        yield text.replace("\r\n", "\n")


def check_csv(raw, columns, name: str) -> int:
    """Refuse a bad file before any change: every error names its line. Returns the row count."""
    count = 0
    reader = csv.reader(text_lines(raw, name), strict=True)
    try:
        header = next(reader, None)
        if not header:
            raise cc.ConfigError(f"{name}: empty file; the first line must name the columns "
                                 f"({', '.join(columns)})")
        header = [h.strip().lower() for h in header]
        missing = [c for c in columns if c not in header]
        if missing:
            raise cc.ConfigError(f"{name} line 1: missing column(s) {', '.join(missing)}; "
                                 f"the header has: {', '.join(header)}")
        needed = max(header.index(c) for c in columns) + 1
        for fields in reader:
            if fields and len(fields) < needed:
                raise cc.ConfigError(f"{name} line {reader.line_num}: only {len(fields)} field(s), "
                                     f"expected {len(header)}")
            count += bool(fields)
    except csv.Error as exc:
        raise cc.ConfigError(f"{name} line {reader.line_num}: not valid CSV ({exc})") from None
    return count


def csv_rows(raw, name: str):
    """(line number, {column: value}) for each non-blank row."""
    reader = csv.reader(text_lines(raw, name), strict=True)
    header = [h.strip().lower() for h in next(reader)]
    for fields in reader:
        if fields and any(v.strip() for v in fields):
            yield reader.line_num, dict(zip(header, (v.strip() for v in fields)))


# --- the audit log ------------------------------------------------------------------


class AuditLog:
    """Appends one JSON line per confirmed change; each line whole or absent."""

    def __init__(self, path: str, command: str, token: str):
        self.path, self.token = path, token
        self.run = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise cc.ConfigError(f"cannot write the audit log {path}: {exc.strerror}") from None
        self.lock = threading.Lock()
        self._write({"event": "start", "command": command})

    def record(self, outcome: Outcome):
        fields = outcome.as_dict()
        del fields["dry_run"]
        self._write({"event": "change", **fields})

    def _write(self, entry: dict):
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "run": self.run, **entry}
        line = cc.redact(json.dumps(entry, ensure_ascii=False), self.token) + "\n"
        with self.lock:
            os.write(self.fd, line.encode())  # one write(2) of an O_APPEND fd: never interleaved
            os.fsync(self.fd)

    def close(self):
        os.close(self.fd)


def read_run(path: str, run: str | None) -> tuple[str, list[dict]]:
    """The changes the last run (or the named run) in an audit log recorded."""
    try:
        with open(path, encoding="utf-8") as f:
            entries = [json.loads(line) for line in f if line.strip()]
    except OSError as exc:
        raise cc.ConfigError(f"cannot read audit log {path}: {exc.strerror}") from None
    except ValueError:
        raise cc.ConfigError(f"{path} is not an audit log written by these scripts") from None
    runs = [e.get("run") for e in entries if e.get("event") == "start"]
    if not runs:
        raise cc.ConfigError(f"{path} records no run")
    run = run or runs[-1]
    if run not in runs:
        raise cc.ConfigError(f"{path} has no run {run!r}; runs: {', '.join(runs[-5:])}")
    return run, [e for e in entries if e.get("run") == run and e.get("event") == "change"]


# --- running a batch -------------------------------------------------------------------


class Batch:
    """Plans and applies rows with a bounded pool; reports, logs and counts."""

    def __init__(self, canvas: cc.Canvas, job: Job, report: Reporter, log: AuditLog | None,
                 workers: int, dry_run: bool, total: int):
        self.canvas, self.job, self.report, self.log = canvas, job, report, log
        self.workers, self.dry_run, self.total = workers, dry_run, total
        self.counts = {"created": 0, "changed": 0, "unchanged": 0, "failed": 0}
        self.failures: list[str] = []
        self.rows_read = 0
        self.progress = sys.stderr.isatty()

    def run(self, rows) -> None:
        """Process (line, values) rows block by block."""
        with ThreadPoolExecutor(self.workers) as pool:
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
        self.drain(0)  # the previous block's writes land before these users are looked up
        self.planned: dict[tuple, int] = {}  # a write already planned in this block -> its line
        parsed = []
        for line, values in block:
            self.rows_read += 1
            try:
                parsed.append((line, *self.job.parse(values)))
            except ValueError as exc:
                self.fail(line, Outcome(values.get("course_id", ""), values.get("sis_user_id", ""),
                                           "failed", dry_run=self.dry_run), str(exc))
        for course in dict.fromkeys(p[1] for p in parsed):
            mine = [p for p in parsed if p[1] == course]
            try:
                found = cc.users_enrollments(self.canvas, course, [p[2] for p in mine])
            except cc.CanvasError as exc:
                for line, _, sis, _ in mine:
                    self.fail(line, Outcome(course, sis, "failed", dry_run=self.dry_run), str(exc))
                continue
            for line, _, sis, params in mine:
                self.plan_row(line, course, sis, params, found.get(sis, []))

    def plan_row(self, line, course, sis, params, rows):
        try:
            outcomes = self.job.plan(self.canvas, course, sis, rows, params, self.dry_run)
        except cc.CanvasError as exc:
            return self.fail(line, Outcome(course, sis, "failed", dry_run=self.dry_run), str(exc))
        for outcome in outcomes:
            key = (course, outcome.enrollment_id) if outcome.enrollment_id else \
                (course, sis, outcome.role, params.get("section"))
            if outcome.action != "unchanged" and key in self.planned:
                # the same change twice in one file: write once, never race with ourselves
                outcome.action, outcome.hint = "unchanged", f"done by line {self.planned[key]}"
            if outcome.action == "unchanged" or self.dry_run:
                self.done(line, outcome)
            else:
                self.planned[key] = line
                self.drain(self.workers * 2)  # bounded queue: memory stays flat
                self.pending.add(self.pool.submit(self.write, line, outcome, params))

    def write(self, line, outcome, params):
        try:
            self.job.apply(self.canvas, outcome, params)
        except cc.CanvasError as exc:
            outcome.after = outcome.before
            return line, outcome, str(exc)
        if self.log:
            self.log.record(outcome)
        return line, outcome, None

    def drain(self, limit):
        while len(self.pending) > limit:
            finished, self.pending = wait(self.pending, return_when=FIRST_COMPLETED)
            for future in finished:
                if future.cancelled():
                    continue
                line, outcome, error = future.result()
                self.fail(line, outcome, error) if error else self.done(line, outcome)

    def done(self, line, outcome):
        key = "unchanged" if outcome.action == "unchanged" else \
            "created" if outcome.action == "created" else "changed"
        self.counts[key] += 1
        self.report(outcome, row=line)
        self.show_progress()

    def fail(self, line, outcome, error):
        outcome.action, outcome.error = "failed", error
        self.counts["failed"] += 1
        if len(self.failures) < MAX_LISTED:  # memory stays flat on huge files
            self.failures.append(f"  line {line} ({outcome.sis_user_id}): {error}")
        self.report(outcome, row=line)
        self.show_progress()

    def show_progress(self):
        if self.progress:
            print(f"\rrow {self.rows_read}/{self.total}: {self.summary()}", end="",
                  file=sys.stderr, flush=True)

    def summary(self) -> str:
        dry = " (dry run: nothing changed)" if self.dry_run else ""
        return ", ".join(f"{k} {v}" for k, v in self.counts.items()) + dry

    def finish(self, stopped: str | None = None) -> None:
        if self.progress:
            print(file=sys.stderr)
        if stopped:
            print(f"{stopped} at row {self.rows_read} of {self.total} "
                  f"({self.summary()}); run the same command again to finish", file=sys.stderr)
            return
        print(f"summary: {self.summary()}", file=sys.stderr)
        if self.failures:
            print("failed:", *self.failures, sep="\n", file=sys.stderr)
            if self.counts["failed"] > MAX_LISTED:
                print(f"  ... and {self.counts['failed'] - MAX_LISTED} more", file=sys.stderr)


def run_one(job: Job, course, sis_id, params, *, config, dry_run, as_json, verbose, timeout,
            retries, log_path=None) -> int:
    """One user from the command line: the same plan and apply as a batch row."""
    canvas = cc.connect(config, timeout, retries, verbose)
    report = Reporter(canvas.config.token, as_json)
    rows = cc.user_enrollments(canvas, course, sis_id)
    outcomes = job.plan(canvas, course, sis_id, rows, params, dry_run)
    log = AuditLog(log_path, " ".join(sys.argv), canvas.config.token) \
        if log_path and not dry_run and any(o.action != "unchanged" for o in outcomes) else None
    try:
        for outcome in outcomes:
            if outcome.action != "unchanged" and not dry_run:
                try:
                    job.apply(canvas, outcome, params)
                except cc.CanvasError as exc:
                    outcome.after, exc.outcome = outcome.before, outcome
                    raise
                if log:
                    log.record(outcome)
            report(outcome)
    finally:
        if log:
            log.close()
    return cc.EXIT_OK


def run_csv(path, job: Job, *, prog, config, dry_run, as_json, verbose, timeout, retries,
            workers, log_path) -> int:
    """Run every row of a CSV file; return the exit code (0 all done, 1 any row failed)."""
    name = "stdin" if path == "-" else path
    with open_csv(path) as raw:
        total = check_csv(raw, job.columns, name)
        return run_rows(csv_rows(raw, name), total, job, prog=prog, config=config, dry_run=dry_run,
                        as_json=as_json, verbose=verbose, timeout=timeout, retries=retries,
                        workers=workers, log_path=log_path)


def run_rows(rows, total, job, *, prog, config, dry_run, as_json, verbose, timeout, retries,
             workers, log_path) -> int:
    canvas = cc.connect(config, timeout, retries, verbose, pool=workers)
    log = None if dry_run else AuditLog(log_path or DEFAULT_LOG, " ".join(sys.argv) or prog,
                                        canvas.config.token)
    batch = Batch(canvas, job, Reporter(canvas.config.token, as_json), log, workers,
                  dry_run, total)
    previous = signal.signal(signal.SIGTERM, _raise_terminated) \
        if threading.current_thread() is threading.main_thread() else None
    try:
        batch.run(rows)
    except KeyboardInterrupt:
        batch.finish(f"{prog}: interrupted")
        return 130
    except Terminated:
        batch.finish(f"{prog}: terminated")
        return 143
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if log:
            log.close()
    batch.finish()
    return cc.EXIT_CANVAS if batch.counts["failed"] else cc.EXIT_OK


def _raise_terminated(signum, frame):
    raise Terminated()


# --- undo ------------------------------------------------------------------------------

UNDO = {"deactivated": "reactivated", "reactivated": "deactivated", "created": "deleted"}


def undo_rows(changes: list[dict]):
    """One row per enrollment the run changed, newest first: back to its first before-state."""
    latest: dict = {}
    for entry in reversed(changes):
        key = (entry["course_id"], entry["enrollment_id"])
        if key not in latest:
            latest[key] = dict(entry)
        latest[key]["before"], latest[key]["first_action"] = entry["before"], entry["action"]
    for n, entry in enumerate(latest.values(), start=1):
        yield n, entry


def undo_parse(entry: dict):
    if entry.get("first_action") not in UNDO:
        raise ValueError(f"cannot undo {entry.get('first_action')!r}")
    return entry["course_id"], entry["sis_user_id"], entry


def undo_plan(canvas, course, sis, rows, entry, dry_run):
    """Undo only what is still as the run left it; anything changed since is reported."""
    target = "deleted" if entry["first_action"] == "created" else entry["before"]
    row = next((r for r in rows if r.get("id") == entry["enrollment_id"]), None) or {
        "id": entry["enrollment_id"], "role": entry["role"], "course_section_id": entry["section_id"],
        "enrollment_state": "deleted" if target == "deleted" else "concluded or deleted"}
    now = row["enrollment_state"]
    if now != entry["after"]:
        if now == target:
            return [Outcome.from_row(course, sis, row, "unchanged", dry_run=dry_run)]
        raise cc.CanvasError(
            f"enrollment {entry['enrollment_id']} is {now} now, not {entry['after']} as the run "
            "left it; changed since, so not undone")
    return [Outcome.from_row(course, sis, row, UNDO[entry["first_action"]], after=target,
                                dry_run=dry_run)]


def undo_apply(canvas, outcome, entry):
    if outcome.action == "deleted":
        canvas.delete(outcome.course_id, outcome.enrollment_id)
    elif outcome.action == "reactivated":
        canvas.reactivate(outcome.course_id, outcome.enrollment_id)
    else:
        canvas.deactivate(outcome.course_id, outcome.enrollment_id)
    return outcome


UNDO_JOB = Job(("course_id", "sis_user_id"), undo_parse, undo_plan, undo_apply)


def run_undo(log_path, run, *, prog, config, dry_run, as_json, verbose, timeout, retries,
             workers) -> int:
    """Put back what one run recorded in an audit log; the undo is logged as a run too."""
    run, changes = read_run(log_path, run)
    if not changes:
        print(f"{prog}: run {run} in {log_path} made no changes; nothing to undo", file=sys.stderr)
        return cc.EXIT_OK
    rows = list(undo_rows(changes))
    return run_rows(rows, len(rows), UNDO_JOB, prog=prog, config=config, dry_run=dry_run,
                    as_json=as_json, verbose=verbose, timeout=timeout, retries=retries,
                    workers=workers, log_path=log_path)


def add_batch_options(parser, undo=False):
    group = parser.add_argument_group("batches")
    group.add_argument("--csv", metavar="FILE",
                       help="run every row of this CSV file ('-' reads stdin) instead of one user")
    if undo:
        group.add_argument("--undo", metavar="LOG",
                           help="put back what the last run recorded in this audit log")
        group.add_argument("--run", metavar="ID", help="with --undo: the run to undo")
    group.add_argument("--workers", type=_workers, default=DEFAULT_WORKERS, metavar="N",
                       help=f"parallel writes in a batch, 1-16 (default: {DEFAULT_WORKERS})")
    group.add_argument("--log", metavar="FILE",
                       help=f"audit log to append changes to (batches default to ./{DEFAULT_LOG})")


def _workers(text):
    value = non_negative_int(text)
    if not 1 <= value <= 16:
        raise argparse.ArgumentTypeError("--workers must be from 1 to 16")
    return value
