"""Undo: an operation over the audit log that puts back what a job changed."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from typing import Any, Callable

import canvas_commands
import canvas_common as cc
import canvas_hints
import canvas_ids
import canvas_journal as audit

from .changes import Change, Operation, Request, settle
from .names import ask_names
from .options import DEFAULT_LOG, Options
from .report import EXIT_OUTPUT_CLOSED

UNDO = {"deactivated": "reactivated", "reactivated": "deactivated", "created": "deleted",
        "reopened": "put back"}
# a reopened row goes back to what it was: concluded stays concluded (read-only, with its grades)
PUT_BACK = {"completed": "concluded", "deleted": "deleted"}


@dataclasses.dataclass(frozen=True)
class UndoRequest(Request):
    enrollment_id: int | None = None
    first_action: str = ""
    before: str | None = None  # before the job's first write
    after: str | None = None  # after its last
    role: str | None = None
    section_id: int | None = None
    limit_before: bool | None = None  # a reopened row's section limit before the job's POST


class Undo(Operation[UndoRequest]):
    """Put back every enrollment a job (or one run) changed, newest first."""

    name = "undo"
    columns = ("course_id", "sis_user_id")

    def __init__(self, prog: str):
        self.prog = prog
        self.target: str | None = None
        self.ended: dict[str, list] = {}  # the block's concluded and deleted rows, by SIS ID
        # enrollments not in the logged course under the logged SIS ID, found by id: id -> row (None: gone)
        self.elsewhere: dict[int | None, dict | None] = {}
        self.by_id: set[int | None] = set()  # those looked up by their id (not by SIS ID)
        self.hidden: dict[int | None, str] = {}  # those this token may not look up by id: why

    def select(self, options: Options, entries: list[dict], warn: Callable[[str], None]) -> str:
        """Pick the job or run to undo from the log's records (read by the runner); name it on stderr;
        return its id."""
        assert options.undo is not None  # the runner undoes only with --undo LOG
        self.path = options.undo
        listing = f"list its jobs with: {listing_command(options.prog, options.undo)}"
        job, self.one_run = audit.pick_job(entries, options.undo, options.run_id, listing)
        self.target = target = self.one_run or job
        self.made, self.open = audit.job_writes(entries, job, self.one_run)
        if options.run_id is None and not (self.made or self.open):
            raise cc.ConfigError(f"no job in {options.undo} changed anything; nothing to undo ({listing})")
        undid = audit.undo_target(entries, job)
        if options.run_id is None and undid:
            # undoing an undo is a redo: done only when asked for by its id
            raise cc.CanvasError(f"the last job in {options.undo} ({job}) is an undo of job {undid}; "
                                 f"to redo what it undid give --run {job}; to undo another, {listing}")
        final = {e["action"] for e in self.made} - set(UNDO)
        if undid and final:
            raise cc.CanvasError(f"job {job} is an undo that {' and '.join(sorted(final))} enrollments; "
                                 "Canvas has no call that reverses that: enroll them again instead")
        warn(f"{options.prog}: {'would put back' if options.dry_run else 'putting back'} "
             + self.named(entries, job))
        return target

    def named(self, entries: list[dict], job: str) -> str:
        """The job (or run) as the admin ran it: its command, its time, its number of changes."""
        start = next(e for e in entries if e.get("event") == "start"
                     and (e["run"] == self.one_run if self.one_run else e["job"] == job))
        what = f"run {self.one_run} of job {job}" if self.one_run else f"job {job}"
        unknown = f", {len(self.open)} unknown" if self.open else ""
        return f"{what} of {start.get('time', '?')} ({changes(len(self.made))}{unknown}): {start.get('command', '?')}"

    def rows(self, canvas: cc.Canvas, journal: audit.Journal | None,
             warn: Callable[[str], None]) -> list[tuple[int, dict]]:
        """One row per enrollment to put back; intents with no answer settled first."""
        settled, unsettled = settle(canvas, journal, self.open)
        made = self.made + settled
        for entry in made:  # the names the job's lines showed, for the undo's lines
            if entry.get("user_name"):
                canvas.people.setdefault(entry["sis_user_id"], entry["user_name"])
        if not made:
            warn(f"{self.prog}: {'run' if self.one_run else 'job'} {self.target} in "
                 f"{self.path} made no changes; nothing to undo")
        rows = [*audit.undo_values(made), *unsettled]  # an unsettled one fails its row, naming why
        return [(n, values) for n, values in enumerate(rows, start=1)]

    def log_fields(self) -> dict:
        return {"target": self.target}

    def request(self, values: dict, options: Options, line: int = 0) -> UndoRequest:
        if values.get("unsettled"):
            raise ValueError(values["unsettled"])
        if values.get("first_action") not in UNDO:
            raise ValueError(f"cannot undo {values.get('first_action')!r}")
        return UndoRequest(values["course_id"], values["sis_user_id"], line,
                           values["enrollment_id"], values["first_action"], values["before"],
                           values["after"], values.get("role"), values.get("section_id"), values.get("limit_before"))

    wants_ended = True  # a row put back to concluded or deleted is seen as it is, not as gone

    def prepare(self, canvas: cc.Canvas, course: str, requests: list[UndoRequest], found: dict,
                map: Any = map, ended: dict | None = None) -> None:
        """Keep the users' concluded and deleted rows, which the lookups brought; find the
        enrollments they did not bring (moved to another course, or their user's SIS ID
        changed) by their id, wherever Canvas has them now."""
        self.ended = ended or {}
        seen = {r.get("id") for rows in (*found.values(), *self.ended.values()) for r in rows}
        missing = [r for r in requests if r.enrollment_id not in seen and r.enrollment_id not in self.elsewhere]
        if missing:
            # the course as given and by its id (a sis_course_id:X one is seen by id in rows)
            here = {course, *(str(r.get("course_id")) for rows in found.values() for r in rows)}
            self.find_elsewhere(canvas, here, missing, map)

    def find_elsewhere(self, canvas: cc.Canvas, here: set[str], missing: list[UndoRequest], map: Any) -> None:
        """Where Canvas has these enrollments now: one looked up by id shows where a section
        went (Canvas moves a section's enrollments with it: app/models/course_section.rb
        move_to_course), and the others are looked for there in bulk while that finds more
        than it costs; what is left is looked up by id, through map (overlapped)."""
        tried = set(here)
        while len(missing) > 1:
            probe, missing = missing[0], missing[1:]
            row = self.elsewhere[probe.enrollment_id] = self.by_id_or_why(canvas, probe.enrollment_id)
            now = str(row.get("course_id")) if row else None
            if now is None or now in tried:
                break
            tried.add(now)
            try:
                held, gone = cc.users_enrollments_and_ended(canvas, now, [r.sis_id for r in missing], map)
            except cc.CanvasError:  # a course this token may not list: each by its id instead
                break
            there = {r.get("id"): r for rows in (*held.values(), *gone.values()) for r in rows}
            left = [r for r in missing if r.enrollment_id not in there]
            for r in missing:
                if r.enrollment_id in there:
                    self.elsewhere[r.enrollment_id] = there[r.enrollment_id]
            # two state groups, a request per chunk of SIS IDs: not worth it for fewer finds
            worth = len(missing) - len(left) > 2 * math.ceil(len(missing) / 50)
            missing = left
            if not worth:
                break
        rows = list(map(lambda r: self.by_id_or_why(canvas, r.enrollment_id), missing))
        self.elsewhere.update(zip((r.enrollment_id for r in missing), rows))
        for moved_to in {str(row.get("course_id")) for row in self.elsewhere.values() if row} - here:
            ask_names(canvas, moved_to)  # the lines name the course each went to, and its section

    def by_id_or_why(self, canvas: cc.Canvas, enrollment_id: int | None) -> dict | None:
        """The enrollment by its id; None if Canvas has none, or (said in self.hidden) if
        this token may not ask: the rows found by SIS ID are undone all the same."""
        self.by_id.add(enrollment_id)
        try:
            return canvas.enrollment_by_id(int(enrollment_id or 0))
        except cc.CanvasForbidden as exc:
            self.hidden[enrollment_id] = str(exc)
            return None

    def plan(self, canvas: cc.Canvas, request: UndoRequest, rows: list[dict], dry_run: bool) -> list[Change]:
        """Undo only what is still as the job left it; anything changed since is reported."""
        target = "deleted" if request.first_action == "created" else request.before
        if request.first_action == "reopened" and target not in PUT_BACK:
            raise cc.CanvasError(
                f"enrollment {request.enrollment_id} was {target} before the job reopened it; Canvas "
                "has no call that makes it so again, so it is left as it is")
        seen = [*rows, *self.ended.get(request.sis_id, [])]
        row = next((r for r in seen if r.get("id") == request.enrollment_id), None)
        if row is None:
            row = self.elsewhere.get(request.enrollment_id)
        if row is None and request.enrollment_id in self.hidden:
            raise cc.CanvasForbidden(
                f"enrollment {request.enrollment_id} is no longer in course {request.course} under "
                f"{request.sis_id}, and this token may not look it up by id in the root account "
                f"({self.hidden[request.enrollment_id]}); not undone")
        if row is None:
            raise cc.CanvasNotFound(
                f"Canvas has no enrollment {request.enrollment_id} now, in any state, deleted included "
                "(removed for good?); it cannot be put back")
        now = row["enrollment_state"]
        if cc.state_group(now) == cc.state_group(target):
            return [where_now(request, row, Change.of_row(request, row, "unchanged", dry_run=dry_run),
                              request.enrollment_id in self.by_id)]
        if now != request.after:
            raise cc.CanvasError(
                f"enrollment {request.enrollment_id} is {now} now, not {request.after} as the job "
                "left it; changed since, so not undone")
        action = PUT_BACK[str(target)] if request.first_action == "reopened" else UNDO[request.first_action]
        hint = ""
        if action == "reactivated" and target != "active":
            hint = (f"it was {target} before the job; Canvas's reactivate makes it active, and no call "
                    f"makes it {target} again")
        return [where_now(request, row, Change.of_row(
            request, row, action, dry_run=dry_run, after="active" if action == "reactivated" else target,
            hint=hint, warning=canvas_hints.sis_warning(row),
            restore_limit=limit_to_restore(request, row, action)), request.enrollment_id in self.by_id)]


def where_now(request: UndoRequest, row: dict, change: Change, by_id: bool) -> Change:
    """The change made where Canvas has the enrollment now: its course (the DELETE and PUT
    paths name it) and its user's SIS ID now, the logged ones kept when they differ."""
    sis_now = canvas_ids.row_sis_id(row) if by_id else None  # a row found by SIS ID may show another login's
    renamed = sis_now is not None and sis_now != request.sis_id
    moved = not canvas_ids.in_course(request.course, row)
    if not (moved or renamed):
        return change
    return dataclasses.replace(
        change, course_id=str(row.get("course_id")) if moved else change.course_id,
        sis_user_id=sis_now if renamed and sis_now else change.sis_user_id,
        logged_sis_user_id=request.sis_id if renamed else None,
        logged_course_id=request.course if moved else None)


