"""Set a user's enrollments in a Canvas course to inactive or active, by SIS ID.

    python set_user_state.py COURSE SIS_ID inactive|active [--role R] [--section S]
    python set_user_state.py --csv FILE      # columns: course_id, sis_user_id, state [, role, section]
    python set_user_state.py --undo LOG      # put back what the last run in LOG changed

Inactive keeps the user's grades visible to teachers and removes the user's
access; active gives it back. Every enrollment the user holds in the course is
changed unless --role/--section narrow it.
"""

from __future__ import annotations

import argparse
import functools

import canvas_runs as runs
import canvas_common as cc

TARGETS = {"inactive": "deactivated", "active": "reactivated"}


def build_parser() -> argparse.ArgumentParser:
    parser = runs.Parser(
        prog="set_user_state.py",
        description="Deactivate or reactivate a user's enrollments in a Canvas course, by SIS ID.",
        usage="%(prog)s [options] COURSE SIS_ID {inactive,active}\n"
              "       %(prog)s [options] --csv FILE\n"
              "       %(prog)s [options] --undo LOG [--run ID]")
    parser.add_argument("course", nargs="?", metavar="COURSE", type=runs.arg_type(cc.parse_course),
                        help="course id (12345) or sis_course_id:XYZ")
    parser.add_argument("sis_id", nargs="?", type=runs.arg_type(cc.parse_sis_id), metavar="SIS_ID",
                        help="the user's SIS ID (exact, case-sensitive)")
    parser.add_argument("state", nargs="?", choices=sorted(TARGETS), type=str.lower, metavar="STATE",
                        help="inactive (keep grades, remove access) or active (give access back)")
    parser.add_argument("--role", type=runs.arg_type(cc.parse_role),
                        help="only change enrollments with this role "
                             "(student, teacher, ta, observer, designer)")
    parser.add_argument("--section", type=runs.arg_type(cc.parse_section),
                        help="only change enrollments in this section (id or sis_section_id:XYZ)")
    runs.add_common_options(parser)
    runs.add_batch_options(parser, undo=True)
    return parser


def parse_row(values: dict):
    """A CSV row's values, checked as the command line checks them; ValueError if bad."""
    state = values["state"].lower()
    if state not in TARGETS:
        raise ValueError(f"unknown state {values['state']!r}: use inactive or active")
    return cc.parse_course(values["course_id"]), cc.parse_sis_id(values["sis_user_id"]), {
        "state": state,
        "role": cc.parse_role(values["role"]) if values.get("role") else None,
        "section": cc.parse_section(values["section"]) if values.get("section") else None}


def plan_user(canvas, course, sis_id, rows, params, dry_run=False):
    """What to change for one user, given their active and inactive enrollments."""
    if not rows:
        raise explain_absence(canvas, course, sis_id)
    return plan(course, sis_id, rows, params["state"], params["role"], params["section"], dry_run)


def plan(course: str, sis_id: str, rows: list[dict], target: str,
         role: str | None = None, section: str | None = None, dry_run: bool = False):
    """One Outcome per selected enrollment: what must change to reach target."""
    selected = [r for r in rows
                if (role is None or r.get("role") == role) and cc.section_matches(r, section)]
    if rows and not selected:
        held = ", ".join(f"{r.get('role')} in section {r.get('course_section_id')}" for r in rows)
        raise cc.CanvasNotFound(
            f"{sis_id} has no enrollment in course {course} matching "
            f"--role/--section (has: {held})")
    outcomes = []
    for row in selected:
        state = row.get("enrollment_state")
        if cc.state_group(state) == target:
            hint = "invited, has not accepted yet" if state in ("invited", "creation_pending") else ""
            outcomes.append(runs.Outcome.from_row(course, sis_id, row, "unchanged",
                                                  dry_run=dry_run, hint=hint))
        else:
            outcomes.append(runs.Outcome.from_row(course, sis_id, row, TARGETS[target],
                                                after=target, dry_run=dry_run))
    return outcomes


def explain_absence(canvas: cc.Canvas, course: str, sis_id: str) -> cc.CanvasError:
    """Why the user has no active or inactive enrollment: ended, not enrolled, or unknown."""
    ended = canvas.enrollments(course, [sis_id], cc.ENDED_STATES)
    if ended:
        states = ", ".join(sorted({r.get("enrollment_state") for r in ended}))
        return cc.CanvasNotFound(
            f"{sis_id}'s enrollment in course {course} is {states}, not active or inactive; "
            "Canvas cannot reactivate or deactivate it: enroll the user again with enroll_user.py")
    if not canvas.user_exists(cc.sis_ref("sis_user_id", sis_id)):
        return cc.no_such_user(sis_id)
    return cc.CanvasNotFound(f"{sis_id} is not enrolled in course {course}")


def apply(canvas: cc.Canvas, outcome: runs.Outcome, params=None) -> runs.Outcome:
    """Make one planned change; after an unclear failure, look before writing again."""
    write = canvas.deactivate if outcome.after == "inactive" else canvas.reactivate
    for attempt in range(3):
        try:
            body = write(outcome.course_id, outcome.enrollment_id)
        except cc.CanvasError as exc:
            if not (exc.unclear or isinstance(exc, cc.CanvasBadRequest)) or attempt == 2:
                raise
            if current_state(canvas, outcome) == outcome.after:
                return outcome  # the lost answer's change was applied
            continue
        if body.get("enrollment_state") != outcome.after:
            raise cc.CanvasBadResponse(
                f"Canvas answered that enrollment {outcome.enrollment_id} is "
                f"{body.get('enrollment_state')!r}, not {outcome.after!r}")
        return outcome


def current_state(canvas: cc.Canvas, outcome: runs.Outcome):
    rows = cc.user_enrollments(canvas, outcome.course_id, outcome.sis_user_id)
    return next((r.get("enrollment_state") for r in rows if r.get("id") == outcome.enrollment_id), None)


JOB = runs.Job(("course_id", "sis_user_id", "state"), parse_row, plan_user, apply)


def set_user_state(course, sis_id, state, *, role=None, section=None, log_path=None,
                   **options) -> int:
    """Bring every selected enrollment of one user to state; return the exit code."""
    return runs.run_one(JOB, course, sis_id, {"state": state, "role": role, "section": section},
                        log_path=log_path, **options)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    given = args.course is not None
    if (args.csv is not None) + (args.undo is not None) + given != 1 or \
            (given and (args.sis_id is None or args.state is None)):
        parser.error("give COURSE SIS_ID STATE, or --csv FILE, or --undo LOG")
    if not given and (args.role or args.section):
        parser.error("with --csv, give role and section as CSV columns")
    if args.run and args.undo is None:
        parser.error("--run goes with --undo LOG")
    common = runs.common_options(args)
    if args.csv is not None:
        work = functools.partial(runs.run_csv, args.csv, JOB, prog=parser.prog,
                                 workers=args.workers, log_path=args.log, **common)
    elif args.undo is not None:
        work = functools.partial(runs.run_undo, args.undo, args.run, prog=parser.prog,
                                 workers=args.workers, **common)
    else:
        work = functools.partial(set_user_state, args.course, args.sis_id, args.state,
                                 role=args.role, section=args.section, log_path=args.log, **common)
    failed = runs.Outcome(args.course, args.sis_id, "failed", dry_run=args.dry_run)
    return runs.run_work(parser.prog, work, args.json, failed)


if __name__ == "__main__":
    raise SystemExit(main())
