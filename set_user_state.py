"""Set a user's enrollments in a Canvas course to inactive or active, by SIS ID.

    python set_user_state.py COURSE SIS_ID inactive|active [--role R] [--section S]
    python set_user_state.py --csv FILE      # columns: course_id, sis_user_id, state [, role, section]
    python set_user_state.py NEW --from OLD  # each person's state in OLD, given in NEW
    python set_user_state.py --undo LOG      # put back what the last job in LOG changed

Inactive keeps the user's grades visible to teachers and removes the user's
access; active gives it back. Every enrollment the user holds in the course is
changed unless --role/--section narrow it.
"""

from __future__ import annotations

import sys

try:  # first contact: a Python without requests gets one line, not a traceback
    import requests  # noqa: F401 -- only to learn that it can be imported
except ImportError:
    import canvas_requirements
    canvas_requirements.missing_requests("set_user_state.py", __name__)

import dataclasses
from collections.abc import Sequence
from typing import Any

import canvas_commands
import canvas_common as cc
import canvas_hints
import canvas_ids
import canvas_jobs as jobs
import canvas_roles as roles

TARGETS = {"inactive": "deactivated", "active": "reactivated"}
# The end of --help; {command} is how the user runs the script (canvas_commands.command).
EXAMPLES = f"""examples:
  Set one user inactive in a course: grades kept, access removed ("active"
  gives it back). Canvas host and token: CANVAS_URL and CANVAS_TOKEN, or
  ./config.json, or --config FILE:
    {{command}} sis_course_id:PHYS2-2027 S1001 inactive

  Every row of a CSV file with the columns course_id, sis_user_id, state;
  see what would change first, then run it (an audit log records each change):
    {{command}} --csv moves.csv --dry-run
    {{command}} --csv moves.csv

  Undo: list the jobs of the audit log (a command for one user is a job too),
  then put back what the last one changed (--run ID picks another):
    {{command}} --jobs
    {{command}} --undo {jobs.DEFAULT_LOG}
"""


@dataclasses.dataclass(frozen=True)
class StateChange(jobs.Request):
    state: str = ""
    role: str | None = None
    section: str | None = None
    temporary: bool = False  # --include-temporary: reactivate temporary enrollments too