def changes(count: int) -> str:
    return f"{count} change{'s' if count != 1 else ''}"


def listing_command(prog: str, log: str) -> str:
    """The command that lists a log's jobs, to paste."""
    default = log == DEFAULT_LOG
    return f"{canvas_commands.command(prog)} --jobs" + ("" if default else f" {canvas_commands.shell_quote(log)}")


def list_jobs(options: Options, out: Callable[[str], None]) -> int:
    """--jobs LOG: every job of the log, one line each, oldest first (the last is what --undo
    puts back), or one JSON object each with --json; the exit code (ConfigError if unreadable)."""
    assert options.jobs is not None
    entries = audit.read_log(options.jobs, lambda text: print(text, file=sys.stderr))
    listed = audit.jobs(entries)
    ids = {job["job"] for job in listed}
    try:
        for job in listed:
            out(json.dumps(job) if options.as_json else job_line(job, ids))
    except BrokenPipeError:  # | head: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OUTPUT_CLOSED
    if not listed:
        print(f"{options.prog}: {options.jobs} records no job", file=sys.stderr)
    return cc.EXIT_OK


def job_line(job: dict, ids: set[str]) -> str:
    """One job as the listing shows it: id, time, changes, command, then what became of it."""
    count = changes(job["changes"]) + (f", {job['unknown']} unknown" if job["unknown"] else "")
    notes = [f"undo of {'job' if job['undo_of'] in ids else 'run'} {job['undo_of']}"] if job["undo_of"] else []
    notes += [f"undone by job {undo}" for undo in job["undone_by"]]
    if job["status"] != "finished" and not job["undone_by"]:
        notes.append(f"{job['status'] or 'cut short'}: the same command finishes it")
    return f"{job['job']}  {job['time']}  {count}  {job['command']}" + (f"  ({'; '.join(notes)})" if notes else "")


def limit_to_restore(request: UndoRequest, row: dict, action: str) -> bool | None:
    """The section limit to put back before concluding or deleting again a row the job reopened,
    when the reopening changed it (Canvas sets a reused row's limit to what the POST sent:
    app/models/course.rb Course#enroll_user; a deleted row keeps it, and a later POST that
    may reopen it sends it); None when it is as it was."""
    now = bool(row.get("limit_privileges_to_course_section"))
    if request.first_action != "reopened" or action not in ("concluded", "deleted") \
            or request.limit_before in (None, now):
        return None
    return request.limit_before
