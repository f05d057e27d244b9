"""Command-line options: one argparse parser per script and the frozen Options a run reads."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import re
import sys
from collections.abc import Sequence
from typing import Any, Callable, NoReturn, Protocol

import canvas_commands
import canvas_common as cc
import canvas_ids
import canvas_roles
import canvas_rounds as rounds

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
    jobs: str | None = None  # --jobs LOG: list the log's jobs, change nothing
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
    round: rounds.RoundOptions | None = None  # --from OLD_COURSE: rows from the old round

    @property
    def log_path(self) -> str | None:
        """Every run that changes something logs it (one user too): to --log, an undo to its
        own log, else ./enrollments.audit.jsonl; a dry run logs nothing."""
        if self.dry_run:
            return None
        return self.log or self.undo or DEFAULT_LOG


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other error here."""

    argv: Sequence[str] = ()

    def parse_args(self, args=None, namespace=None):  # argparse's overloaded signature, inherited
        self.argv = list(sys.argv[1:] if args is None else args)
        return super().parse_args(self.argv, namespace)

    def error(self, message: str) -> NoReturn:
        options = self.argv[:self.argv.index("--")] if "--" in self.argv else self.argv
        dashed = [a for i, a in enumerate(options) if a.startswith("-")
                  and a.split("=", 1)[0] not in self._option_string_actions and not self.option_value(options, i)]
        hint = f"; a SIS ID that starts with '-' goes after --, as in: {self.prog} [options] -- " \
               f"COURSE {dashed[0]} ..." if dashed and "--" not in self.argv else ""
        if dashed and dashed[0].startswith("--"):  # a typo, an option of another version or script
            typed, near = dashed[0].split("=", 1)[0], self.nearest(dashed[0])
            message, hint = f"unknown option {typed}" + (f"; did you mean {near}?" if near else ""), ""
        self.exit(cc.EXIT_USAGE, f"{self.prog}: error: {message}{hint} (see --help)\n")

    def option_value(self, argv: Sequence[str], i: int) -> bool:
        """A negative number right after an option that takes a value is that value, not a SIS ID."""
        action = self._option_string_actions.get(argv[i - 1]) if i else None
        return action is not None and action.nargs != 0 and re.fullmatch(r"-\d+(?:\.\d+)?", argv[i]) is not None

    def nearest(self, typed: str) -> str | None:
        """The real long option closest to one typed (--dryrun: --dry-run), if any is close."""
        names = [o for o in self._option_string_actions if o.startswith("--")]
        typed = typed.split("=", 1)[0]
        close = difflib.get_close_matches(typed, names, n=1, cutoff=0.6) or \
            difflib.get_close_matches(typed.replace("_", "-").lower(), names, n=1, cutoff=0.6)
        return close[0] if close else None


class Declared(Protocol):
    """What the options need of an operation (changes.Operation is the one used): its name,
    its CSV columns, its own arguments and which of them go with one user only."""

    @property
    def prog(self) -> str: ...

    @property
    def columns(self) -> tuple[str, ...]: ...

    @property
    def optional(self) -> tuple[str, ...]: ...

    @property
    def usage_line(self) -> str: ...

    def add_arguments(self, parser: Parser) -> None: ...

    def single_values(self, args: argparse.Namespace) -> dict | None: ...

    def per_user_options(self, args: argparse.Namespace) -> list[str]: ...

    def extra_options(self, args: argparse.Namespace) -> dict: ...


def build_parser(operation: Declared, usage: str, description: str, epilog: str | None = None) -> Parser:
    """The script's parser, named as the user ran it; epilog (examples) is printed as written."""
    # allow_abbrev=False: --max-change is a typo to name, not --max-changes to guess
    parser = Parser(prog=canvas_commands.prog_name(operation.prog), usage=usage, description=description, epilog=epilog,
                    allow_abbrev=False,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
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
                             "TLS); default: the config's ca_bundle, else REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, "
                             "else SSL_CERT_FILE, else the usual ones")
    parser.add_argument("--version", action="version", version=f"%(prog)s {cc.__version__}")
    group = parser.add_argument_group("batches and undo")
    group.add_argument("--csv", metavar="FILE",
                       help=f"run every row of this CSV file ('-' reads stdin); columns: "
                            f"{', '.join(operation.columns)}"
                            + (f" [, {', '.join(operation.optional)}]" if operation.optional else ""))
    group.add_argument("--undo", metavar="LOG",
                       help="put back everything the last job recorded in this audit log changed")
    group.add_argument("--run", metavar="ID", help="with --undo: the job or run to undo (--jobs lists them)")
    group.add_argument("--jobs", metavar="LOG", nargs="?", const=DEFAULT_LOG,
                       help=f"list the jobs of this audit log (default: ./{DEFAULT_LOG}), one a line, "
                            "the newest last: the one --undo puts back; changes nothing")
    group.add_argument("--workers", type=_workers, default=DEFAULT_WORKERS, metavar="N",
                       help="most writes in flight at once, 1-32; fewer when Canvas's rate "
                            f"limiter asks (default: {DEFAULT_WORKERS})")
    group.add_argument("--max-changes", type=non_negative_int, metavar="N",
                       help="stop before making more than N changes (a wrong file must not change "
                            "a whole faculty); --dry-run's summary gives the count")
    group.add_argument("--log", metavar="FILE",
                       help=f"audit log to append to (default: ./{DEFAULT_LOG}); every change is "
                            "logged, one user's too, so --undo can put it back")
    add_round_arguments(parser)
    return parser


