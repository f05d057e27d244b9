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
import canvas_ids
import canvas_roles

SHORT_ROLES = {type_name: short for short, type_name in canvas_ids.ROLES.items()}
HELD_STATES = cc.ACTIVE_STATES + cc.INACTIVE_STATES
MAX_NAMED = 50  # people named in a note; the rest are counted


@dataclasses.dataclass(frozen=True)
class RoundOptions:
    """--from and the options that go with it.

    old, new: courses as checked by canvas_ids.parse_course; roles: what canvas_ids.parse_role
    gives (Canvas type names; a custom role's name or role_id:N once roles allow
    them); section: --section (canvas_ids.parse_section) or None; state: enroll_user's
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


def roster(canvas: cc.Canvas, course: str, roles: list[canvas_roles.Role] | None, states) -> list[dict]:
    """GET /api/v1/courses/:course_id/enrollments with state[] (and type[] of the roles' base
    types when all are known), 100 per page; the rows one of roles holds (Role.holds: by
    role_id when known; every row when roles is None). CanvasError as any list.

    type[] also matches custom roles built on a type (enrollments_api_controller.rb),
    so rows are then kept by their role."""
    params: dict = {"state[]": list(states)}
    if roles is not None and all(role.base_type for role in roles):
        params["type[]"] = sorted({str(role.base_type) for role in roles})
    rows = canvas.get_all(f"{canvas_ids.course_path(course)}/enrollments", params,
                          f"course {course} not found: check the course id")
    if rows and not any("sis_user_id" in row or "sis_user_id" in (row.get("user") or {}) for row in rows):
        raise cc.CanvasForbidden("Canvas hides SIS IDs from this token; the token's user needs "
                                 "permission to read SIS data")
    return [row for row in rows if isinstance(row, dict) and
            (roles is None or any(role.holds(row) for role in roles))]


def role_word(row: dict) -> str:
    """The role as a CSV row gives it: student, ta, ... or the custom role's name as Canvas shows it."""
    shown = row.get("role") or row.get("type") or ""
    return SHORT_ROLES.get(shown, shown)


def group(states) -> str:
    """One state group for a person's enrollments in the old course: active if any is
    active-like (or concluded, when those are carried), else inactive."""
    return "inactive" if all(s in cc.INACTIVE_STATES for s in states) else "active"


def asked_roles(canvas: cc.Canvas, options: RoundOptions) -> list[canvas_roles.Role]:
    """Each --role resolved in the old course as a single run resolves it (canvas_roles.resolve):
    CanvasNotFound for an unknown, inactive or ambiguous one, before anyone is read."""
    found: list[canvas_roles.Role] = []
    for text in options.roles:
        role = canvas_roles.resolve(canvas, options.old, text)
        if role not in found:
            found.append(role)
    return found


def same_course(canvas: cc.Canvas, options: RoundOptions) -> None:
    """CanvasError (exit 1: Canvas was asked) when OLD and NEW are one course under two
    spellings (GET /api/v1/courses/:id of each, asked once a run and shared with the role
    and dry-run checks)."""
    if canvas.course(options.old).get("id") == canvas.course(options.new).get("id"):
        raise cc.CanvasError(f"--from {options.old} is course {options.new} itself (Canvas id "
                             f"{canvas.course(options.new).get('id')}): give the previous round")


# --- from rosters to rows -----------------------------------------------------------


