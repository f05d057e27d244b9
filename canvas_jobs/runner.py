"""The runner: rows in, bulk lookups, plans, paced writes with a write-ahead log, the report."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import sys
import threading
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from types import FrameType
from typing import IO, Any, Callable, TypeVar

import canvas_commands
import canvas_common as cc
import canvas_files as files
import canvas_http
import canvas_journal as audit
import canvas_rounds as rounds

from .changes import Change, Operation, Request, settle, write
from .checks import check_rows
from .courses import course_id
from .csvfile import check_csv, csv_rows, digest, open_csv
from .guard import EXIT_CHANGE_LIMIT, EXIT_STOPPED, Guard, RunStopped, TooManyChanges, check_change_limit, unavailable
from .names import ask_names, named
from .options import Options
from .pacing import Pacer
from .report import EXIT_OUTPUT_CLOSED, Report
from .sections import resolve, resolve_requests
from .undo import Undo, list_jobs

BLOCK_ROWS = 1000
Row = tuple[int, dict]  # (line number, {column: value}) as read from the command line, a CSV or a log
T = TypeVar("T")


class Terminated(Exception):
    """SIGTERM, raised in the main thread so a run stops as on Ctrl-C."""


class OutputClosed(Exception):
    """stdout was closed (| head): a run stops as on Ctrl-C."""


def run(operation: Operation[Any], options: Options) -> int:
    """Run one operation to the end; the one place errors and interrupts become output.

    Returns the exit code: 0, or a CanvasError's exit_code, 130 (Ctrl-C),
    143 (SIGTERM), EXIT_OUTPUT_CLOSED (stdout closed)."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):  # what a console cannot show is escaped, never a crash
            stream.reconfigure(errors="backslashreplace")
    try:
        if options.jobs is not None:  # reads the log alone: no Canvas, no config
            return list_jobs(options, lambda text: print(text, flush=True))
        if options.undo is not None:
            operation = Undo(options.prog)
        with Run(operation, options) as job:
            return job.execute()
    except cc.CanvasError as exc:
        print(f"{options.prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except RunStopped as exc:  # Run.execute reports its own; this is before or after one
        print(f"{options.prog}: stopped: {exc}; run the same command again to finish", file=sys.stderr)
        return EXIT_STOPPED
    except TooManyChanges as exc:
        print(f"{options.prog}: stopped: {exc}; {exc.then}", file=sys.stderr)
        return EXIT_CHANGE_LIMIT
    except KeyboardInterrupt:
        print(f"{options.prog}: interrupted", file=sys.stderr)
        return 130


class Run:
    """One run: a source of rows, Canvas, the journal, the pool, and the report."""

    def __init__(self, operation: Operation[Any], options: Options):
        self.operation, self.options = operation, options
        self.single = options.single is not None
        self.report = Report(options, batch=not self.single)
        self.canvas = cc.connect(options.config, options.timeout, options.retries, options.verbose,
                                 pool=1 if self.single else options.workers, ca_bundle=options.ca_bundle)
        self.report.token = self.canvas.config.token
        self.report.namer = lambda change: named(self.canvas, change)
        self.base_url = self.canvas.config.base_url
        self.pacer = Pacer(1 if self.single else options.workers)
        self.canvas.observer = self.pacer.observe
        # a batch stops whole when the run, not a row, fails (one user: the error is the answer)
        self.guard: Guard | None = None if self.single else Guard(self.pacer)
        self.canvas.guard = self.guard
        self.journal: audit.Journal | None = None
        self.logs: dict[str, audit.Log] = {}  # the audit logs this run reads or writes, locked
        self.log_error: cc.CanvasError | None = None  # the disk refused a record: the run stops
        self.lock = threading.Lock()
        self.raw: IO[bytes] | None = None  # the CSV file, read twice
        self.started = 0  # writes this run has started, for --max-changes
        self.unknown: set[int] = set()  # lines with a write whose outcome is unknown (intent open) if the run stops
        # course -> ({SIS ID: active and inactive enrollments}, {SIS ID: ended ones}), read in bulk by the source
        self.known: dict = {}

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.journal:
            self.journal.close()
        for log in self.logs.values():
            log.close()
        if self.raw:
            self.raw.close()

    def execute(self) -> int:
        """Plan and write every row; the exit code."""
        previous = signal.signal(signal.SIGTERM, _raise_terminated) \
            if threading.current_thread() is threading.main_thread() else None
        status = "stopped"
        try:
            rows = self.begin()
            if rows is None:
                return cc.EXIT_OK
            self.process(rows)
            if self.log_error:  # the last writes' records were refused: not finished
                raise RunStopped(str(self.log_error))
            status = "finished"
        except KeyboardInterrupt:
            return self.stop("interrupted", 130)
        except Terminated:
            return self.stop("terminated", 143)
        except OutputClosed:
            return self.stop("stopped: stdout was closed", EXIT_OUTPUT_CLOSED)
        except RunStopped as exc:
            if self.log_error:  # no write goes out without its record: the disk must be fixed first
                return self.stop(f"stopped: {self.log_error}", files.EXIT_DISK,
                                 then="no change was sent without its record; free some space, then run "
                                      "the same command again to finish")
            return self.stop(f"stopped: {exc}", EXIT_STOPPED)
        except TooManyChanges as exc:
            self.report.finish(stopped=f"{self.options.prog}: stopped: {exc}", then=exc.then,
                               unknown=len(self.unknown))
            return EXIT_CHANGE_LIMIT
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            if self.journal:
                self.journal.end(status, self.report.counts)
        return self.report.finish()

    def begin(self) -> Iterable[Row] | None:
        """The rows (None: an undo with nothing to do), the journal open. Canvas unavailable
        while the rows are read (--from, undo's settling) stops the run as it would a batch."""
        try:
            self.open_logs()
            rows, total, source_digest = self.source()
            if not isinstance(self.operation, Undo):  # undo's rows are known once settled
                self.report.total = total
            self.open_journal(source_digest)
            if isinstance(self.operation, Undo):
                rows = self.operation.rows(self.canvas, self.journal, self.report.warn)
                self.report.total = len(rows)
                if not rows:
                    return None
        except cc.CanvasError as exc:
            if self.guard and unavailable(exc):
                self.guard.stop_if_down(least=1)
            raise
        return rows

    def stop(self, word: str, code: int, then: str | None = None) -> int:
        if then is None:
            self.report.finish(stopped=f"{self.options.prog}: {word}", unknown=len(self.unknown))
        else:
            self.report.finish(stopped=f"{self.options.prog}: {word}", then=then, unknown=len(self.unknown))
        return code

    def source(self) -> tuple[Iterable[Row], int, str]:
        """(rows, count, digest): the rows to run, however they were given (undo's are read later)."""
        options = self.options
        if options.single is not None:
            try:  # a course URL of another Canvas is a usage error, before any request
                values = {**options.single, "course_id": course_id(options.single["course_id"], self.base_url)}
            except ValueError as exc:
                raise cc.ConfigError(str(exc)) from None
            return [(0, values)], 1, json.dumps(values, sort_keys=True)
        if isinstance(self.operation, Undo):
            assert options.undo is not None  # an Undo runs only with --undo LOG
            return [], 0, "undo:" + self.operation.select(options, self.logs[options.undo].entries, self.report.warn)
        if options.round is not None:
            try:  # courses pasted from the browser, as for one user
                round_from = dataclasses.replace(options.round, old=course_id(options.round.old, self.base_url),
                                                 new=course_id(options.round.new, self.base_url))
            except ValueError as exc:
                raise cc.ConfigError(str(exc)) from None
            if round_from.section:  # a section by name: its id, before anything is read
                round_from = dataclasses.replace(round_from, section=resolve(self.canvas, round_from.new,
                                                                             round_from.section))
            taken = rounds.read_round(self.canvas, round_from, self.operation.name)
            self.known = {round_from.new: (taken.known, taken.ended)}
            self.report.notes = taken.notes
            if round_from.export:  # the person's name for the reader; --csv ignores the column
                rounds.export(round_from.export, (*self.operation.columns, *self.operation.optional, "name"),
                              taken.rows)
            return taken.rows, len(taken.rows), round_from.digest()
        assert options.csv is not None  # parse_options: one user, --csv, --from or --undo
        name = "stdin" if options.csv == "-" else options.csv
        self.raw = raw = open_csv(options.csv)
        total = check_csv(raw, self.operation.columns, name)
        check_rows(lambda: csv_rows(raw, self.operation.columns, name), self.operation, self.options, name,
                   self.base_url)
        return csv_rows(raw, self.operation.columns, name), total, digest(raw)

    def open_logs(self) -> None:
        """Check and lock the audit logs this run reads (--undo) or appends to, and read
        each once; before any request, so a run refused here has sent nothing."""
        command = canvas_http.redact(self.command(), self.canvas.config.token)
        if self.options.undo is not None:
            audit.check_readable(self.options.undo)  # the log to undo must be there
        written = self.options.log_path
        for path in (written, self.options.undo):  # the log written first: its Log repairs it
            if path is not None and path not in self.logs:
                same = next((log for log in self.logs.values()
                             if os.path.realpath(log.path) == os.path.realpath(path)), None)
                self.logs[path] = same or audit.Log(path, path == written, command, self.report.warn)

    def command(self) -> str:
        """The command as run, each word quoted as the shell takes it back (for the log and --jobs)."""
        return " ".join((self.options.prog, *map(canvas_commands.shell_quote, self.options.argv)))

    def open_journal(self, source_digest: str) -> None:
        """Start (or continue) the job in the log; settle what a cut-short run left open."""
        path = self.options.log_path
        if path is None:
            return
        key = self.operation.job_key(self.options, source_digest)
        entries = self.logs[path].entries
        self.journal = self.journal or audit.Journal(path, self.canvas.config.token)
        last = audit.open_job(entries, key)
        self.journal.start(self.command(), self.operation.name,
                           key, continues=last, **self.operation.log_fields())
        if last:
            _made, unsettled = settle(self.canvas, self.journal, audit.job_writes(entries, last["job"])[1])
            for intent in unsettled:  # the rows run again; the log keeps these open for --undo
                self.report.warn(f"warning: {intent['sis_user_id']} in course {intent['course_id']}: "
                                 f"{intent['unsettled']}")

    def process(self, rows: Iterable[Row]) -> None:
        """Plan and apply block by block; a block's writes land before the next block's lookups."""
        self.pool = pool = ThreadPoolExecutor(max(1, self.options.workers))
        self.pending: dict[Future, int] = {}  # a write's future -> its line
        self.held: list[tuple[int, Change]] = []
        self.unnamed: list[tuple[int, Change]] = []  # new enrollments whose person is named after the block
        self.gave_up = False  # a second Ctrl-C or SIGTERM: writes in flight were not waited for
        try:
            try:
                block = []
                for row in rows:
                    block.append(row)
                    if len(block) == BLOCK_ROWS:
                        self.run_block(block)
                        block = []
                self.run_block(block)
                self.drain(0)
                if self.held and self.guard:
                    self.guard.stop_if_down()  # the run ended inside an outage: a stop, not failed rows
                for line, change in self.held:  # Canvas answered since: they did fail
                    self.report.add(line, change)
            except BaseException as exc:
                if self.guard:  # requests still waiting out throttling give up; those sent finish
                    self.guard.halt(str(exc) or type(exc).__name__)
                for future in self.pending:
                    future.cancel()  # not started: not written; started: finish and get logged
                self.finish_pending()
                raise
        finally:
            pool.shutdown(wait=not self.gave_up, cancel_futures=True)

    def finish_pending(self) -> None:
        """After a stop: wait for the writes in flight and count what Canvas answered them.

        A second Ctrl-C or SIGTERM ends the wait: writes still in flight count as unknown
        (their intents stay open for the rerun or --undo to settle), so the stop line
        counts every write whose answer arrived and never fewer changes than Canvas made."""
        again = threading.Event()
        main = threading.current_thread() is threading.main_thread()
        handlers = {sig: signal.signal(sig, lambda *_: again.set()) for sig in (signal.SIGINT, signal.SIGTERM)} \
            if main else {}
        try:
            self.drain(0, again)
        finally:
            for sig, handler in handlers.items():
                # after the second: the stop line says what is known; the writes in flight end
                # within --timeout as the process exits, and a third signal must not break
                # that exit with a traceback (kill -9 still ends it at once)
                signal.signal(sig, signal.SIG_IGN if again.is_set() else handler)
        if again.is_set():
            self.gave_up = True
            for future in [f for f in self.pending if f.done()]:  # answered while the signal came
                del self.pending[future]
                if not future.cancelled() and future.result()[1] is not None:
                    self.failed(*future.result())
            with self.lock:
                self.unknown.update(self.pending.values())
        self.name_new(ask=False)  # the stop line counts them; no more requests

    def run_block(self, block: list[Row]) -> None:
        self.drain(0)
        self.stop_if_output_closed()
        self.report.open_block([line for line, _ in block])
        requests: list[Request] = []
        planned: list[tuple[int, Change]] = []
        for line, values in block:
            try:
                values = {**values, "course_id": course_id(values.get("course_id", ""), self.base_url)}
                requests.append(self.operation.request(values, self.options, line))
            except ValueError as exc:
                self.report.add(line, Change(values.get("course_id", ""), values.get("sis_user_id", ""),
                                             "failed", dry_run=self.options.dry_run, error=str(exc)))
        for course in dict.fromkeys(r.course for r in requests):
            mine = [r for r in requests if r.course == course]
            try:
                mine, refused = resolve_requests(self.canvas, course, mine)
                for r, refusal in refused:  # a section name the course does not have: that row only
                    self.failed(r.line, Change(course, r.sis_id, "failed", dry_run=self.options.dry_run,
                                               error=str(refusal)), refusal)
                sis_ids = list(dict.fromkeys(r.sis_id for r in mine))  # a person on several rows: asked once
                if course in self.known:  # read whole by the source (--from)
                    found, ended = self.known[course]
                elif self.operation.wants_ended:
                    found, ended = cc.users_enrollments_and_ended(self.canvas, course, sis_ids, self.paced_map)
                else:
                    found, ended = cc.users_enrollments(self.canvas, course, sis_ids, self.paced_map), {}
                self.operation.prepare(self.canvas, course, mine, found, self.paced_map, ended)
                ask_names(self.canvas, course)  # after the lookups, which say what is wrong with the course
            except cc.CanvasError as exc:
                for r in mine:
                    self.failed(r.line, Change(course, r.sis_id, "failed",
                                               dry_run=self.options.dry_run, error=str(exc)), exc)
                continue
            for r in mine:
                planned += self.plan(r, found.get(r.sis_id, []))
        self.submit(self.weigh(planned))

    def plan(self, request: Request, rows: list[dict]) -> list[tuple[int, Change]]:
        """The (line, Change)s of one request, unchanged ones too; a failure is reported."""
        try:
            changes = self.operation.plan(self.canvas, request, rows, self.options.dry_run)
        except cc.CanvasError as exc:
            self.failed(request.line, Change(request.course, request.sis_id, "failed",
                                             dry_run=self.options.dry_run, error=str(exc)), exc)
            return []
        self.report.expect(request.line, len(changes))
        return [(request.line, named(self.canvas, change)) for change in changes]

    def weigh(self, planned: list[tuple[int, Change]]) -> list[tuple[int, Change]]:
        """A block's plan against itself: report what needs no write; return the writes to make.

        One enrollment (Canvas's ids are unique, whichever spelling of the course a row used)
        asked for by several rows: the same state, written once, the later rows "same as line N";
        different states, neither written, every such row failed naming the others."""
        rows: dict = {}
        for line, change in planned:
            rows.setdefault(_enrollment(change), []).append((line, change))
        writes = []
        for line, change in planned:
            asked = rows[_enrollment(change)]
            wants = {_wants(c) for _, c in asked}
            first = asked[0][0]
            if change.action != "failed" and len(wants) > 1:
                others = ", ".join(f"line {n} ({_wants(c)})" for n, c in asked if _wants(c) != _wants(change))
                which = f"enrollment {change.enrollment_id}" if change.enrollment_id else "the enrollment"
                change = change.failed(f"contradicts {others}, this line asks for {_wants(change)}: {which} "
                                       "left as it is; keep the row you mean")
            elif change.action != "failed" and line != first:
                change = dataclasses.replace(change, action="unchanged", same_as=first)
            if change.action in ("unchanged", "failed") or self.options.dry_run:
                self.report.add(line, change)
            else:
                writes.append((line, change))
        return writes

    def submit(self, writes: list[tuple[int, Change]]):
        """A block's writes into the paced pool, unless they would pass --max-changes."""
        check_change_limit(self.options.max_changes, self.started, len(writes))
        for line, change in writes:
            self.drain(self.options.workers * 2)  # a bounded queue: memory stays flat
            self.stop_if_output_closed()
            self.pacer.acquire()
            self.started += 1
            self.pending[self.pool.submit(self.write, line, change)] = line

    def stop_if_output_closed(self) -> None:
        """A closed stdout (| head), or a run-level failure, stops a batch before its next write."""
        if self.report.closed and not self.single:
            raise OutputClosed()
        if self.guard:
            self.guard.before()

    def paced_map(self, fn: Callable[[Any], T], items: Iterable[Any]) -> list[T]:
        """map() through the pool, no more in flight than the pacer allows."""
        futures = []
        for item in items:
            self.pacer.acquire()
            futures.append(self.pool.submit(self.paced, fn, item))
        return [f.result() for f in futures]

    def paced(self, fn: Callable[[Any], T], item: Any) -> T:
        try:
            return fn(item)
        finally:
            self.pacer.release()

    def write(self, line: int, change: Change) -> tuple[int, Change | None, cc.CanvasError | None]:
        """In a worker: intent on disk, the write, its result on disk.

        Returns (line, Change), or (line, None) when the run stopped before the
        write's outcome was known: its intent stays open for the next run to settle.
        """
        try:
            if self.guard and self.guard.reason:  # the run stopped while this one waited its turn
                return line, None, None
            try:
                seq = self.journal.intent(change.intent_fields()) if self.journal else None
            except cc.CanvasError as exc:  # the disk refused the intent: the write is not sent
                self.log_failed(exc)
                return line, None, None
            try:
                done = write(self.canvas, change)
            except cc.CanvasError as exc:
                if unavailable(exc) and (self.guard or exc.unclear):
                    # perhaps made: the intent stays open for the next run or --undo to settle
                    if exc.unclear:
                        with self.lock:  # if the run stops, its outcome is unknown, not "not done"
                            self.unknown.add(line)
                    return line, change.failed(str(exc)), exc
                done = change.failed(str(exc))
            except RunStopped as stop:
                if stop.unclear:
                    with self.lock:  # perhaps made: its intent stays open for the rerun or --undo
                        self.unknown.add(line)
                elif self.journal and seq is not None:  # never sent, or refused (token, throttling): not done
                    self.record(seq, change.not_done())
                return line, None, None
            done = named(self.canvas, done)  # a POST's section is known now
            if self.journal and seq is not None:
                self.record(seq, done)
            return line, done, None
        finally:
            self.pacer.release()

    def record(self, seq: int, outcome: Change) -> None:
        """A write's result in the log; if the disk refuses it, the intent stays open (the
        rerun or --undo settles it by a look at Canvas) and the run stops."""
        assert self.journal is not None
        try:
            self.journal.result(seq, outcome.result_fields())
        except cc.CanvasError as exc:
            self.log_failed(exc)

    def log_failed(self, exc: cc.CanvasError) -> None:
        """The disk refused a record: no more writes; the run stops."""
        with self.lock:
            self.log_error = self.log_error or exc
        if self.guard:
            self.guard.halt(str(exc))

    def drain(self, limit: int, give_up: threading.Event | None = None) -> None:
        """Report finished writes until at most limit are pending (or give_up is set); with
        none pending, the new enrollments of the block are named and reported."""
        while len(self.pending) > limit and not (give_up and give_up.is_set()):
            finished, _ = wait(self.pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in finished:
                del self.pending[future]
                if not future.cancelled() and future.result()[1] is not None:
                    self.failed(*future.result())
        if not self.pending and self.unnamed:
            self.name_new(ask=not (give_up or (self.guard and self.guard.reason)))

    def name_new(self, ask: bool) -> None:
        """Report the block's new enrollments with their person's name: Canvas's answer to a POST
        has no user, so the course's enrollments of those SIS IDs are read once, in bulk (one
        request per 100), never one per row. ask False (the run is stopping): the SIS IDs alone."""
        unnamed, self.unnamed = self.unnamed, []
        for course in dict.fromkeys(change.course_id for _, change in unnamed) if ask else ():
            ids = list(dict.fromkeys(c.sis_user_id for _, c in unnamed if c.course_id == course))
            with contextlib.suppress(cc.CanvasError):  # names are beside the ids, never in place of them
                self.canvas.enrollments(course, ids, [(*cc.ACTIVE_STATES, *cc.INACTIVE_STATES)], self.paced_map)
        for line, change in unnamed:
            self.report.add(line, change)

    def failed(self, line: int, change: Change, exc: cc.CanvasError | None):
        """Report a row; one that failed because Canvas was unavailable waits: if the run
        stops, it is a row not done, not a failed one. A new enrollment whose person no
        answer named waits for the end of its block (name_new)."""
        if exc is not None and self.guard and unavailable(exc):
            self.held.append((line, change))
        elif change.action in ("created", "reopened") and not change.dry_run and not change.user_name \
                and change.sis_user_id not in self.canvas.people:
            self.unnamed.append((line, change))
        else:
            self.report.add(line, change)


def _enrollment(change: Change) -> tuple:
    """Which enrollment a change is of: its id, or for a new one its user, role and section."""
    if change.enrollment_id:
        return (change.enrollment_id,)
    return (change.course_id, change.sis_user_id, change.role, change.section)


def _wants(change: Change) -> str:
    """The state a row asks for (invited counts as active, as an admin thinks of it)."""
    return str(cc.state_group(change.after))


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()
