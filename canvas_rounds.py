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
from datetime import datetime, timedelta
from typing import IO, Callable

import canvas_common as cc
import canvas_files as files
import canvas_hints
import canvas_http
import canvas_ids
import canvas_journal as audit
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
    reactivate: bool = False  # set_user_state --reactivate: carry "active" too, not only "inactive"
    log: str | None = None  # the audit log: when these tools last wrote each enrollment (not a choice)

    def digest(self) -> str:
        """What makes a rerun the same job: the command's choices, never Canvas's data,
        which a cut-short run has itself changed."""
        return "from:" + json.dumps([self.old, self.new, sorted(self.roles), self.include_concluded,
                                     self.section, self.state] + ([True] if self.reactivate else []))


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
                          f"course {course} not found: check the course id", canvas_http.ROSTER_PAGES)
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
    # each person's name, for the lines, the notes and --export's name column (which --csv ignores)
    names = {canvas_ids.row_sis_id(row): (row.get("user") or {}).get("name") or "" for row in old_rows}
    canvas.people.update({sis: name for sis, name in names.items() if sis is not None and name})
    people, notes = carried(old_rows, options, wanted, hard, canvas.people)
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
        values, counts = state_values(canvas, options, people, in_new, notes)
    # the rows --export writes first, so that each one's line is its line in the file
    values.sort(key=lambda v: bool(v.get("as_is")))
    rows = [(line, {"course_id": options.new, **v, "name": names.get(v["sis_user_id"], "")})
            for line, v in enumerate(values, start=2)]
    roles = ", ".join(dict.fromkeys(SHORT_ROLES.get(r.label, r.label) for r in wanted))
    counted = ", ".join(f"{v} {singular(k) if v == 1 else k}" for k, v in counts.items())
    notes.insert(0, f"from course {options.old} ({roles}): {counted}")
    return Round(rows, known, ended, notes)


def carried(old_rows: list[dict], options: RoundOptions, wanted: list[canvas_roles.Role], hard: bool = False,
            names: dict | None = None):
    """({(SIS ID, role): person}, notes): who is carried, with the old rows (section, state,
    when changed) of each role, the base type and the rank of the role asked; people without
    a SIS ID and concluded enrollments are named in notes. hard: the old course was concluded
    (workflow_state completed), so its completed rows count as active. names: SIS ID -> name,
    for the notes."""
    names = names or {}
    people: dict = {}
    no_sis: dict = {}
    concluded = set()
    flipped = set()
    loans = []
    for row in old_rows:
        state = row.get("enrollment_state")
        if canvas_hints.is_temporary(row):  # lent access, not a membership of the round
            loans.append(person_label({canvas_ids.row_sis_id(row): (row.get("user") or {}).get("name")},
                                canvas_ids.row_sis_id(row), f"{role_word(row)}, {canvas_hints.loan(row)}"))
            continue
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
        # when its state was decided: a completed row's time is its course's conclusion or the end
        # of the person's studies there (Course#update_enrolled_users), no decision carried by step 4
        decided = "" if row.get("enrollment_state") == "completed" else row.get("updated_at") or ""
        person["rows"].append((row.get("course_section_id"), state, decided,
                               bool(row.get("limit_privileges_to_course_section"))))
    concluded -= {(p["user_id"], role) for (_, role), p in people.items()}
    flipped -= set(no_sis)  # skipped, not carried: named in their own note
    notes = []
    held = {rank for rank, role in enumerate(wanted) if any(role.holds(row) for row in old_rows)}
    nobody = [role.describe() for rank, role in enumerate(wanted) if rank not in held]
    if nobody:
        notes.append(f"nobody in course {options.old} holds {', '.join(nobody)}")
    if flipped:
        notes.append(f"course {options.old} is concluded, which made its active enrollments completed: "
                     f"{people_count(len(flipped))} with completed ones carried as active")
    if concluded:
        notes.append(f"left out: {people_count(len({user for user, _ in concluded}))} concluded in course "
                     f"{options.old} (--include-concluded carries them, as active)")
    if no_sis:
        notes.append(named(f"skipped: {len(no_sis)} without a SIS ID in course {options.old}",
                           list(no_sis.values())))
    if loans:
        notes.append(named(f"not carried: {len(loans)} temporary enrollments in course {options.old} (lent "
                           "access that ends by itself)", loans))
    behind = [person_label(names, sis, f"{role}, section {r[0]}") for (sis, role), p in people.items()
              for r in left_behind(p)]
    if behind:
        notes.append(named(f"not carried: {len(behind)} inactive enrollments beside an active one of the same "
                           f"role in course {options.old} (what a section move leaves behind)", behind))
    return people, notes