class RoleAction(argparse.Action):
    """--role R: one for one user, repeatable with --from; every value is kept in 'roles'."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        namespace.roles = [*(getattr(namespace, "roles", None) or []), values]


def add_round_arguments(parser: Parser) -> None:
    group = parser.add_argument_group("moving to the next round (COURSE is the new round)")
    group.add_argument("--from", dest="from_course", metavar="OLD_COURSE", type=arg_type(canvas_ids.parse_course),
                       help="take the people from this course (the previous round): same role, "
                            "same state (active or inactive), section of the same name")
    if "--role" not in parser._option_string_actions:
        group.add_argument("--role", dest="round_role", action=RoleAction, type=arg_type(canvas_roles.parse_role),
                           metavar="ROLE",
                           help="with --from: the role to carry (repeatable; default: student)")
    group.add_argument("--include-concluded", action="store_true",
                       help="with --from: carry concluded enrollments too (as active)")
    group.add_argument("--export", metavar="FILE",
                       help="with --from --dry-run: write the plan as a CSV that --csv runs (a new file)")


def round_options(operation: Declared, parser: Parser, args: argparse.Namespace) -> rounds.RoundOptions | None:
    """--from's options, checked; None without --from. Usage errors as parser.error."""
    roles = getattr(args, "roles", None)
    if args.from_course is None:
        if args.include_concluded or args.export or getattr(args, "reactivate", False):
            parser.error("--include-concluded, --export and --reactivate go with --from OLD_COURSE")
        if roles and "role" not in operation.optional:
            parser.error("--role goes with --from OLD_COURSE; for one user, ROLE is an argument")
        if roles and len(roles) > 1:
            parser.error("--role is given once for one user; several go with --from OLD_COURSE")
        return None
    if args.course is None or args.sis_id is not None or args.csv or args.undo:
        parser.error("with --from OLD_COURSE give only the new course: "
                     f"{parser.prog} [options] COURSE --from OLD_COURSE")
    if getattr(args, "limit_to_section", None):
        parser.error(f"--limit-to-section does not go with --from: each enrollment keeps its section limit as in "
                     f"{args.from_course}; for one user or a CSV, give it there")
    if getattr(args, "include_temporary", False):
        parser.error("--include-temporary does not go with --from: temporary enrollments are never carried")
    if args.export and not args.dry_run:
        parser.error("--export goes with --dry-run: check the plan, then run it with --csv FILE")
    if args.export:
        problem = rounds.export_problem(args.export)
        if problem:
            parser.error(problem)
    return rounds.RoundOptions(args.from_course, args.course, tuple(roles or ("StudentEnrollment",)),
                               args.include_concluded, args.section, getattr(args, "state", None),
                               args.export, getattr(args, "reactivate", False), args.log or DEFAULT_LOG)


def parse_options(operation: Declared, parser: Parser, argv: Sequence[str]) -> Options:
    """Check the combination of arguments; one usage line if it is wrong."""
    args = parser.parse_args(argv)
    round_from = round_options(operation, parser, args)
    single = None if round_from else operation.single_values(args)
    ways = (single is not None) + (args.csv is not None) + (args.undo is not None) + (round_from is not None) \
        + (args.jobs is not None)
    if ways != 1 or single == {}:
        parser.error(f"give {operation.usage_line}, or --csv FILE, or --undo LOG, or COURSE --from OLD_COURSE, "
                     "or --jobs LOG")
    if single is None and not round_from and operation.per_user_options(args):
        given = operation.per_user_options(args)
        parser.error(f"{'/'.join(given)} {'goes' if len(given) == 1 else 'go'} with one user: "
                     "with --csv, give them as CSV columns")
    if args.run and args.undo is None:
        parser.error("--run goes with --undo LOG")
    return Options(prog=parser.prog, argv=tuple(argv), single=single, csv=args.csv,
                   undo=args.undo, jobs=args.jobs, run_id=args.run, config=args.config, dry_run=args.dry_run,
                   as_json=args.json, verbose=args.verbose, timeout=args.timeout,
                   retries=args.retries, workers=args.workers, log=args.log, ca_bundle=args.ca_bundle,
                   max_changes=args.max_changes,
                   extra=operation.extra_options(args), round=round_from)


def arg_type(parse: Callable[[str], str]) -> Callable[[str], str]:
    """Wrap a parse_* function so argparse reports its ValueError as a usage error."""
    def convert(text: str) -> str:
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


def _workers(text: str) -> int:
    value = non_negative_int(text)
    if not 1 <= value <= 32:
        raise argparse.ArgumentTypeError("--workers must be from 1 to 32")
    return value
