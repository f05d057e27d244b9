"""What Canvas will do later, or did elsewhere, told beside a change: an SIS import that
may undo a change made by hand, an enrollment's own end date, a section cross-listed
into another course."""

from __future__ import annotations

from datetime import datetime, timezone

import canvas_commands
import canvas_common as cc
import canvas_roles

SIS_WARNING = ("made by an SIS import (sis_import_id {id}): the next SIS import may put its "
               "state back, since Canvas does not keep a state changed by hand out of SIS imports")


def sis_warning(row: dict) -> str | None:
    """For a write on a row an SIS import made: the next SIS import that lists it sets its
    workflow_state from the row's status again (lib/sis/enrollment_importer.rb).
    sis_import_id is shown only to tokens that may manage SIS data (lib/api/v1/user.rb)."""
    sis_import = row.get("sis_import_id")
    return SIS_WARNING.format(id=sis_import) if sis_import else None


def ended_on(row: dict, now: datetime | None = None) -> str | None:
    """The date an enrollment's own end_at passed, or None: Canvas treats it as concluded
    (read-only) from then on whatever its workflow state (app/models/enrollment.rb, its
    date-based state; spec/models/enrollment_spec.rb "date completed")."""
    end_at = row.get("end_at")
    if not isinstance(end_at, str) or not end_at:
        return None
    try:
        moment = datetime.fromisoformat(end_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return end_at[:10] if moment < (now or datetime.now(timezone.utc)) else None


def is_temporary(row: dict) -> bool:
    """A temporary enrollment: access lent by another user until its end_at
    (temporary_enrollment_source_user_id, app/models/enrollment.rb temporary_enrollment?).
    Canvas shows the field only when the account has the feature on: else no row is one."""
    return row.get("temporary_enrollment_source_user_id") is not None


def loan(row: dict) -> str:
    """'temporary enrollment N (lent by user U, ends D)': a temporary row named with its end."""
    end = row.get("end_at")
    date = ended_on(row)
    until = f"ended on {date}" if date else f"ends {end[:10]}" if isinstance(end, str) and end else "no end date"
    return (f"temporary enrollment {row.get('id')} (lent by user {row.get('temporary_enrollment_source_user_id')}, "
            f"{until})")


def unknown_user(canvas: cc.Canvas, sis_id: str) -> cc.CanvasNotFound:
    """'no user with SIS ID X', naming whose login ID X is when it is one (one more request,
    GET /api/v1/users/sis_login_id:X, made only now that the SIS ID was not found)."""
    owner = canvas.login_owner(sis_id)
    return cc.no_such_user(sis_id, owner)


def section_ended(section: dict | None) -> str:
    """For a POST into a section ended by its own dates (restrict_enrollments_to_section_dates
    and end_at passed: CourseSection#concluded?, app/models/course_section.rb): the enrollment
    will be read-only. '' otherwise."""
    if not section or not section.get("restrict_enrollments_to_section_dates"):
        return ""
    date = ended_on({"end_at": section.get("end_at")})
    return (f"section {section.get('name')!r} ended on {date} by its own dates: the enrollment will be "
            "read-only (change the section's end date in Canvas to open it)") if date else ""


def ended_hint(row: dict) -> str:
    """'it ended on D' for an active row past its own end date, else ''."""
    date = ended_on(row)
    if not date:
        return ""
    return (f"but it ended on {date} (its own end date): Canvas treats it as concluded since then "
            "(read-only); reactivating cannot help (dates are not state): change the enrollment's "
            "end date in Canvas")


MAX_SECTIONS_LISTED = 30  # sections named in a refusal; the rest are counted


def section_listing(sections: list[dict]) -> str:
    """'"Lab A" (id 3), "Lab B" (id 4)', the first MAX_SECTIONS_LISTED of them."""
    shown = ", ".join(f'"{s.get("name")}" (id {s.get("id")})' for s in sections[:MAX_SECTIONS_LISTED])
    more = f" and {len(sections) - MAX_SECTIONS_LISTED} more" if len(sections) > MAX_SECTIONS_LISTED else ""
    return shown + more


def section_elsewhere(canvas: cc.Canvas, course: str, section: str) -> cc.CanvasNotFound:
    """Why a section is not in a course: cross-listed into another one (named), or unknown.

    One GET /api/v1/sections/:id, asked only after the course's own section lookup failed."""
    found = canvas.any_section(section)
    if not found or found.get("course_id") is None:
        try:  # asked once a run already, for the names in the lines
            listed = section_listing(canvas.sections(course))
        except cc.CanvasError:
            listed = ""
        return cc.CanvasNotFound(f"section {section} not found in course {course}"
                                 + (f"; its sections: {listed}" if listed else ""))
    now_in = found.get("course_id")
    if found.get("nonxlist_course_id") is not None:
        return cc.CanvasNotFound(
            f"section {section} ({found.get('name')}) was cross-listed into course {now_in}, with its "
            f"enrollments; it is no longer in course {course}: use course {now_in}")
    return cc.CanvasNotFound(f"section {section} not found in course {course}: it is a section of "
                             f"course {now_in} ({found.get('name')})")


def concluded_why(canvas: cc.Canvas, course: str) -> str:
    """Why Canvas calls an `available` course concluded (one lookup, after the refusal), or ''."""
    try:
        state = canvas.course(course).get("workflow_state")
    except cc.CanvasError:
        return ""
    if state == "completed":
        return ""
    return (" (its state is available, but its end date or its term's has passed; someone already "
            "in the course may still be added to a section open by its own dates, with --section)")


def student_twins(row: dict, rows: list[dict], group: str) -> list[dict]:
    """The user's other enrollments of a student type (built-in or custom, as Auditor) in this
    student-type row's section whose state group (cc.state_group) is group: one student-type
    role a section, so at most one of them may be active."""
    if row.get("type") != "StudentEnrollment":
        return []
    return [r for r in rows if r.get("id") != row.get("id") and r.get("type") == "StudentEnrollment"
            and r.get("course_section_id") == row.get("course_section_id")
            and cc.state_group(r.get("enrollment_state")) == group]


def active_student_twin(row: dict, rows: list[dict]) -> dict | None:
    """An active (or invited) student-type enrollment beside this inactive student-type row in
    its section: reactivating the row would make the user a student twice there."""
    if cc.state_group(row.get("enrollment_state")) == "active":
        return None
    return next(iter(student_twins(row, rows, "active")), None)


def twin_blocks(sis_id: str, row: dict, twin: dict) -> str:
    """Why an inactive student-type row is not to be reactivated beside its active twin."""
    return (f"{sis_id} is {twin.get('enrollment_state')} in section {row.get('course_section_id')} as "
            f"{canvas_roles.row_role(twin)} (enrollment {twin.get('id')}); reactivating this one would "
            "make a second student-type enrollment there (deactivate that one first to switch)")


def reactivate_command(config: cc.Config, course: str, sis_id: str, row: dict) -> str:
    """The set_user_state command that reactivates exactly this enrollment row: its
    section and its role, in a form that reaches it (canvas_roles.role_arg), with the
    --config FILE this run was given, so that it works as pasted."""
    options = ("--section", str(row.get("course_section_id")), "--role", canvas_roles.role_arg(row),
               *canvas_commands.config_args(config))
    positional = (course, sis_id, "active")
    # a SIS ID that starts with - is taken for an option unless it comes after --
    dashed = any(a.startswith("-") for a in positional)
    args = (*options, "--", *positional) if dashed else (*positional, *options)
    return f"{canvas_commands.command('set_user_state.py')} " + " ".join(canvas_commands.shell_quote(a) for a in args)