def person_label(names: dict, sis: str | None, detail: str = "") -> str:
    """A person in a note: 'Ada Lovelace (S1001, detail)', or 'S1001 (detail)' when no answer
    showed the name."""
    name = names.get(sis)
    inside = ", ".join(filter(None, [sis, detail])) if name else detail
    label = name or sis or "?"
    return f"{label} ({inside})" if inside else label


def singular(counted: str) -> str:
    """'people in both courses' as said of one: 'person in both courses'."""
    return "person" + counted[len("people"):] if counted.startswith("people") else counted


def people_count(count: int) -> str:
    """'1 person', '12 people'."""
    return f"{count} {'person' if count == 1 else 'people'}"


def named(head: str, who: list[str]) -> str:
    more = f" and {len(who) - MAX_NAMED} more" if len(who) > MAX_NAMED else ""
    return f"{head}: {'; '.join(who[:MAX_NAMED])}{more}"


def memberships(person: dict) -> list:
    """The old rows carried for a person and role: every active-like one (each section), or,
    when none is active, every inactive one (their studies interrupted, in each section)."""
    rows = person["rows"]
    active = [r for r in rows if r[1] not in cc.INACTIVE_STATES]
    return active or rows


def left_behind(person: dict) -> list:
    """Inactive rows beside an active one of the same role: not carried."""
    kept = memberships(person)
    return [r for r in person["rows"] if r not in kept]


def person_state(person: dict) -> str:
    return group(r[1] for r in person["rows"])


def holds_in_new(role: str, person: dict, rows: list[dict]) -> bool:
    """Whether one of rows (the new course's, in one section) gives this person the role, or (a
    student-type role) another student-type one, which enroll_user's plan leaves as it is.
    A temporary row is lent access, not a membership: it never counts."""
    return any((role_word(r) == role or
                (person["type"] == "StudentEnrollment" and r.get("type") == "StudentEnrollment"))
               and not canvas_hints.is_temporary(r) for r in rows)


def targets_of(options: RoundOptions, person: dict, targets: dict, misses: dict, sis: str) -> dict:
    """{new section as a SECTION argument ('' for the default one): (state group, limited)} for
    each carried membership; an old section with no namesake goes to the default section and
    is counted under its name in misses."""
    goes: dict = {}
    for section, state, _, limit in memberships(person):
        if options.section:
            target = options.section
        else:
            target = targets.get(section, ("", ""))[0]
            if not target:
                misses.setdefault(targets.get(("name", section)) or f"section {section}", set()).add(sis)
        was = goes.get(target, ("inactive", False))
        group = "inactive" if state in cc.INACTIVE_STATES and was[0] == "inactive" else "active"
        goes[target] = (group, was[1] or limit)  # two old sections into one: limited if either was
    return goes


def held_in(target: str, goes: dict, rows: list[dict]) -> list[dict]:
    """The new course's rows in a target section; for the default one ('' , not named by the
    API), every row in none of the person's other target sections."""
    if target:
        return [r for r in rows if canvas_ids.section_matches(r, target)]
    named = [t for t in goes if t]
    return [r for r in rows if not any(canvas_ids.section_matches(r, t) for t in named)]


def enroll_values(canvas: cc.Canvas, options: RoundOptions, people: dict, in_new: dict, notes: list[str]):
    """Rows for enroll_user, one per person, role and section they are carried to: each
    active membership of the old course (else each inactive one) goes to the new section of
    its old section's name, else to the default section (or --section), with its section limit;
    a membership the new course already holds (the role, or a student-type one, in that
    section) gives a row the plan leaves unchanged. A second student-type role for the same
    section is not carried."""
    targets = {} if options.section else section_targets(canvas, options)
    names = dict(v for k, v in targets.items() if not isinstance(k, tuple))
    values: list[dict] = []
    per_section: dict[str, set] = {}
    misses: dict[str, set] = {}
    held: set = set()
    limited: set = set()
    student_in: dict = {}  # (SIS ID, target section) -> the student-type role carried there
    doubled = []
    for (sis, role), person in sorted(people.items(), key=lambda item: item[1]["rank"]):
        goes = targets_of(options, person, targets, misses, sis)
        rows = in_new.get(person["user_id"], [])
        for target, (group, limit) in goes.items():
            value = {"sis_user_id": sis, "role": role, "section": target, "state": options.state or group,
                     "limit_to_section": "true" if limit else ""}
            if holds_in_new(role, person, held_in(target, goes, rows)):
                held.add(sis)
                values.append(value)
                continue
            if person["type"] == "StudentEnrollment":
                first = student_in.setdefault((sis, target), role)
                if first != role:
                    doubled.append(person_label(canvas.people, sis, f"{role}; carried as {first}"))
                    continue
            values.append(value)
            limited.update([sis] if limit else [])
            known = names.get(target) or (canvas.known_section(options.new, target) or {}).get("name")
            label = f"to section {known!r} ({target})" if target and known else \
                f"to section {target}" if target else "to the default section"
            per_section.setdefault(label, set()).add(sis)
    order = {key: i for i, key in enumerate(people)}  # rows in the old roster's order, as exported
    values.sort(key=lambda v: order.get((v["sis_user_id"], v["role"]), 0))
    for name, who in sorted(misses.items()):
        notes.append(f"no section {name!r} in course {options.new}: {people_count(len(who))} to the default section")
    if limited:
        notes.append(named(f"limited to their section (as in course {options.old}): {people_count(len(limited))}",
                           [person_label(canvas.people, sis) for sis in sorted(limited)]))
    if doubled:
        noun = "role" if len(doubled) == 1 else "roles"
        notes.append(named(f"not carried: {len(doubled)} second student-type {noun} (one student-type "
                           "role per section; the first --role asked is carried)", doubled))
    several = {sis for (sis, _), p in people.items() if len({r[0] for r in memberships(p)}) > 1}
    if several:
        notes.append(f"in several sections of course {options.old}: {people_count(len(several))}, carried to each")
    counts = {"people": len({sis for sis, _ in people}),
              **{label: len(who) for label, who in sorted(per_section.items())},
              "already in the new course with the role or another student-type one (left as they are)":
                  len(held)}
    return values, counts


