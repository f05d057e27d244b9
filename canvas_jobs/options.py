"""Command-line options: one argparse parser per script and the frozen Options a run reads."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys
from typing import TYPE_CHECKING

import canvas_common as cc

if TYPE_CHECKING:
    from .changes import Operation

DEFAULT_LOG = "enrollments.audit.jsonl"
DEFAULT_WORKERS = 16


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
    max_changes: int | None = None  # the change guard: stop before more changes than this
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
        options = self.argv[:self.argv.index("--")] if "--" in self.argv else self.argv
        dashed = [a for a in options if a.startswith("-") and a.split("=", 1)[0] not in self._option_string_actions]
        hint = f"; a SIS ID that starts with '-' goes after --, as in: {self.prog} [options] -- " \
               f"COURSE {dashed[0]} ..." if dashed and "--" not in self.argv else ""
        near = self.nearest(dashed[0]) if dashed and dashed[0].startswith("--") else None
        if near:  # a typo, or an option of another version: not a SIS ID
            message, hint = f"unknown option {dashed[0].split('=', 1)[0]}; did you mean {near}?", ""
        self.exit(cc.EXIT_USAGE, f"{self.prog}: error: {message}{hint} (see --help)\n")

    def nearest(self, typed: str) -> str | None:
        """The real long option closest to one typed (--dryrun: --dry-run), if any is close."""
        names = [o for o in self._option_string_actions if o.startswith("--")]
        typed = typed.split("=", 1)[0]
        close = difflib.get_close_matches(typed, names, n=1, cutoff=0.6) or \
            difflib.get_close_matches(typed.replace("_", "-").lower(), names, n=1, cutoff=0.6)
        return close[0] if close else None


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
                        help="retries after throttling or a Canvas outage (default: 5); in a batch "
                             "a throttled request waits its turn instead, uncounted")
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
    group.add_argument("--max-changes", type=non_negative_int, metavar="N",
                       help="stop before making more than N changes (a wrong file must not change "
                            "a whole faculty); --dry-run's summary gives the count")
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
                   max_changes=args.max_changes,
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
