"""Enroll a user in a Canvas course by SIS ID, without ever making a second enrollment.

    python enroll_user.py COURSE SIS_ID ROLE [--section S] [--state active|invited|inactive]
    python enroll_user.py --csv FILE    # columns: course_id, sis_user_id, role [, section, state]
    python enroll_user.py NEW --from OLD  # everyone of OLD (students by default) into NEW
    python enroll_user.py --undo LOG    # delete what the last job in LOG enrolled

If the user already holds the role in the course (in --section, or in any
section when none is given) nothing is changed: Canvas would otherwise add a
second enrollment in the default section, or silently reactivate one. ROLE may
be a custom course role (canvas_roles.py); a POST that Canvas will answer by
reopening a concluded or deleted enrollment is planned, logged and undone as a
reopening.
"""

from __future__ import annotations

import sys

try:  # first contact: a Python without requests gets one line, not a traceback
    import requests  # noqa: F401 -- only to learn that it can be imported
except ImportError:
    import canvas_requirements
    canvas_requirements.missing_requests("enroll_user.py", __name__)

import argparse
import dataclasses
from collections.abc import Sequence
from typing import Any

import canvas_commands
import canvas_common as cc
import canvas_hints
import canvas_ids
import canvas_jobs as jobs
import canvas_roles as roles

STATES = ("active", "invited", "inactive")
# The end of --help; {command} is how the user runs the script (canvas_commands.command).
EXAMPLES = f"""examples:
  Enroll one user as a student (Canvas host and token: CANVAS_URL and
  CANVAS_TOKEN, or ./config.json, or --config FILE):
    {{command}} sis_course_id:PHYS2-2027 S1001 student

  Enroll every row of a CSV file with the columns course_id, sis_user_id, role;
  see what would change first, then run it (an audit log records each change):
    {{command}} --csv enroll.csv --dry-run
    {{command}} --csv enroll.csv

  Undo: list the jobs of the audit log (a command for one user is a job too),
  then put back what the last one changed (deletes the enrollments it created;
  --run ID picks another):
    {{command}} --jobs
    {{command}} --undo {jobs.DEFAULT_LOG}
"""


@dataclasses.dataclass(frozen=True)
class Enrollment(jobs.Request):
    role: str = ""
    section: str | None = None
    state: str = "active"
    notify: bool = False
    limit: bool | None = None  # --limit-to-section / limit_to_section; None: not asked


