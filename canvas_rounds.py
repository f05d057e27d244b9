"""Carrying a course round into the next one (--from OLD_COURSE): Canvas rosters in, batch rows out.

The old course's roster and both courses' sections are read in bulk
(GET /api/v1/courses/:id/enrollments and /sections, 100 per page) and turned
into the values a --csv row has (course_id, sis_user_id, role, section,
state), so the runner plans, logs, resumes, paces, undoes and reports them
like any batch, and --export writes exactly those rows. The new course's
enrollments are read once here and handed to the runner, which then looks
nobody up again.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os

import canvas_common as cc

SHORT_ROLES = {type_name: short for short, type_name in cc.ROLES.items()}
HELD_STATES = cc.ACTIVE_STATES + cc.INACTIVE_STATES
MAX_NAMED = 50  # people named in a note; the rest are counted


@dataclasses.dataclass(frozen=True)
class RoundOptions:
    """--from and the options that go with it.

    old, new: courses as checked by cc.parse_course; roles: what cc.parse_role
    gives (Canvas type names; a custom role's name or role_id:N once roles allow
    them); section: --section (cc.parse_section) or None; state: enroll_user's
    --state, which replaces the carried state for everyone, or None; export: a file path or None.
    """

    old: str
    new: str
    roles: tuple[str, ...] = ("StudentEnrollment",)
    include_concluded: bool = False
    section: str | None = None
    state: str | None = None
    export: str | None = None

    def digest(self) -> str:
        """What makes a rerun the same job: the command's choices, never Canvas's data,
        which a cut-short run has itself changed."""
        return "from:" + json.dumps([self.old, self.new, sorted(self.roles), self.include_concluded,
                                     self.section, self.state])


@dataclasses.dataclass
class Round:
    """What --from found: rows for the runner, the new course's enrollments by SIS ID, notes."""

    rows: list[tuple[int, dict]]
    known: dict[str, list[dict]]  # SIS ID -> the new course's active and inactive enrollments, any role
    ended: dict[str, list[dict]]  # SIS ID -> its concluded and deleted ones, which a POST may reopen
    notes: list[str]


# --- reading Canvas ------------------------------------------------------------


def roster(canvas: cc.Canvas, course: str, roles, states) -> list[dict]:
    """GET /api/v1/courses/:course_id/enrollments with state[] (and type[] when every role
    is built in), 100 per page; the rows holding one of roles (every row when roles is
    None). CanvasError as any list.

    type[] also matches custom roles built on a type (enrollments_api_controller.rb),
    so rows are kept by their role name; a custom role alone is read without type[].
    """
    params: dict = {"state[]": list(states)}
    if roles is not None and all(role in SHORT_ROLES for role in roles):
        params["type[]"] = sorted(set(roles))
    rows = canvas.get_all(f"{cc.course_path(course)}/enrollments", params,
                          f"course {course} not found: check the course id")
    if rows and not any("sis_user_id" in row or "sis_user_id" in (row.get("user") or {}) for row in rows):
        raise cc.CanvasForbidden("Canvas hides SIS IDs from this token; the token's user needs "
                                 "permission to read SIS data")
    return [row for row in rows if isinstance(row, dict) and
            (roles is None or any(holds(row, role) for role in roles))]


def holds(row: dict, role: str) -> bool:
    """Whether an enrollment row has role: a type name, role_id:N, or a custom role's name (any case)."""
    if role.startswith("role_id:"):
        return str(row.get("role_id")) == role[len("role_id:"):]
    shown = row.get("role") or row.get("type") or ""
    return shown == role if role in SHORT_ROLES else shown.casefold() == role.casefold()


def role_word(row: dict) -> str:
    """The role as a CSV row gives it: student, ta, ... or the custom role's name as Canvas shows it."""
    shown = row.get("role") or row.get("type") or ""
    return SHORT_ROLES.get(shown, shown)


def group(states) -> str:
    """One state group for a person's enrollments in the old course: active if any is
    active-like (or concluded, when those are carried), else inactive."""
    return "inactive" if all(s in cc.INACTIVE_STATES for s in states) else "active"


# --- from rosters to rows -----------------------------------------------------------


