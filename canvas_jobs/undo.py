"""Undo: an operation over the audit log that puts back what a job changed."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import canvas_common as cc
import canvas_hints
import canvas_journal as audit

from .changes import Change, Operation, Request, settle
from .options import Options

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

    def select(self, options: Options, warn: Callable[[str], None]) -> str:
        """Read the log and pick the job or run to undo; return its id."""
        assert options.undo is not None  # the runner undoes only with --undo LOG
        self.path = options.undo
        entries = audit.read_log(options.undo, warn)
        job, self.one_run = audit.pick_job(entries, options.undo, options.run_id)
        self.target = target = self.one_run or job
        self.made, self.open = audit.job_writes(entries, job, self.one_run)
        if options.run_id is None and not (self.made or self.open):
            raise cc.CanvasError(f"the last job in {options.undo} ({job}) made no changes; "
                                 + audit.recent_jobs(entries) + ": undo one with --run ID")
        undid = audit.undo_target(entries, job)
        if options.run_id is None and undid:
            # undoing an undo is a redo: done only when asked for by its id
            raise cc.CanvasError(f"the last job in {options.undo} ({job}) is an undo of job {undid}; "
                                 f"to redo what it undid give --run {job}; "
                                 + audit.recent_jobs(entries) + ": undo one with --run ID")
        final = {e["action"] for e in self.made} - set(UNDO)
        if undid and final:
            raise cc.CanvasError(f"job {job} is an undo that {' and '.join(sorted(final))} enrollments; "
                                 "Canvas has no call that reverses that: enroll them again instead")
        return target

    def rows(self, canvas: cc.Canvas, journal: audit.Journal | None,
             warn: Callable[[str], None]) -> list[tuple[int, dict]]:
        """One row per enrollment to put back; intents with no answer settled first."""
        made = self.made + settle(canvas, journal, self.open)
        if not made:
            warn(f"{self.prog}: {'run' if self.one_run else 'job'} {self.target} in "
                 f"{self.path} made no changes; nothing to undo")
        return [(n, values) for n, values in enumerate(audit.undo_values(made), start=1)]

    def log_fields(self) -> dict:
        return {"target": self.target}

    def request(self, values: dict, options: Options, line: int = 0) -> UndoRequest:
        if values.get("first_action") not in UNDO:
            raise ValueError(f"cannot undo {values.get('first_action')!r}")
        return UndoRequest(values["course_id"], values["sis_user_id"], line,
                           values["enrollment_id"], values["first_action"], values["before"],
                           values["after"], values.get("role"), values.get("section_id"), values.get("limit_before"))

    wants_ended = True  # a row put back to concluded or deleted is seen as it is, not as gone

    def prepare(self, canvas: cc.Canvas, course: str, requests: list[UndoRequest], found: dict,
                map: Any = map, ended: dict | None = None) -> None:
        """Keep the users' concluded and deleted rows, which the lookups brought."""
        self.ended = ended or {}

    def plan(self, canvas: cc.Canvas, request: UndoRequest, rows: list[dict], dry_run: bool) -> list[Change]:
        """Undo only what is still as the job left it; anything changed since is reported."""
        target = "deleted" if request.first_action == "created" else request.before
        if request.first_action == "reopened" and target not in PUT_BACK:
            raise cc.CanvasError(
                f"enrollment {request.enrollment_id} was {target} before the job reopened it; Canvas "
                "has no call that makes it so again, so it is left as it is")
        seen = [*rows, *self.ended.get(request.sis_id, [])]
        row = next((r for r in seen if r.get("id") == request.enrollment_id), None) or {
            "id": request.enrollment_id, "role": request.role, "course_section_id": request.section_id,
            "enrollment_state": "deleted" if target == "deleted" else "concluded or deleted"}
        now = row["enrollment_state"]
        if cc.state_group(now) == cc.state_group(target):
            return [Change.of_row(request, row, "unchanged", dry_run=dry_run)]
        if now != request.after:
            raise cc.CanvasError(
                f"enrollment {request.enrollment_id} is {now} now, not {request.after} as the job "
                "left it; changed since, so not undone")
        action = PUT_BACK[str(target)] if request.first_action == "reopened" else UNDO[request.first_action]
        hint = ""
        if action == "reactivated" and target != "active":
            hint = (f"it was {target} before the job; Canvas's reactivate makes it active, and no call "
                    f"makes it {target} again")
        return [Change.of_row(request, row, action, dry_run=dry_run,
                              after="active" if action == "reactivated" else target, hint=hint,
                              warning=canvas_hints.sis_warning(row),
                              restore_limit=limit_to_restore(request, row, action))]


def limit_to_restore(request: UndoRequest, row: dict, action: str) -> bool | None:
    """The section limit to put back before concluding a row the job reopened, when the reopening
    changed it (Canvas sets a reused row's limit to what the POST sent: app/models/course.rb
    Course#enroll_user); None when it is as it was, or the row goes back to deleted."""
    now = bool(row.get("limit_privileges_to_course_section"))
    if request.first_action != "reopened" or action != "concluded" or request.limit_before in (None, now):
        return None
    return request.limit_before