class Enroll(jobs.Operation[Enrollment]):
    name = "enroll"
    prog = "enroll_user.py"
    columns = ("course_id", "sis_user_id", "role")
    optional = ("section", "state", "limit_to_section")
    usage_line = "COURSE SIS_ID ROLE"
    wants_ended = True  # a POST may reopen one of them

    def __init__(self) -> None:
        self.ended: dict[str, list] = {}  # the block's concluded and deleted rows, by SIS ID
        # (course, SIS ID) -> [(line, role, section as given or None)] of the block's student-type POSTs
        self.students: dict[tuple[str, str], list[tuple[int, str, str | None]]] = {}

    def add_own_arguments(self, parser: jobs.Parser) -> None:
        parser.add_argument("role", nargs="?", type=jobs.arg_type(roles.parse_role), metavar="ROLE",
                            help="student, teacher, ta, observer or designer (or StudentEnrollment, ...), "
                                 "a custom course role by its name in Canvas (Auditor), or role_id:N")
        parser.add_argument("--section", type=jobs.arg_type(canvas_ids.parse_section),
                            help="enroll in this section: its id, sis_section_id:XYZ or its name as Canvas "
                                 "shows it (all digits are an id: name:2024 for a name of digits); "
                                 "default: the course's default section")
        parser.add_argument("--state", choices=STATES, default=None, type=str.lower,
                            help="state of a new enrollment (default: active, no invitation to accept)")
        parser.add_argument("--notify", action="store_true",
                            help="send Canvas's enrollment notification (off by default)")
        parser.add_argument("--limit-to-section", dest="limit_to_section", action="store_const", const="true",
                            help="the enrollment sees and interacts with its own section's users only "
                                 "(Canvas's limit_privileges_to_course_section); for a TA, their section")

    def per_user_options(self, args: argparse.Namespace) -> list[str]:
        return [option.replace("_", "-") for option in super().per_user_options(args)]

    def extra_options(self, args: argparse.Namespace) -> dict[str, Any]:
        return {"notify": args.notify}

    def request(self, values: dict, options: jobs.Options, line: int = 0) -> Enrollment:
        state = (values.get("state") or "active").lower()
        if state not in STATES:
            raise ValueError(f"unknown state {values['state']!r}: use {', '.join(STATES)}")
        return Enrollment(canvas_ids.parse_course(values["course_id"]), canvas_ids.parse_sis_id(values["sis_user_id"]),
                          line, roles.parse_role(values["role"]),
                          canvas_ids.parse_section(values["section"]) if values.get("section") else None,
                          state, bool(options.extra.get("notify")), parse_limit(values.get("limit_to_section")))

    def prepare(self, canvas: cc.Canvas, course: str, requests: list[Enrollment], found: dict,
                map: Any = map, ended: dict | None = None) -> None:
        """The concluded and deleted rows of the users a POST is planned for, which the
        lookups brought (wants_ended): Canvas's POST reopens such a row of the same role and
        section (Course#enroll_user) and the plan, the log and undo must know its state."""
        posting = []
        for request in requests:
            try:
                role = roles.resolve(canvas, course, request.role)
            except cc.CanvasError:
                continue  # the plan says why
            if not [row for row in found.get(request.sis_id, []) if blocks(role, request, row)]:
                posting.append(request.sis_id)
        self.ended = {sis: (ended or {}).get(sis, []) for sis in posting}
        self.students = {}

    def student_planned(self, canvas: cc.Canvas, request: Enrollment,
                        role: roles.Role) -> tuple[int, str, str | None] | None:
        """(line, role, section) of another student-type role this block already plans to POST for the
        user in the same section, which the lookups could not show; records this one if none.

        Sections are compared by Canvas's id (a section given by SIS ID is asked once a run);
        no section means the default one, which the API does not name: it may be any."""
        if role.base_type != "StudentEnrollment":
            return None
        planned = self.students.setdefault((request.course, request.sis_id), [])
        for line, label, other in planned:
            if label != role.label and (not request.section or not other or
                                        section_id(canvas, request.course, request.section) ==
                                        section_id(canvas, request.course, other)):
                return line, label, other
        planned.append((request.line, role.label, request.section))
        return None

    def plan(self, canvas: cc.Canvas, request: Enrollment, rows: list[dict], dry_run: bool) -> list[jobs.Change]:
        """Nothing to do if the user holds the role already (or another student-type role
        in that section); otherwise one POST, planned as the reopening of a concluded or
        deleted row when Canvas will reuse one."""
        role = roles.resolve(canvas, request.course, request.role)
        mine = [row for row in rows if canvas_ids.section_matches(row, request.section)]
        # a temporary enrollment is lent access that ends by itself: never "already enrolled"
        held = [existing(canvas, request, row, rows, dry_run) for row in mine
                if role.holds(row) and not canvas_hints.is_temporary(row)]
        if held:
            return held
        loans = [row for row in rows if role.holds(row) and canvas_hints.is_temporary(row)]
        # Canvas's enroll_user reuses the row of the user, role and section whatever its loan and
        # makes it an ordinary one (end and lender cleared; app/models/course.rb): without
        # --section the POST goes to the default section, which the API does not name
        blocked = [row for row in loans if canvas_ids.section_matches(row, request.section)]
        if blocked:
            return [on_loan(canvas, request, row, dry_run) for row in blocked]
        twins = [row for row in mine if blocks(role, request, row) and not canvas_hints.is_temporary(row)]
        if twins:
            return [second_student_role(canvas, request, role, row, dry_run) for row in twins]
        other = self.student_planned(canvas, request, role)
        if other:
            return [jobs.Change(request.course, request.sis_id, "unchanged", None, role.label, None, None, None,
                                dry_run, section=request.section,
                                hint=f"line {other[0]} enrolls them as {other[1]} {where(other[2], request)}: "
                                     f"one student-type role a section, so not also as {role.label}")]
        ended = [row for row in self.ended.get(request.sis_id, [])
                 if role.holds(row) and canvas_ids.section_matches(row, request.section)]
        # Canvas sets the limit it is sent on a row it reopens, false when none is sent: a POST
        # that may reopen a limited row sends that limit (Course#enroll_user, app/models/course.rb)
        limit = request.limit if request.limit is not None else \
            (True if any(row.get("limit_privileges_to_course_section") for row in ended) else None)
        # said before and after the POST: what the enrollment will be beside, or be like
        lasting = "; ".join(filter(None, [
            *(f"beside {canvas_hints.loan(row)}" for row in loans), section_note(canvas, request),
            "invited without --notify: Canvas sends no invitation e-mail; they see the invitation "
            "when they next log in" if request.state == "invited" and not request.notify else ""]))
        notes = ["" if role.checked else "role not checked: Canvas checks the id", lasting]
        change = jobs.Change(request.course, request.sis_id, "created", None, role.label, None, None,
                             request.state, dry_run, section=request.section, notify=request.notify,
                             role_id=role.id if role.custom else None,
                             reopens=tuple((row["id"], row.get("enrollment_state"),
                                            bool(row.get("limit_privileges_to_course_section"))) for row in ended),
                             hint="; ".join(filter(None, notes)), limited=limit, lasting=lasting)
        # without --section Canvas reuses only the row in the course's default section, which
        # its API does not name: a reopening is planned only when certain, else a creation
        # that says what Canvas may reopen instead (the real run logs what Canvas did)
        if len({row.get("course_section_id") for row in ended}) == 1 and (
                request.section or only_section(canvas, request.course)):
            row = ended[0]
            change = dataclasses.replace(change, action="reopened", enrollment_id=row["id"],
                                         section_id=row.get("course_section_id"),
                                         before=row.get("enrollment_state"),
                                         limit_before=bool(row.get("limit_privileges_to_course_section")),
                                         warning=canvas_hints.sis_warning(row)
                                         if row.get("enrollment_state") != "deleted" else None)
        elif ended:
            change = dataclasses.replace(change, hint="; ".join(filter(None, (change.hint, may_reopen(ended)))))
        in_course = bool(rows or self.ended.get(request.sis_id))  # any row, in any section or state
        return [check_enrollable(canvas, change, in_course) if dry_run else change]