def section_targets(canvas: cc.Canvas, options: RoundOptions) -> dict:
    """{old section id: (new section as a SECTION argument, its name)} for names both courses
    have, and {("name", old section id): its name} for those the new course lacks; a name the
    new course has twice goes to the default section, as an unknown one."""
    new_by_name: dict = {}
    for section in canvas.sections(options.new):
        new_by_name.setdefault((section.get("name") or "").strip(), []).append(section)
    targets: dict = {}
    for section in canvas.sections(options.old):
        same = new_by_name.get((section.get("name") or "").strip(), [])
        if len(same) == 1:
            sis = same[0].get("sis_section_id")
            targets[section.get("id")] = (f"sis_section_id:{sis}" if sis else str(same[0]["id"]),
                                          same[0].get("name"))
        else:
            targets[("name", section.get("id"))] = section.get("name")
    return targets


# --- set_user_state --from: carry the old state, never over a later decision ------------------


def when(text) -> datetime | None:
    """A Canvas timestamp (ISO 8601, whole seconds, Z) as a datetime; None if absent or unreadable."""
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def our_writes(path: str | None) -> dict:
    """{enrollment id: the updated_at Canvas gave in its answer to the last write these tools
    logged on it}, from the audit log (results record it); {} without a log."""
    if not path or not os.path.exists(path):
        return {}
    last: dict = {}
    for entry in audit.read_log(path, lambda _: None):
        moment = when(entry.get("updated_at")) if entry.get("event") == "result" else None
        if moment and entry.get("enrollment_id") is not None:
            last[entry["enrollment_id"]] = max(moment, last.get(entry["enrollment_id"], moment))
    return last


def later_change(imports: Callable[[], list[dict] | None], row: dict, decided, ours: dict) -> str | None:
    """Why a new-course enrollment holds a later decision, or None. It does when Canvas last
    changed it (updated_at) after the old course's state being carried was decided, after
    these tools last wrote it (the log), and after it was made, and that change was not an
    SIS import's: the row is one SIS imports manage (it has a sis_import_id) and the change
    falls while one of imports() ran. Any import, not only the one sis_import_id names now:
    a later import that finds the row as it wants it only stamps its own id on it, leaving
    updated_at as the earlier import set it (lib/sis/enrollment_importer.rb). An SIS import
    is no one's decision about interrupted studies: step 4 is there to put its changes right."""
    changed = when(row.get("updated_at"))
    if changed is None or (decided and changed <= decided) or changed == when(row.get("created_at")):
        return None
    if row.get("id") in ours and changed <= ours[row["id"]]:
        return None
    if row.get("sis_import_id") and any(ran_at(run, changed) for run in imports() or []):
        return None
    return f"changed in Canvas at {row.get('updated_at')}, after the round was carried"


def ran_at(run: dict, moment: datetime) -> bool:
    """Whether an SIS import (created_at, ended_at; None while it runs) was running at moment."""
    start, end = when(run.get("created_at")), when(run.get("ended_at"))
    return start is not None and start <= moment and (end is None or moment <= end)


