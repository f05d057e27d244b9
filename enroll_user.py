"""Enroll a user in a Canvas course by SIS ID, without ever making a second enrollment.

    python enroll_user.py COURSE SIS_ID ROLE [--section S] [--state active|invited|inactive]

If the user already holds the role in the course (in --section, or in any
section when none is given) nothing is changed: Canvas would otherwise add a
second enrollment in the default section, or silently reactivate one.
"""

from __future__ import annotations

import argparse
import shlex
import sys

import canvas_common as cc

STATES = ("active", "invited", "inactive")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="enroll_user.py", description="Enroll a user in a Canvas course by SIS ID.")
    parser.add_argument("course", type=cc.arg_type(cc.parse_course),
                        help="course id (12345) or sis_course_id:XYZ")
    parser.add_argument("sis_id", type=cc.arg_type(cc.parse_sis_id), metavar="SIS_ID",
                        help="the user's SIS ID (exact, case-sensitive)")
    parser.add_argument("role", type=cc.arg_type(cc.parse_role), metavar="ROLE",
                        help="student, teacher, ta, observer or designer (or StudentEnrollment, ...)")
    parser.add_argument("--section", type=cc.arg_type(cc.parse_section),
                        help="enroll in this section (id or sis_section_id:XYZ); default: the course's default section")
    parser.add_argument("--state", choices=STATES, default="active", type=str.lower,
                        help="state of a new enrollment (default: active, no invitation to accept)")
    parser.add_argument("--notify", action="store_true",
                        help="send Canvas's enrollment notification (off by default)")
    cc.add_common_options(parser)
    return parser


def existing(course: str, sis_id: str, role: str, section, rows: list[dict], dry_run=False):
    """Outcomes for enrollments that already give the user this role, if any."""
    outcomes = []
    for row in rows:
        if row.get("role") != role or not cc.section_matches(row, section):
            continue
        outcome = cc.Outcome.from_row(course, sis_id, row, "unchanged", dry_run=dry_run)
        if row.get("enrollment_state") == "inactive":
            outcome.hint = ("to reactivate: python set_user_state.py "
                            f"{shlex.quote(course)} {shlex.quote(sis_id)} active")
        elif row.get("enrollment_state") in ("invited", "creation_pending"):
            outcome.hint = "invited, has not accepted yet"
        outcomes.append(outcome)
    return outcomes


def create(canvas: cc.Canvas, course, sis_id, role, section, state, notify) -> dict:
    """POST the enrollment; after an unclear failure, look before posting again."""
    for attempt in range(3):
        try:
            return canvas.enroll(course, sis_id, role, state, section, notify)
        except cc.CanvasNotFound:
            if section and canvas.user_exists(cc.sis_ref("sis_user_id", sis_id)):
                raise cc.CanvasNotFound(f"section {section} not found in course {course}") from None
            raise
        except cc.CanvasError as exc:
            if not exc.unclear or attempt == 2:
                raise
            rows = cc.user_enrollments(canvas, course, sis_id)
            found = [r for r in rows if r.get("role") == role and cc.section_matches(r, section)]
            if found:
                return found[0]  # the lost answer's enrollment was made


def enroll_user(course, sis_id, role, *, section=None, state="active", notify=False,
                config=None, dry_run=False, as_json=False, verbose=False, timeout=30.0,
                retries=5) -> int:
    """Enroll one user unless they already hold the role; return the exit code."""
    canvas = cc.connect(config, timeout, retries, verbose)
    report = cc.Reporter(canvas.config.token, as_json)
    rows = cc.user_enrollments(canvas, course, sis_id)
    held = existing(course, sis_id, role, section, rows, dry_run)
    if not held and dry_run and not rows and not canvas.user_exists(cc.sis_ref("sis_user_id", sis_id)):
        raise cc.CanvasNotFound(f"Canvas has no user with SIS ID {sis_id!r} (SIS IDs are case-sensitive)")
    if not held and dry_run:
        section_id = int(section) if section and section.isdigit() else None
        held = [cc.Outcome(course, sis_id, "created", None, role, section_id, None, state, True)]
    elif not held:
        row = create(canvas, course, sis_id, role, section, state, notify)
        held = [cc.Outcome.from_row(course, sis_id, row, "created")]
        held[0].before = None
    for outcome in held:
        report(outcome)
    return cc.EXIT_OK


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return enroll_user(args.course, args.sis_id, args.role, section=args.section,
                           state=args.state, notify=args.notify, config=args.config,
                           dry_run=args.dry_run, as_json=args.json, verbose=args.verbose,
                           timeout=args.timeout, retries=args.retries)
    except cc.CanvasError as exc:
        return cc.report_failure(parser.prog, exc, args.json,
                                 cc.Outcome(args.course, args.sis_id, "failed", role=args.role,
                                            dry_run=args.dry_run))
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