def on_loan(canvas: cc.Canvas, request: Enrollment, row: dict, dry_run: bool) -> jobs.Change:
    """The user holds the role only by a loan where the POST would go: nothing is made."""
    where = "in this section" if request.section else \
        "in section " + str(row.get("course_section_id")) + (
            ", the course's only section, where a POST without --section goes" if only_section(canvas, request.course)
            else ", which may be the course's default section, where a POST without --section goes")
    hint = (f"holds this role only by {canvas_hints.loan(row)} {where}; Canvas would turn that loan into this "
            "enrollment (same row, its end date cleared) instead of making one beside it, so none was made: "
            "give --section of another section, or end the loan first")
    return jobs.Change.of_row(request, row, "unchanged", dry_run=dry_run, hint=hint)


def parse_limit(text: str | None) -> bool | None:
    """A limit_to_section cell or --limit-to-section: true/yes/1/x, false/no/0, empty for not asked."""
    word = (text or "").strip().lower()
    if not word:
        return None
    if word in ("true", "yes", "1", "x", "y"):
        return True
    if word in ("false", "no", "0", "n"):
        return False
    raise ValueError(f"limit_to_section {text!r}: use true or false (or leave it empty)")


def section_note(canvas: cc.Canvas, request: Enrollment) -> str:
    """For a POST into a section ended by its own dates: the enrollment will be read-only. The
    section as --from's sections list showed it, else GET .../sections/:id once a run."""
    if not request.section:
        return ""
    section = canvas.listed_section(request.course, request.section)
    if section is None:
        try:
            section = canvas.section(request.course, request.section)
        except cc.CanvasError:
            return ""  # the POST, or the dry run's check, says what is wrong with it
    return canvas_hints.section_ended(section)


def may_reopen(ended: list[dict]) -> str:
    """What a POST without --section may reopen instead of making a new enrollment."""
    rows = [f"enrollment {row['id']} ({row.get('enrollment_state')}, section {row.get('course_section_id')})"
            for row in ended]
    which = rows[0] if len(rows) == 1 else "whichever of " + ", ".join(rows)
    return (f"Canvas reopens {which} instead if it is in the course's default section (its API does not "
            "say which section that is); give --section to be sure")


def where(other: str | None, request: Enrollment) -> str:
    """Where another row's enrollment goes, said truly beside this row's section."""
    if other and request.section:
        return "in this section"
    if not other and not request.section:
        return "in the course's default section too"
    if other:
        return f"in section {other}, which may be the course's default section, where this row goes"
    return "in the course's default section, which may be this one"


def section_id(canvas: cc.Canvas, course: str, section: str) -> str:
    """A section as Canvas's id (a SIS ID asked once a run), to tell two spellings apart; the
    text as given when the token's scopes or rights do not let us ask."""
    try:
        return str(canvas.section(course, section).get("id"))
    except (cc.CanvasForbidden, cc.CanvasScopeMissing, cc.CanvasNotFound):
        return section


def only_section(canvas: cc.Canvas, course: str) -> bool:
    """True when the course has one section, which is then its default one: where a POST
    without a section goes. Asked only when an ended row may be reopened (one lookup a run)."""
    try:
        return len(canvas.sections(course)) == 1
    except (cc.CanvasForbidden, cc.CanvasScopeMissing):
        return False


def blocks(role: roles.Role, request: Enrollment, row: dict) -> bool:
    """True when a row makes a POST for this role wrong: the same role, or another
    student-type role (Auditor) where a second one would double the student in the
    gradebook. Staff may hold two roles (Teacher and a teacher-based Examiner)."""
    if not canvas_ids.section_matches(row, request.section):
        return False
    if role.holds(row):
        return True
    return role.base_type == "StudentEnrollment" and row.get("type") == "StudentEnrollment"