def imports_lister(canvas: cc.Canvas, in_new: dict) -> Callable[[], list[dict] | None]:
    """The SIS imports that may have changed the new course's rows, asked once and only when
    needed: those created since a day before the oldest of the rows (an import that started
    before a row was made and ran on past it counts too)."""
    made = [m for rows in in_new.values() for m in (when(r.get("created_at")) for r in rows) if m]
    since = (min(made) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ") if made else None
    return lambda: canvas.sis_imports_since(since) if since else None


def state_values(canvas: cc.Canvas, options: RoundOptions, people: dict, in_new: dict, notes: list[str]):
    """Rows for set_user_state, one per enrollment of the role in the new course to bring to the
    person's state group in the old course: "inactive" always, "active" only with --reactivate;
    never a temporary enrollment, an inactive one beside an active one of the role, or one
    holding a later decision (later_change). Counts are people."""
    ours = our_writes(options.log)
    imports = imports_lister(canvas, in_new)
    values: list[dict] = []
    wanted: dict[str, set] = {"active": set(), "inactive": set()}
    kept: dict[str, list] = {"later": [], "inactive": [], "temporary": [], "beside": []}
    both = set()
    for (sis, role), person in people.items():
        rows = [r for r in in_new.get(person["user_id"], []) if role_word(r) == role
                and canvas_ids.section_matches(r, options.section)]
        ordinary = [r for r in rows if not canvas_hints.is_temporary(r)]
        kept["temporary"] += [person_label(canvas.people, sis, canvas_hints.loan(r)) for r in rows if r not in ordinary]
        if not ordinary:
            continue
        both.add(sis)
        state = person_state(person)
        wanted[state].add(sis)
        decided = max(filter(None, (when(r[2]) for r in person["rows"])), default=None)
        active_there = any(cc.state_group(r.get("enrollment_state")) == "active" for r in ordinary)
        for row in ordinary:
            group = cc.state_group(row.get("enrollment_state"))
            if group != state and state == "active" and (not options.reactivate or active_there):
                if not active_there:
                    kept["inactive"].append(sis)
                else:  # a row --reactivate leaves too: said
                    kept["beside"].append(person_label(canvas.people, sis, f"enrollment {row.get('id')}, "
                                                                     f"section {row.get('course_section_id')}"))
                continue
            why = later_change(imports, row, decided, ours) if group != state else None
            if why:
                kept["later"].append(person_label(canvas.people, sis, f"enrollment {row.get('id')}, "
                                                                f"{row.get('enrollment_state')}: {why}"))
                continue
            section = options.section or ("" if len(ordinary) == 1 else str(row.get("course_section_id")))
            # as_is: already so; run, and counted unchanged, but kept out of --export's plan, whose
            # rows are run later by --csv: a decision made in between must not be overwritten
            values.append({"sis_user_id": sis, "state": state, "role": role, "section": section,
                           "as_is": group == state})
    if kept["later"]:
        notes.append(named(f"left as they are: {len(kept['later'])} enrollments in course {options.new} someone "
                           "changed after the round was carried (a later decision; set_user_state COURSE SIS_ID "
                           "STATE changes one on purpose)", kept["later"]))
    if kept["inactive"]:
        who = sorted(set(kept["inactive"]))  # a person inactive in two sections is one person
        notes.append(named(f"left inactive: {people_count(len(who))} active in course {options.old} and "
                           f"inactive in course {options.new} (--reactivate reactivates them)",
                           [person_label(canvas.people, sis) for sis in who]))
    if kept["beside"]:
        notes.append(named(f"left inactive: {len(kept['beside'])} inactive enrollments in course {options.new} "
                           "beside an active one of the same role (what a section move leaves behind)",
                           kept["beside"]))
    if kept["temporary"]:
        notes.append(named(f"left as they are: {len(kept['temporary'])} temporary enrollments in course "
                           f"{options.new}", kept["temporary"]))
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
        kind = files.file_kind(os.stat(path).st_mode) if os.path.exists(path) else None
        if kind:
            return f"--export {path}: that is {kind}, not a file; give the name of a new file"
        return f"--export {path}: the file exists; choose another name (or delete it) so no edits are lost"
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"--export {path}: no directory {folder}"
    if not os.access(folder, os.W_OK):
        return f"--export {path}: directory {folder} is not writable"
    return None


def export(path: str, columns, rows) -> None:
    """Write rows as a CSV that --csv reads back (UTF-8 with a byte-order mark, for Excel), but
    not those already as they ask (as_is); a new file, mode 600, as it names people; written
    whole or not at all (canvas_files.write_new).
    ConfigError if it cannot be written, DiskError if the disk is full."""
    def fill(out: IO[str]) -> None:
        writer = csv.writer(out)
        writer.writerow(columns)
        for _, values in rows:
            if not values.get("as_is"):  # a state already so is no change to plan
                writer.writerow([values.get(column, "") for column in columns])
    files.write_new(path, fill, encoding="utf-8-sig")
