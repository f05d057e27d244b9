"""The report: results on stdout, progress, failures and the summary on stderr."""

from __future__ import annotations

import codecs
import json
import os
import sys
from collections import Counter
from typing import Callable, TextIO

import canvas_common as cc
import canvas_http

from .changes import Change
from .options import Options

MAX_LISTED = 50  # failed rows named in the summary; --json has them all
EXIT_OUTPUT_CLOSED = 141  # as a shell reports a command stopped by SIGPIPE


def _terminal_width(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (OSError, ValueError, AttributeError):
        return 80


# the kinds of change, in the order the summary names them (undo deletes and concludes)
CHANGES = ("created", "reopened", "deactivated", "reactivated", "deleted", "concluded")


class Report:
    """Results on stdout (text or JSON lines) in the order of the rows, whatever order the
    writes finish in; progress, failures and the summary on stderr.

    A batch's text shows changes, failures and unchanged rows with a note (a hint or a
    warning), each line with its row (the CSV's line); the other unchanged rows are counted,
    and listed with -v; --json lists every row."""

    def __init__(self, options: Options, batch: bool):
        self.options, self.batch = options, batch
        self.token, self.done = "", 0
        self.total: int | None = None  # rows to run, once the source has read them
        # for the log's end record (created, changed, unchanged, failed); the summary splits changed
        self.counts = {"created": 0, "changed": 0, "unchanged": 0, "failed": 0}
        self.kinds: Counter[str] = Counter()  # by action: created, reopened, deactivated, ...
        self.hidden = 0  # unchanged rows without a note (a hint or a warning): not listed
        self.failures: list[tuple[int, str]] = []  # (line, text): listed in file order
        self.notes: list[str] = []  # what the source of rows has to say (--from), after the summary
        self.progress = batch and sys.stderr.isatty()
        # a row's line in the file it came from (a CSV, --from's --export); an undo's rows are the log's
        self.numbered = batch and options.undo is None
        # rows in file order -> changes still to come (None: not planned yet; 0: complete)
        self.open_rows: dict[int, int | None] = {}
        self.ready: dict[int, list[str]] = {}  # a row's lines, held until the rows before it complete
        self.namer: Callable[[Change], Change] = lambda change: change  # names beside ids (runner's)
        self.closed = False  # stdout's reader went away
        self.drawn = False  # the progress line is on the terminal
        encoding = getattr(sys.stdout, "encoding", None) or "ascii"
        self.ascii_json = codecs.lookup(encoding).name != "utf-8"  # valid JSON on any console

    def open_block(self, lines: list[int]) -> None:
        """The rows of a block, in file order: their lines are printed in this order."""
        for line in lines:
            self.open_rows.setdefault(line, None)

    def expect(self, line: int, changes: int) -> None:
        self.open_rows[line] = changes
        if not changes:
            self.complete(line)

    def add(self, line: int, change: Change) -> None:
        change = self.namer(change)
        kind = change.action if change.action in self.counts else "changed"
        self.counts[kind] += 1
        self.kinds[change.action] += 1
        if change.action == "failed":
            if not self.batch:
                self.warn(f"{self.options.prog}: error: {change.error}")
            elif len(self.failures) < MAX_LISTED:  # memory stays flat on huge files
                self.failures.append((line, f"  {self.where(line)}{change.person()}: {change.error}"))
        text = self.line_of(line, change)
        if text is not None:
            self.ready.setdefault(line, []).append(text)
        left = self.open_rows.get(line)
        if left is not None and left > 1:
            self.open_rows[line] = left - 1
        else:
            self.complete(line)
        self.show_progress()

    def line_of(self, line: int, change: Change) -> str | None:
        """What stdout shows of a change: a JSON line, a text line, or None (a single run's
        failure goes to stderr; a batch's unchanged row without a note is counted, listed with -v)."""
        if self.options.as_json:
            return json.dumps({**change.as_dict(), **({"row": line} if self.batch else {})},
                              ensure_ascii=self.ascii_json)
        if not self.batch:
            return None if change.action == "failed" else change.describe()
        if change.action == "unchanged" and not (self.options.verbose or change.hint or change.warning
                                                 or change.same_as):
            self.hidden += 1  # nothing to do and nothing to say: counted
            return None
        return self.where(line) + change.describe()

    def where(self, line: int) -> str:
        """'line 12: ' before a row's text when it came from a file."""
        return f"line {line}: " if self.numbered else ""

    def complete(self, line: int) -> None:
        """A row has all its changes: print it, and the rows after it that waited for it."""
        self.open_rows[line] = 0  # a row not opened (a single run's) goes last, as it came
        self.done += 1
        while self.open_rows:
            first = next(iter(self.open_rows))
            if self.open_rows[first] != 0:
                break
            del self.open_rows[first]
            for text in self.ready.pop(first, []):
                self.out(text)

    def flush(self) -> None:
        """A stopped run: print what completed, in file order, without the rows still open."""
        for line in list(self.open_rows):
            for text in self.ready.pop(line, []):
                self.out(text)
        self.open_rows.clear()

    def out(self, text: str) -> None:
        if self.closed:
            return
        self.clear_progress()
        try:
            print(canvas_http.redact(text, self.token), flush=True)
        except BrokenPipeError:
            # the runner stops at its next write; what is in flight is still counted
            self.closed = True
            # nothing more can reach the reader, and Python's exit flush must not complain
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    def warn(self, text: str) -> None:
        self.clear_progress()
        print(canvas_http.redact(text, self.token), file=sys.stderr, flush=True)

    def show_progress(self) -> None:
        """One line on the terminal, rewritten in place, never wider than the terminal."""
        if self.progress:
            width = _terminal_width(sys.stderr) - 1
            sys.stderr.write(f"\r{f'row {self.done}/{self.total}: {self.summary(finished=False)}'[:width]}\x1b[K")
            sys.stderr.flush()
            self.drawn = True

    def clear_progress(self) -> None:
        if self.drawn:  # a line printed after it must not start in its middle
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.drawn = False

    def summary(self, finished: bool = True) -> str:
        """The counts, changes split by kind; a finished dry run adds the --max-changes that
        allows its changes."""
        changes = self.counts["created"] + self.counts["changed"]
        noun = "change" if changes == 1 else "changes"
        dry = f" (dry run: nothing changed; {changes} {noun}: --max-changes {changes} allows them)" \
            if self.options.dry_run and finished else " (dry run: nothing changed)" if self.options.dry_run else ""
        made = [f"{kind} {self.kinds[kind]}" for kind in CHANGES if self.kinds[kind]]
        unchanged = f"unchanged {self.counts['unchanged']}"
        if finished and self.hidden:
            unchanged += f" ({self.hidden} not listed: -v lists them)"
        return ", ".join([*(made or ["no changes"]), unchanged, f"failed {self.counts['failed']}"]) + dry

    def finish(self, stopped: str | None = None, then: str = "run the same command again to finish",
               unknown: int = 0) -> int:
        """The summary (or, stopped, the one stop line) on stderr; the exit code of the rows.

        unknown: writes whose outcome the run never learned (their intents stay open)."""
        self.flush()
        if stopped and self.total is None:  # before the rows were read: nothing was changed
            self.warn(f"{stopped}; before any change; {then}")
            return cc.EXIT_CANVAS
        if stopped and self.total is not None:
            left = self.total - self.done
            unsure = f", {unknown} unknown: the rerun or --undo settles them by looking at Canvas" \
                if unknown else ""
            self.warn(f"{stopped}; after {self.done} of {self.total} rows ({self.summary(finished=False)}; "
                      f"{left - unknown} not done{unsure}); {then}")
            return cc.EXIT_CANVAS
        if self.batch:
            self.warn(f"summary: {self.summary()}")
            for note in self.notes:
                self.warn(f"  {note}")
            if self.failures:
                self.warn("\n".join(["failed:", *(text for _, text in sorted(self.failures))]))
                if self.counts["failed"] > MAX_LISTED:
                    self.warn(f"  ... and {self.counts['failed'] - MAX_LISTED} more")
        if self.closed and self.batch:
            return EXIT_OUTPUT_CLOSED  # every write was already under way when stdout closed
        return cc.EXIT_CANVAS if self.counts["failed"] else cc.EXIT_OK
