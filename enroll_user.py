"""Enroll a user in a Canvas course by SIS ID, without ever making a second enrollment.

    python enroll_user.py COURSE SIS_ID ROLE [--section S] [--state active|invited|inactive]
    python enroll_user.py --csv FILE    # columns: course_id, sis_user_id, role [, section, state]

If the user already holds the role in the course (in --section, or in any
section when none is given) nothing is changed: Canvas would otherwise add a
second enrollment in the default section, or silently reactivate one.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import shlex

import canvas_runs as runs
import canvas_common as cc

STATES = ("active", "invited", "inactive")


def build_parser() -> argparse.ArgumentParser:
    parser = runs.Parser(
        prog="enroll_user.py", description="Enroll a user in a Canvas course by SIS ID.",
        usage="%(prog)s [options] COURSE SIS_ID ROLE\n       %(prog)s [options] --csv FILE")
    parser.add_argument("course", nargs="?", metavar="COURSE", type=runs.arg_type(cc.parse_course),
                        help="course id (12345) or sis_course_id:XYZ")
    parser.add_argument("sis_id", nargs="?", type=runs.arg_type(cc.parse_sis_id), metavar="SIS_ID",
                        help="the user's SIS ID (exact, case-sensitive)")
    parser.add_argument("role", nargs="?", type=runs.arg_type(cc.parse_role), metavar="ROLE",
                        help="student, teacher, ta, observer or designer (or StudentEnrollment, ...)")
    parser.add_argument("--section", type=runs.arg_type(cc.parse_section),
                        help="enroll in this section (id or sis_section_id:XYZ); "
                             "default: the course's default section")
    parser.add_argument("--state", choices=STATES, default=None, type=str.lower,
                        help="state of a new enrollment (default: active, no invitation to accept)")
    parser.add_argument("--notify", action="store_true",
                        help="send Canvas's enrollment notification (off by default)")
    runs.add_common_options(parser)
    runs.add_batch_options(parser)
    return parser


def parse_row(values: dict, notify=False):
    """A CSV row's values, checked as the command line checks them; ValueError if bad."""
    state = (values.get("state") or "active").lower()
    if state not in STATES:
        raise ValueError(f"unknown state {values['state']!r}: use {', '.join(STATES)}")
    return cc.parse_course(values["course_id"]), cc.parse_sis_id(values["sis_user_id"]), {
        "role": cc.parse_role(values["role"]), "state": state, "notify": notify,
        "section": cc.parse_section(values["section"]) if values.get("section") else None}


def existing(course: str, sis_id: str, role: str, section, rows: list[dict], dry_run=False):
    """Outcomes for enrollments that already give the user this role, if any."""
    outcomes = []
    for row in rows:
        if row.get("role") != role or not cc.section_matches(row, section):
            continue
        outcome = runs.Outcome.from_row(course, sis_id, row, "unchanged", dry_run=dry_run)
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


def plan_user(canvas, course, sis_id, rows, params, dry_run=False):
    """Nothing to do if the user holds the role already; otherwise one enrollment to create."""
    role, section = params["role"], params["section"]
    held = existing(course, sis_id, role, section, rows, dry_run)
    if held:
        return held
    if dry_run and not rows and not canvas.user_exists(cc.sis_ref("sis_user_id", sis_id)):
        raise cc.no_such_user(sis_id)
    section_id = int(section) if section and section.isdigit() else None
    return [runs.Outcome(course, sis_id, "created", None, role, section_id, None, params["state"], dry_run)]


def apply(canvas, outcome, params) -> runs.Outcome:
    """Create the planned enrollment and fill in what Canvas made."""
    row = create(canvas, outcome.course_id, outcome.sis_user_id, params["role"],
                 params["section"], params["state"], params["notify"])
    made = runs.Outcome.from_row(outcome.course_id, outcome.sis_user_id, row, "created")
    outcome.enrollment_id, outcome.role = made.enrollment_id, made.role
    outcome.section_id, outcome.after = made.section_id, made.after
    return outcome


JOB = runs.Job(("course_id", "sis_user_id", "role"), parse_row, plan_user, apply)


def enroll_user(course, sis_id, role, *, section=None, state="active", notify=False,
                log_path=None, **options) -> int:
    """Enroll one user unless they already hold the role; return the exit code."""
    params = {"role": role, "section": section, "state": state, "notify": notify}
    return runs.run_one(JOB, course, sis_id, params, log_path=log_path, **options)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.csv is None) == (args.course is None) or \
            (args.course is not None and (args.sis_id is None or args.role is None)):
        parser.error("give COURSE SIS_ID ROLE, or --csv FILE")
    if args.csv is not None and (args.section or args.state):
        parser.error("with --csv, give section and state as CSV columns")
    if args.csv is not None:
        job = dataclasses.replace(JOB, parse=functools.partial(parse_row, notify=args.notify))
        work = functools.partial(runs.run_csv, args.csv, job, prog=parser.prog,
                                 workers=args.workers, log_path=args.log, **runs.common_options(args))
    else:
        work = functools.partial(enroll_user, args.course, args.sis_id, args.role,
                                 section=args.section, state=args.state or "active", notify=args.notify,
                                 log_path=args.log, **runs.common_options(args))
    failed = runs.Outcome(args.course, args.sis_id, "failed", role=args.role, dry_run=args.dry_run)
    return runs.run_work(parser.prog, work, args.json, failed)


if __name__ == "__main__":
    raise SystemExit(main())
