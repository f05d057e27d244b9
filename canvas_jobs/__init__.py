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

from .changes import Change, Operation, Request, apply, observe, settle, write
from .csvfile import check_csv, csv_rows, open_csv
from .options import DEFAULT_LOG, DEFAULT_WORKERS, Options, Parser, RoleAction, arg_type, build_parser, parse_options
from .pacing import Pacer
from .report import EXIT_OUTPUT_CLOSED, Report
from .runner import Run, run
from .undo import UNDO, Undo

__all__ = ["Change", "Operation", "Request", "apply", "observe", "settle", "write", "check_csv",
           "csv_rows", "open_csv", "DEFAULT_LOG", "DEFAULT_WORKERS", "Options", "Parser", "RoleAction", "arg_type",
           "build_parser", "parse_options", "Pacer", "EXIT_OUTPUT_CLOSED", "Report", "Run", "run", "UNDO", "Undo"]