def read_round(canvas: cc.Canvas, options: RoundOptions, operation: str) -> Round:
    """Read both courses and make the rows of `operation` ("enroll" or "set-state")."""
    if options.old == options.new:
        raise cc.ConfigError(f"--from {options.old} names the course itself: give the previous round")
    if options.section:  # once, before anything: a wrong --section would fail every row
        canvas.section(options.new, options.section)
    old_rows = roster(canvas, options.old, options.roles, (*HELD_STATES, "completed"))
    # every role and state: the plan weighs other roles (a student-type custom role) and the
    # concluded or deleted rows a POST would reopen (Course#enroll_user), all from this one read
    new_rows = roster(canvas, options.new, None, (*HELD_STATES, *cc.ENDED_STATES))
    people, notes = carried(old_rows, options)
    in_new: dict = {}
    ended_in_new: dict = {}
    for row in new_rows:
        into = in_new if row.get("enrollment_state") in HELD_STATES else ended_in_new
        into.setdefault(row.get("user_id"), []).append(row)
    known = {sis: in_new.get(person["user_id"], []) for (sis, _), person in people.items()}
    ended = {sis: ended_in_new.get(person["user_id"], []) for (sis, _), person in people.items()}
    # the roster just showed these users: a dry run need not ask whether they exist
    canvas.known_users.update(cc.sis_ref("sis_user_id", sis) for sis, _ in people)
    if operation == "enroll":
        values, counts = enroll_values(canvas, options, people, in_new)
    else:
        values, counts = state_values(options, people, in_new)
    rows = [(line, {"course_id": options.new, **v}) for line, v in enumerate(values, start=2)]
    roles = ", ".join(dict.fromkeys(SHORT_ROLES.get(r, r) for r in options.roles))
    notes.insert(0, f"from course {options.old} ({roles}): " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return Round(rows, known, ended, notes)


def carried(old_rows: list[dict], options: RoundOptions):
    """({(SIS ID, role): person}, notes): who is carried, with the old sections and states
    of each role; people without a SIS ID and concluded enrollments are named in notes."""
    people: dict = {}
    no_sis: dict = {}
    concluded = set()
    for row in old_rows:
        state = row.get("enrollment_state")
        if state == "completed" and not options.include_concluded:
            concluded.add((row.get("user_id"), role_word(row)))
            continue
        sis = cc.row_sis_id(row)
        if sis is None:
            user = row.get("user") or {}
            no_sis[row.get("user_id")] = f"{user.get('name') or user.get('sortable_name') or '?'} " \
                                         f"(user {row.get('user_id')})"
            continue
        person = people.setdefault((sis, role_word(row)), {"user_id": row.get("user_id"), "sections": {}})
        person["sections"].setdefault(row.get("course_section_id"), []).append(state)
    concluded -= {(p["user_id"], role) for (_, role), p in people.items()}
    notes = []
    if concluded:
        notes.append(f"left out: {len(concluded)} concluded in course {options.old} "
                     "(--include-concluded carries them, as active)")
    if no_sis:
        named = list(no_sis.values())
        more = f" and {len(named) - MAX_NAMED} more" if len(named) > MAX_NAMED else ""
        notes.append(f"skipped: {len(named)} without a SIS ID in course {options.old}: "
                     f"{'; '.join(named[:MAX_NAMED])}{more}")
    return people, notes


def enroll_values(canvas: cc.Canvas, options: RoundOptions, people: dict, in_new: dict):
    """Rows for enroll_user: each person in the new section of their old section's name,
    else the default section (or --section); one row without a section for anyone
    already holding the role in the new course, whom the plan then leaves unchanged."""
    targets = {} if options.section else section_targets(canvas, options)
    names = dict(targets.values())
    values: list[dict] = []
    per_section: dict[str, set] = {}
    held = 0
    for (sis, role), person in people.items():
        if any(role_word(r) == role for r in in_new.get(person["user_id"], [])):
            held += 1
            states = [s for states in person["sections"].values() for s in states]
            values.append({"sis_user_id": sis, "role": role, "section": "",
                           "state": options.state or group(states)})
            continue
        by_target: dict = {}
        for old_section, states in person["sections"].items():
            target = options.section or targets.get(old_section, ("", ""))[0]
            by_target.setdefault(target, []).extend(states)
        for target, states in by_target.items():
            values.append({"sis_user_id": sis, "role": role, "section": target,
                           "state": options.state or group(states)})
            label = f"to section {names[target]!r} ({target})" if target in names else \
                f"to section {target}" if target else "to the default section"
            per_section.setdefault(label, set()).add(sis)
    counts = {"people": len({sis for sis, _ in people}),
              **{label: len(who) for label, who in sorted(per_section.items())},
              "already in the new course with the role (left as they are)": held}
    return values, counts


def section_targets(canvas: cc.Canvas, options: RoundOptions) -> dict:
    """{old section id: (new section as a SECTION argument, its name)} for names both courses
    have; a name the new course has twice goes to the default section, as an unknown one."""
    new_by_name: dict = {}
    for section in canvas.sections(options.new):
        new_by_name.setdefault((section.get("name") or "").strip(), []).append(section)
    targets = {}
    for section in canvas.sections(options.old):
        same = new_by_name.get((section.get("name") or "").strip(), [])
        if len(same) == 1:
            sis = same[0].get("sis_section_id")
            targets[section.get("id")] = (f"sis_section_id:{sis}" if sis else str(same[0]["id"]),
                                          same[0].get("name"))
    return targets


def state_values(options: RoundOptions, people: dict, in_new: dict):
    """Rows for set_user_state: the old course's state group for each person who holds
    the role in both courses; the plan changes only those whose group differs."""
    values, missing = [], 0
    wanted = {"active": 0, "inactive": 0}
    for (sis, role), person in people.items():
        if not any(role_word(r) == role for r in in_new.get(person["user_id"], [])):
            missing += 1
            continue
        state = group(s for states in person["sections"].values() for s in states)
        wanted[state] += 1
        values.append({"sis_user_id": sis, "state": state, "role": role, "section": options.section or ""})
    counts = {"people in both courses": len(values), "active in the old course": wanted["active"],
              "inactive in the old course": wanted["inactive"],
              f"not in course {options.new} with the role (left out)": missing}
    return values, counts


# --- --export ------------------------------------------------------------------------


def export(path: str, columns, rows) -> None:
    """Write rows as a CSV that --csv reads back (UTF-8 with a byte-order mark, for Excel);
    mode 600, as it names people. ConfigError if it cannot be written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8-sig", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(columns)
            for _, values in rows:
                writer.writerow([values.get(column, "") for column in columns])
    except OSError as exc:
        raise cc.ConfigError(f"cannot write {path}: {exc.strerror}") from None