def read_round(canvas: cc.Canvas, options: RoundOptions, operation: str) -> Round:
    """Read both courses and make the rows of `operation` ("enroll" or "set-state")."""
    if options.old == options.new:
        raise cc.ConfigError(f"--from {options.old} names the course itself: give the previous round")
    wanted = asked_roles(canvas, options)
    same_course(canvas, options)
    if options.section:  # once, before anything: a wrong --section would fail every row
        canvas.section(options.new, options.section)
    # a course an admin concluded turned its active and invited rows into completed ones
    # (Course#update_enrolled_users, app/models/course.rb): they were active when it ended
    hard = canvas.course(options.old).get("workflow_state") == "completed"
    old_rows = roster(canvas, options.old, wanted, (*HELD_STATES, "completed"))
    # every role and state: the plan weighs other roles (a student-type custom role) and the
    # concluded or deleted rows a POST would reopen (Course#enroll_user), all from this one read
    new_rows = roster(canvas, options.new, None, (*HELD_STATES, *cc.ENDED_STATES))
    people, notes = carried(old_rows, options, wanted, hard)
    in_new: dict = {}
    ended_in_new: dict = {}
    for row in new_rows:
        into = in_new if row.get("enrollment_state") in HELD_STATES else ended_in_new
        into.setdefault(row.get("user_id"), []).append(row)
    known = {sis: in_new.get(person["user_id"], []) for (sis, _), person in people.items()}
    ended = {sis: ended_in_new.get(person["user_id"], []) for (sis, _), person in people.items()}
    # the roster just showed these users: a dry run need not ask whether they exist
    canvas.known_users.update(canvas_ids.sis_ref("sis_user_id", sis) for sis, _ in people)
    if operation == "enroll":
        values, counts = enroll_values(canvas, options, people, in_new, notes)
    else:
        values, counts = state_values(options, people, in_new)
    # each person's name, for the lines and --export's name column (which --csv ignores)
    names = {canvas_ids.row_sis_id(row): (row.get("user") or {}).get("name") or "" for row in old_rows}
    canvas.people.update({sis: name for sis, name in names.items() if sis is not None and name})
    rows = [(line, {"course_id": options.new, **v, "name": names.get(v["sis_user_id"], "")})
            for line, v in enumerate(values, start=2)]
    roles = ", ".join(dict.fromkeys(SHORT_ROLES.get(r.label, r.label) for r in wanted))
    notes.insert(0, f"from course {options.old} ({roles}): " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return Round(rows, known, ended, notes)


def carried(old_rows: list[dict], options: RoundOptions, wanted: list[canvas_roles.Role], hard: bool = False):
    """({(SIS ID, role): person}, notes): who is carried, with the old rows (section, state,
    when changed) of each role, the base type and the rank of the role asked; people without
    a SIS ID and concluded enrollments are named in notes. hard: the old course was concluded
    (workflow_state completed), so its completed rows count as active."""
    people: dict = {}
    no_sis: dict = {}
    concluded = set()
    flipped = set()
    for row in old_rows:
        state = row.get("enrollment_state")
        if state == "completed" and hard:
            flipped.add(row.get("user_id"))
            state = "active"
        elif state == "completed" and not options.include_concluded:
            concluded.add((row.get("user_id"), role_word(row)))
            continue
        sis = canvas_ids.row_sis_id(row)
        if sis is None:
            user = row.get("user") or {}
            no_sis[row.get("user_id")] = f"{user.get('name') or user.get('sortable_name') or '?'} " \
                                         f"(user {row.get('user_id')})"
            continue
        rank = next((i for i, role in enumerate(wanted) if role.holds(row)), len(wanted))
        person = people.setdefault((sis, role_word(row)), {"user_id": row.get("user_id"), "rows": [],
                                                           "type": row.get("type"), "rank": rank})
        person["rows"].append((row.get("course_section_id"), state, row.get("updated_at") or ""))
    concluded -= {(p["user_id"], role) for (_, role), p in people.items()}
    flipped -= set(no_sis)  # skipped, not carried: named in their own note
    notes = []
    held = {rank for rank, role in enumerate(wanted) if any(role.holds(row) for row in old_rows)}
    nobody = [role.describe() for rank, role in enumerate(wanted) if rank not in held]
    if nobody:
        notes.append(f"nobody in course {options.old} holds {', '.join(nobody)}")
    if flipped:
        notes.append(f"course {options.old} is concluded, which made its active enrollments completed: "
                     f"{len(flipped)} people with completed ones carried as active")
    if concluded:
        notes.append(f"left out: {len({user for user, _ in concluded})} people concluded in course "
                     f"{options.old} (--include-concluded carries them, as active)")
    if no_sis:
        notes.append(named(f"skipped: {len(no_sis)} without a SIS ID in course {options.old}",
                           list(no_sis.values())))
    several = [sis for (sis, _), p in people.items() if len({r[0] for r in p["rows"]}) > 1]
    if several:
        notes.append(named(f"in several sections of course {options.old}: {len(set(several))} people, "
                           "each carried once, to the section of their active enrollment (else the most "
                           "recently changed one)", list(dict.fromkeys(several))))
    return people, notes


def named(head: str, who: list[str]) -> str:
    more = f" and {len(who) - MAX_NAMED} more" if len(who) > MAX_NAMED else ""
    return f"{head}: {'; '.join(who[:MAX_NAMED])}{more}"


def home(person: dict):
    """The old section a person goes from: that of their active-like enrollment, else the
    most recently changed one (updated_at)."""
    rows = person["rows"]
    active = [r for r in rows if r[1] not in cc.INACTIVE_STATES]
    return max(active or rows, key=lambda r: r[2])[0]


def person_state(person: dict) -> str:
    return group(r[1] for r in person["rows"])


def holds_in_new(role: str, person: dict, in_new: dict) -> bool:
    """Whether the plan will leave this person and role unchanged: the new course has them
    with the role, or (a student-type role) with another student-type one (enroll_user's blocks)."""
    rows = in_new.get(person["user_id"], [])
    return any(role_word(r) == role or
               (person["type"] == "StudentEnrollment" and r.get("type") == "StudentEnrollment") for r in rows)


def enroll_values(canvas: cc.Canvas, options: RoundOptions, people: dict, in_new: dict, notes: list[str]):
    """Rows for enroll_user, one per person and role: the new section of the name of their
    old section (home), else the default section (or --section); one row without a section
    for anyone already holding the role (or a student-type one) in the new course, whom the
    plan then leaves unchanged. A second student-type role for the same section is not carried."""
    targets = {} if options.section else section_targets(canvas, options)
    names = dict(targets.values())
    values: list[dict] = []
    per_section: dict[str, set] = {}
    held: set = set()
    student_in: dict = {}  # (SIS ID, target section) -> the student-type role carried there
    doubled = []
    for (sis, role), person in sorted(people.items(), key=lambda item: item[1]["rank"]):
        state = options.state or person_state(person)
        if holds_in_new(role, person, in_new):
            held.add(sis)
            values.append({"sis_user_id": sis, "role": role, "section": "", "state": state})
            continue
        target = options.section or targets.get(home(person), ("", ""))[0]
        if person["type"] == "StudentEnrollment":
            first = student_in.setdefault((sis, target), role)
            if first != role:
                doubled.append(f"{sis} ({role}; carried as {first})")
                continue
        values.append({"sis_user_id": sis, "role": role, "section": target, "state": state})
        label = f"to section {names[target]!r} ({target})" if target in names else \
            f"to section {target}" if target else "to the default section"
        per_section.setdefault(label, set()).add(sis)
    order = {key: i for i, key in enumerate(people)}  # rows in the old roster's order, as exported
    values.sort(key=lambda v: order.get((v["sis_user_id"], v["role"]), 0))
    if doubled:
        noun = "role" if len(doubled) == 1 else "roles"
        notes.append(named(f"not carried: {len(doubled)} second student-type {noun} (one student-type "
                           "role per section; the first --role asked is carried)", doubled))
    counts = {"people": len({sis for sis, _ in people}),
              **{label: len(who) for label, who in sorted(per_section.items())},
              "already in the new course with the role or another student-type one (left as they are)":
                  len(held)}
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
    the role in both courses; the plan changes only those whose group differs. Counts are people."""
    values: list[dict] = []
    wanted: dict[str, set] = {"active": set(), "inactive": set()}
    for (sis, role), person in people.items():
        if not any(role_word(r) == role for r in in_new.get(person["user_id"], [])):
            continue
        state = person_state(person)
        wanted[state].add(sis)
        values.append({"sis_user_id": sis, "state": state, "role": role, "section": options.section or ""})
    both = {v["sis_user_id"] for v in values}
    counts = {"people in both courses": len(both), "active in the old course": len(wanted["active"]),
              "inactive in the old course": len(wanted["inactive"]),
              f"not in course {options.new} with the role (left out)": len({sis for sis, _ in people} - both)}
    return values, counts


# --- --export ------------------------------------------------------------------------


def export_problem(path: str) -> str | None:
    """Why --export cannot write path, checked before any request; None if it can.
    An existing file is refused: it may hold an admin's edits of an earlier plan."""
    if path == "-":
        return "--export takes a file name, not '-': the plan's text is what stdout shows"
    if os.path.lexists(path):
        if os.path.isdir(path):
            return f"--export {path}: that is a directory; give a file name"
        return f"--export {path}: the file exists; choose another name (or delete it) so no edits are lost"
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"--export {path}: no directory {folder}"
    if not os.access(folder, os.W_OK):
        return f"--export {path}: directory {folder} is not writable"
    return None


def export(path: str, columns, rows) -> None:
    """Write rows as a CSV that --csv reads back (UTF-8 with a byte-order mark, for Excel);
    a new file (O_EXCL), mode 600, as it names people. ConfigError if it cannot be written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with open(fd, "w", encoding="utf-8-sig", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(columns)
            for _, values in rows:
                writer.writerow([values.get(column, "") for column in columns])
    except OSError as exc:
        raise cc.ConfigError(f"cannot write {path}: {exc.strerror}") from None