class SetState(jobs.Operation[StateChange]):
    name = "set-state"
    prog = "set_user_state.py"
    columns = ("course_id", "sis_user_id", "state")
    optional = ("role", "section")
    usage_line = "COURSE SIS_ID STATE"

    def __init__(self) -> None:
        # (course, SIS ID, section id) -> (line, role) of the block's student-type reactivations
        self.students: dict[tuple[str, str, object], tuple[int, str]] = {}

    def add_own_arguments(self, parser: jobs.Parser) -> None:
        parser.add_argument("state", nargs="?", choices=sorted(TARGETS), type=str.lower, metavar="STATE",
                            help="inactive (keep grades, remove access) or active (give access back)")
        parser.add_argument("--role", type=jobs.arg_type(roles.parse_role), action=jobs.RoleAction,
                            help="only change enrollments with this role (student, teacher, ta, "
                                 "observer, designer, a custom role's name, or role_id:N); with --from: "
                                 "the role to carry (repeatable; default: student)")
        parser.add_argument("--section", type=jobs.arg_type(canvas_ids.parse_section),
                            help="only change enrollments in this section: its id, sis_section_id:XYZ or "
                                 "its name as Canvas shows it (name:2024 for a name of digits)")
        parser.add_argument("--include-temporary", action="store_true",
                            help="with active: reactivate temporary enrollments (lent access) too; "
                                 "without it they are left as they are, and named")
        parser.add_argument("--reactivate", action="store_true",
                            help="with --from: also reactivate in COURSE whoever is active in the old "
                                 "course (by default only 'inactive' is carried)")

    def extra_options(self, args: Any) -> dict[str, Any]:
        return {"include_temporary": True} if args.include_temporary else {}

    def request(self, values: dict, options: jobs.Options, line: int = 0) -> StateChange:
        state = values["state"].lower()
        if state not in TARGETS:
            raise ValueError(f"unknown state {values['state']!r}: use inactive or active")
        return StateChange(canvas_ids.parse_course(values["course_id"]), canvas_ids.parse_sis_id(values["sis_user_id"]),
                           line, state, roles.parse_role(values["role"]) if values.get("role") else None,
                           canvas_ids.parse_section(values["section"]) if values.get("section") else None,
                           bool(options.extra.get("include_temporary")))

    def plan(self, canvas: cc.Canvas, request: StateChange, rows: list[dict], dry_run: bool) -> list[jobs.Change]:
        """One Change per selected enrollment: what must change to reach the state.

        "active" leaves inactive enrollments alone when one selected is active already
        (a section move leaves the old section's row inactive beside the new one)."""
        if not rows:
            raise explain_absence(canvas, request)
        role = roles.resolve(canvas, request.course, request.role, enrolling=False) if request.role else None
        selected = [r for r in rows
                    if (role is None or role.holds(r)) and canvas_ids.section_matches(r, request.section)]
        if not selected:
            raise no_match(canvas, request, role, rows)
        if request.state == "active" and any(cc.state_group(r.get("enrollment_state")) == "active" for r in selected):
            return [plan_row(request, row, dry_run) if cc.state_group(row.get("enrollment_state")) == "active"
                    else left_inactive(canvas, request, row, rows, dry_run) for row in selected]
        if request.state == "active":
            return [self.reactivation(request, row, rows, selected, dry_run) for row in selected]
        return [plan_row(request, row, dry_run) for row in selected]

    def reactivation(self, request: StateChange, row: dict, rows: list[dict], selected: list[dict],
                     dry_run: bool) -> jobs.Change:
        """A temporary enrollment is reactivated only when asked (--include-temporary), and said."""
        if not canvas_hints.is_temporary(row) or cc.state_group(row.get("enrollment_state")) == "active":
            return self.ordinary_reactivation(request, row, rows, selected, dry_run)
        if not request.temporary:
            return jobs.Change.of_row(request, row, "unchanged", dry_run=dry_run,
                                      hint=f"left as it is: {canvas_hints.loan(row)}, lent access that ends by "
                                           "itself; --include-temporary reactivates it")
        change = self.ordinary_reactivation(request, row, rows, selected, dry_run)
        return dataclasses.replace(change, hint="; ".join(filter(None, (
            change.hint, f"{canvas_hints.loan(row)}, reactivated as asked (--include-temporary)"))))

    def prepare(self, canvas: cc.Canvas, course: str, requests: list[StateChange], found: dict,
                map: Any = map, ended: dict | None = None) -> None:
        """A new block: no student-type reactivation planned yet."""
        self.students = {}

    def ordinary_reactivation(self, request: StateChange, row: dict, rows: list[dict], selected: list[dict],
                              dry_run: bool) -> jobs.Change:
        """Reactivate an inactive row unless that makes the user a student twice in its section:
        beside an active student-type enrollment, beside another one this row also selects
        (which one is the admin's choice), or one an earlier row of the block reactivates."""
        twin = canvas_hints.active_student_twin(row, rows)
        if twin:
            return second_student(request, row, twin, dry_run)
        if row.get("type") != "StudentEnrollment" or cc.state_group(row.get("enrollment_state")) == "active":
            return plan_row(request, row, dry_run)
        section = row.get("course_section_id")
        rivals = inactive_rivals(row, selected)
        if rivals:
            return pick_one(request, row, rivals, dry_run)
        other = self.students.setdefault((request.course, request.sis_id, section), (request.line, roles.row_role(row)))
        if other[0] != request.line and other[1] != roles.row_role(row):
            return jobs.Change.of_row(
                request, row, "unchanged", dry_run=dry_run,
                hint=f"left inactive: line {other[0]} reactivates them as {other[1]} in this section; one "
                     "student-type role a section")
        return plan_row(request, row, dry_run)


def plan_row(request: StateChange, row: dict, dry_run: bool) -> jobs.Change:
    state = row.get("enrollment_state")
    if cc.state_group(state) == request.state:
        hint = "invited, has not accepted yet" if state in ("invited", "creation_pending") else \
            canvas_hints.ended_hint(row)
        return jobs.Change.of_row(request, row, "unchanged", dry_run=dry_run, hint=hint)
    return jobs.Change.of_row(request, row, TARGETS[request.state], after=request.state, dry_run=dry_run,
                              warning=canvas_hints.sis_warning(row))


def second_student(request: StateChange, row: dict, twin: dict, dry_run: bool) -> jobs.Change:
    """An inactive student-type enrollment beside an active one in its section: left inactive."""
    return jobs.Change.of_row(request, row, "unchanged", dry_run=dry_run,
                              hint="left inactive: " + canvas_hints.twin_blocks(request.sis_id, row, twin))


def inactive_rivals(row: dict, rows: list[dict]) -> list[dict]:
    """The other inactive student-type enrollments in this inactive student-type row's section:
    only one of them may be reactivated."""
    if row.get("enrollment_state") != "inactive":
        return []
    return canvas_hints.student_twins(row, rows, "inactive")


