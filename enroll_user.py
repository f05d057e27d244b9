"""Enroll a user in a Canvas course by SIS ID, without ever making a second enrollment.

    python enroll_user.py COURSE SIS_ID ROLE [--section S] [--state active|invited|inactive]
    python enroll_user.py --csv FILE    # columns: course_id, sis_user_id, role [, section, state]
    python enroll_user.py --undo LOG    # delete what the last job in LOG enrolled

If the user already holds the role in the course (in --section, or in any
section when none is given) nothing is changed: Canvas would otherwise add a
second enrollment in the default section, or silently reactivate one.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from typing import Any

import canvas_common as cc
import canvas_jobs as jobs

STATES = ("active", "invited", "inactive")
# The end of --help; {command} is how the user runs the script (cc.command).
EXAMPLES = f"""examples:
  Enroll one user as a student (Canvas host and token: CANVAS_URL and
  CANVAS_TOKEN, or ./config.json, or --config FILE):
    {{command}} sis_course_id:PHYS2-2027 S1001 student

  Enroll every row of a CSV file with the columns course_id, sis_user_id, role;
  see what would change first, then run it (an audit log records each change):
    {{command}} --csv enroll.csv --dry-run
    {{command}} --csv enroll.csv

  Undo: put back what the last job in the audit log changed (deletes the
  enrollments it created):
    {{command}} --undo {jobs.DEFAULT_LOG}
"""


@dataclasses.dataclass(frozen=True)
class Enrollment(jobs.Request):
    role: str = ""
    section: str | None = None
    state: str = "active"
    notify: bool = False


class Enroll(jobs.Operation[Enrollment]):
    name = "enroll"
    prog = "enroll_user.py"
    columns = ("course_id", "sis_user_id", "role")
    optional = ("section", "state")
    usage_line = "COURSE SIS_ID ROLE"

    def add_own_arguments(self, parser: jobs.Parser) -> None:
        parser.add_argument("role", nargs="?", type=jobs.arg_type(cc.parse_role), metavar="ROLE",
                            help="student, teacher, ta, observer or designer (or StudentEnrollment, ...)")
        parser.add_argument("--section", type=jobs.arg_type(cc.parse_section),
                            help="enroll in this section (id or sis_section_id:XYZ); "
                                 "default: the course's default section")
        parser.add_argument("--state", choices=STATES, default=None, type=str.lower,
                            help="state of a new enrollment (default: active, no invitation to accept)")
        parser.add_argument("--notify", action="store_true",
                            help="send Canvas's enrollment notification (off by default)")

    def extra_options(self, args: argparse.Namespace) -> dict[str, Any]:
        return {"notify": args.notify}

    def request(self, values: dict, options: jobs.Options, line: int = 0) -> Enrollment:
        state = (values.get("state") or "active").lower()
        if state not in STATES:
            raise ValueError(f"unknown state {values['state']!r}: use {', '.join(STATES)}")
        return Enrollment(cc.parse_course(values["course_id"]), cc.parse_sis_id(values["sis_user_id"]),
                          line, cc.parse_role(values["role"]),
                          cc.parse_section(values["section"]) if values.get("section") else None,
                          state, bool(options.extra.get("notify")))

    def plan(self, canvas: cc.Canvas, request: Enrollment, rows: list[dict], dry_run: bool) -> list[jobs.Change]:
        """Nothing to do if the user holds the role already; otherwise one enrollment to create."""
        held = [existing(request, row, dry_run) for row in rows
                if row.get("role") == request.role and cc.section_matches(row, request.section)]
        if held:
            return held
        change = jobs.Change(request.course, request.sis_id, "created", None, request.role, None, None,
                             request.state, dry_run, section=request.section, notify=request.notify)
        return [check_enrollable(canvas, change, bool(rows)) if dry_run else change]


def check_enrollable(canvas: cc.Canvas, change: jobs.Change, has_rows: bool) -> jobs.Change:
    """What the POST would check, without it: course open, section of this course, user known."""
    course = canvas.course(change.course_id)
    if course.get("workflow_state") == "completed":
        raise cc.CanvasBadRequest(f"course {change.course_id} is concluded: Canvas adds no "
                                  "enrollments to a concluded course")
    if change.section:
        section = canvas.section(change.course_id, change.section)
        change = dataclasses.replace(change, section_id=section.get("id"), section_name=section.get("name"))
    if not has_rows and not canvas.user_exists(cc.sis_ref("sis_user_id", change.sis_user_id)):
        raise cc.no_such_user(change.sis_user_id)
    return change


def existing(request: Enrollment, row: dict, dry_run: bool) -> jobs.Change:
    """An enrollment that already gives the user this role: left as it is, with a hint."""
    state = row.get("enrollment_state")
    hint = ""
    if state == "inactive":
        hint = (f"to reactivate: {cc.command('set_user_state.py')} "
                f"{cc.shell_quote(request.course)} {cc.shell_quote(request.sis_id)} active")
    elif state in ("invited", "creation_pending"):
        hint = "invited, has not accepted yet"
    return jobs.Change.of_row(request, row, "unchanged", dry_run=dry_run, hint=hint)


OPERATION = Enroll()


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = jobs.build_parser(
        OPERATION, description="Enroll a user in a Canvas course by SIS ID.",
        usage="%(prog)s [options] COURSE SIS_ID ROLE\n       %(prog)s [options] --csv FILE\n"
              "       %(prog)s [options] --undo LOG [--run ID]",
        epilog=EXAMPLES.format(command=cc.command("enroll_user.py")))
    return jobs.run(OPERATION, jobs.parse_options(OPERATION, parser, argv))


if __name__ == "__main__":
    raise SystemExit(main())