def second_student_role(canvas: cc.Canvas, request: Enrollment, role: roles.Role, row: dict,
                        dry_run: bool) -> jobs.Change:
    """The user already is a student under another role: say so, change nothing."""
    hint = (f"that is {roles.row_role(row)}: {role.describe()} would make a second student-type "
            f"enrollment, so none was made (to switch roles, conclude or delete enrollment "
            f"{row.get('id')} in Canvas first)")
    if row.get("enrollment_state") == "inactive":
        command = canvas_hints.reactivate_command(canvas.config, request.course, request.sis_id, row)
        hint += f"; to reactivate it: {command}"
    return jobs.Change.of_row(request, row, "unchanged", dry_run=dry_run, hint=hint)


def check_enrollable(canvas: cc.Canvas, change: jobs.Change, in_course: bool) -> jobs.Change:
    """What the POST would check, without it: course open (by its dates too), section of
    this course, user known. What the token's scopes do not let us ask is said, not fatal."""
    unchecked: list[str] = []
    course = ask(canvas.course, unchecked, "whether the course is concluded", change.course_id)
    section = None
    if change.section:
        try:
            section = ask(canvas.section, unchecked, "the section", change.course_id, change.section)
        except cc.CanvasNotFound:
            raise canvas_hints.section_elsewhere(canvas, change.course_id, change.section) from None
        if section:
            change = dataclasses.replace(change, section_id=section.get("id"), section_name=section.get("name"))
    concluded = bool(course) and (course.get("concluded") or course.get("workflow_state") == "completed")
    # enrollments_api_controller.rb create: a user already in the course may still be
    # added to a section that is open (its own dates); nobody else
    if concluded and not (section and in_course and section_open(section)):
        why = "" if course.get("workflow_state") == "completed" else " by its end date or its term's"
        raise cc.CanvasBadRequest(f"course {change.course_id} is concluded{why}: Canvas adds no "
                                  "enrollments to a concluded course")
    if not in_course:
        known = ask(canvas.user_exists, unchecked, "that the user exists",
                    canvas_ids.sis_ref("sis_user_id", change.sis_user_id))
        if known is False:
            raise canvas_hints.unknown_user(canvas, change.sis_user_id)
    if unchecked:
        note = "not checked, the developer key's scopes leave it out: " + "; ".join(unchecked)
        change = dataclasses.replace(change, hint="; ".join(h for h in (change.hint, note) if h))
    return change


def ask(lookup, unchecked: list, what: str, *args):
    """A dry run's lookup; None (and a note) when the token's scopes do not allow it."""
    try:
        return lookup(*args)
    except cc.CanvasScopeMissing as exc:
        unchecked.append(f"{what} ({exc.scope})")
        return None


def section_open(section: dict) -> bool:
    """CourseSection#concluded? (app/models/course_section.rb): its own end date counts
    when restrict_enrollments_to_section_dates is set, else the course's (concluded)."""
    end_at = section.get("end_at")
    if not (end_at and section.get("restrict_enrollments_to_section_dates")):
        return False
    return canvas_hints.ended_on({"end_at": end_at}) is None


def existing(canvas: cc.Canvas, request: Enrollment, row: dict, rows: list[dict], dry_run: bool) -> jobs.Change:
    """An enrollment that already gives the user this role: left as it is, with a hint."""
    state = row.get("enrollment_state")
    hint = ""
    twin = canvas_hints.active_student_twin(row, rows)
    if twin:
        hint = "it stays inactive: " + canvas_hints.twin_blocks(request.sis_id, row, twin)
    elif state == "inactive":
        hint = f"to reactivate: {canvas_hints.reactivate_command(canvas.config, request.course, request.sis_id, row)}"
    elif state in ("invited", "creation_pending"):
        hint = "invited, has not accepted yet"
    elif state == "active":
        hint = canvas_hints.ended_hint(row)
    return jobs.Change.of_row(request, row, "unchanged", dry_run=dry_run, hint=hint)


OPERATION = Enroll()


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = jobs.build_parser(
        OPERATION, description="Enroll a user in a Canvas course by SIS ID.",
        usage="%(prog)s [options] COURSE SIS_ID ROLE\n       %(prog)s [options] --csv FILE\n"
              "       %(prog)s [options] COURSE --from OLD_COURSE [--role ROLE ...]\n"
              "       %(prog)s [options] --undo LOG [--run ID]",
        epilog=EXAMPLES.format(command=canvas_commands.command("enroll_user.py")))
    return jobs.run(OPERATION, jobs.parse_options(OPERATION, parser, argv))


if __name__ == "__main__":
    raise SystemExit(main())