def pick_one(request: StateChange, row: dict, rivals: list[dict], dry_run: bool) -> jobs.Change:
    held = ", ".join(roles.row_role(r) for r in [row, *rivals])
    return jobs.Change.of_row(
        request, row, "unchanged", dry_run=dry_run,
        hint=f"left inactive: {held} are inactive student-type enrollments in section "
             f"{row.get('course_section_id')}; reactivating both would make the user a student twice "
             "there: pick one with --role")


def left_inactive(canvas: cc.Canvas, request: StateChange, row: dict, rows: list[dict],
                  dry_run: bool) -> jobs.Change:
    """An inactive enrollment beside an active one: not reactivated unless picked."""
    twin = canvas_hints.active_student_twin(row, rows)
    if twin:
        return second_student(request, row, twin, dry_run)
    rivals = inactive_rivals(row, rows)
    if rivals:
        return pick_one(request, row, rivals, dry_run)
    active = [r for r in rows if cc.state_group(r.get("enrollment_state")) == "active"]
    why = "in the same section" if any(r.get("course_section_id") == row.get("course_section_id")
                                       for r in active) else \
        "in another section (a section move leaves the old one inactive)"
    return jobs.Change.of_row(
        request, row, "unchanged", dry_run=dry_run,
        hint=f"left inactive: {request.sis_id} is active in another enrollment {why}; to reactivate this "
             "one too: " + canvas_hints.reactivate_command(canvas.config, request.course, request.sis_id, row))


def no_match(canvas: cc.Canvas, request: StateChange, role: roles.Role | None, rows: list) -> cc.CanvasError:
    """Nothing matches --role/--section: say what the user holds, and why that may be."""
    held = ", ".join(f"{roles.row_role(r)} in section {r.get('course_section_id')}" for r in rows)
    if request.section and not any(canvas_ids.section_matches(r, request.section) for r in rows):
        try:
            canvas.section(request.course, request.section)
        except cc.CanvasNotFound:
            return canvas_hints.section_elsewhere(canvas, request.course, request.section)
    if role and role.builtin and any(r.get("type") == role.label for r in rows):
        custom = {roles.role_arg(r): str(r.get("role")) for r in rows if r.get("type") == role.label}
        return cc.CanvasNotFound(
            f"{request.sis_id} holds no built-in {roles.LABELS.get(role.label)} enrollment in course "
            f"{request.course}, only the custom role "
            f"{', '.join(f'{name} ({arg})' for arg, name in custom.items())} based on it (has: {held}); "
            f"use --role {canvas_commands.shell_quote(next(iter(custom)))}")
    return cc.CanvasNotFound(
        f"{request.sis_id} has no enrollment in course {request.course} matching "
        f"--role/--section (has: {held})")


def explain_absence(canvas: cc.Canvas, request: StateChange) -> cc.CanvasError:
    """Why the user has no active or inactive enrollment: ended, not enrolled, or unknown."""
    course, sis_id = request.course, request.sis_id
    ended = canvas.enrollments(course, [sis_id], [cc.ENDED_STATES]).get(sis_id)
    if ended:
        states = ", ".join(sorted({r.get("enrollment_state") for r in ended}))
        return cc.CanvasNotFound(
            f"{sis_id}'s enrollment in course {course} is {states}, not active or inactive; "
            "Canvas cannot reactivate or deactivate it: enroll the user again with "
            f"{canvas_commands.command('enroll_user.py')}")
    if not canvas.user_exists(canvas_ids.sis_ref("sis_user_id", sis_id)):
        return canvas_hints.unknown_user(canvas, sis_id)
    if request.section:
        try:
            canvas.section(course, request.section)
        except cc.CanvasNotFound:
            return canvas_hints.section_elsewhere(canvas, course, request.section)
    return cc.CanvasNotFound(f"{sis_id} is not enrolled in course {course}")


OPERATION = SetState()


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = jobs.build_parser(
        OPERATION,
        description="Deactivate or reactivate a user's enrollments in a Canvas course, by SIS ID.",
        usage="%(prog)s [options] COURSE SIS_ID {inactive,active}\n"
              "       %(prog)s [options] --csv FILE\n"
              "       %(prog)s [options] COURSE --from OLD_COURSE [--role ROLE ...]\n"
              "       %(prog)s [options] --undo LOG [--run ID]",
        epilog=EXAMPLES.format(command=canvas_commands.command("set_user_state.py")))
    return jobs.run(OPERATION, jobs.parse_options(OPERATION, parser, argv))


if __name__ == "__main__":
    raise SystemExit(main())
