"""What flows from plan to apply: Request, Change, the Operation base, and the Canvas
calls that make, observe and settle a Change (the same whatever planned it)."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
from typing import Any, Generic, TypeVar

import canvas_common as cc
import canvas_hints
import canvas_ids
import canvas_journal as audit

from .guard import RunStopped
from .options import Options, Parser, arg_type


@dataclasses.dataclass(frozen=True)
class Request:
    """One user's row, checked: what an Operation plans from."""

    course: str
    sis_id: str
    line: int = 0


@dataclasses.dataclass(frozen=True)
class Change:
    """One enrollment's planned, made or failed change; --json prints these fields."""

    course_id: str
    sis_user_id: str
    action: str  # created, reopened, deactivated, reactivated, deleted, concluded, unchanged, failed
    enrollment_id: int | None = None
    role: str | None = None
    section_id: int | None = None
    before: str | None = None
    after: str | None = None
    dry_run: bool = False
    error: str | None = None
    section: str | None = dataclasses.field(default=None, compare=False)  # as asked, for a POST
    notify: bool = dataclasses.field(default=False, compare=False)
    # names beside the ids, as Canvas's answers showed them (None: no answer of this run did)
    section_name: str | None = dataclasses.field(default=None, compare=False)
    user_name: str | None = dataclasses.field(default=None, compare=False)
    course_name: str | None = dataclasses.field(default=None, compare=False)  # course code, else name
    hint: str = dataclasses.field(default="", compare=False)
    role_id: int | None = dataclasses.field(default=None, compare=False)  # a custom role's
    # concluded or deleted rows of this user, role and section a POST would reopen:
    # ((id, state, limit_privileges_to_course_section), ...)
    reopens: tuple = dataclasses.field(default=(), compare=False)
    warning: str | None = dataclasses.field(default=None, compare=False)  # what Canvas may do later
    same_as: int | None = dataclasses.field(default=None, compare=False)  # an earlier row asked the same
    # an undo's enrollment found elsewhere than the log says: the SIS ID and course logged
    logged_sis_user_id: str | None = dataclasses.field(default=None, compare=False)
    logged_course_id: str | None = dataclasses.field(default=None, compare=False)
    # limit_privileges_to_course_section: the row's, or what a POST sends (None: not sent)
    limited: bool | None = dataclasses.field(default=None, compare=False)
    limit_before: bool | None = dataclasses.field(default=None, compare=False)  # a reopened row's, before
    restore_limit: bool | None = dataclasses.field(default=None, compare=False)  # undo: put this limit back
    temporary: bool = dataclasses.field(default=False, compare=False)  # a temporary enrollment (lent access)
    updated_at: str | None = dataclasses.field(default=None, compare=False)  # Canvas's, after the write
    lasting: str = dataclasses.field(default="", compare=False)  # what the hint keeps once a POST is made

    @classmethod
    def of_row(cls, request: Request, row: dict, action: str, after: str | None = None, **extra: Any) -> Change:
        custom = row.get("role") not in (None, row.get("type"))
        extra.setdefault("limited", bool(row.get("limit_privileges_to_course_section")))
        extra.setdefault("temporary", canvas_hints.is_temporary(row))
        user = row.get("user")
        user = user if isinstance(user, dict) else {}
        return cls(request.course, request.sis_id, action, row.get("id"),
                   row.get("role") or row.get("type"), row.get("course_section_id"),
                   row.get("enrollment_state"), after or row.get("enrollment_state"),
                   role_id=row.get("role_id") if custom else None, user_name=user.get("name"), **extra)

    def not_done(self) -> Change:
        """This change as not made: Canvas refused it or never received it (for the log)."""
        return dataclasses.replace(self, action="not done", after=self.before)

    def failed(self, error: str) -> Change:
        return dataclasses.replace(self, action="failed", error=error, after=self.before)

    def as_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("section", "notify", "hint", "reopens", "limited", "limit_before",
                                  "restore_limit", "temporary", "updated_at", "lasting")}
        for optional in ("error", "role_id", "warning", "same_as", "logged_sis_user_id",  # only when
                         "logged_course_id", "user_name", "course_name", "section_name"):  # they say something
            if data[optional] is None:
                del data[optional]
        if self.action in ("created", "reopened"):  # the section as asked: where the POST goes
            data["section"] = self.section or "default"
        if self.hint:  # what the text says beside the change (a condition, an end date, a command)
            data["hint"] = self.hint
        if self.limited:
            data["limited_to_section"] = True
        if self.temporary:
            data["temporary"] = True
        return data

    def intent_fields(self) -> dict:
        """What the audit log records before the write: enough to undo or settle it."""
        fields = self.as_dict()
        del fields["dry_run"]
        fields.pop("hint", None)  # the plan's words; the result records what Canvas did
        limits = {"limit": self.limited, "limit_before": self.limit_before, "restore_limit": self.restore_limit}
        return {**fields, "section": self.section, "reopens": [list(r) for r in self.reopens],
                **{k: v for k, v in limits.items() if v is not None}}

    def result_fields(self) -> dict:
        """After the write: what Canvas did (a POST may have reopened a row: action and before),
        and the section's name when this run knows it (a POST's section is known only now)."""
        return {"action": self.action, "enrollment_id": self.enrollment_id,
                "section_id": self.section_id, "before": self.before, "after": self.after,
                **({"section_name": self.section_name} if self.section_name else {}),
                **({"error": self.error} if self.error else {}),
                # Canvas's time of this write: a later change by someone else is a later decision
                **({"updated_at": self.updated_at} if self.updated_at else {}),
                # a reopened row's section limit before the POST (Canvas sets it to what was sent)
                **({"limit_before": self.limit_before} if self.limit_before is not None else {})}

    def person(self) -> str:
        """'Ada Lovelace (S1001)'; the SIS ID alone when no answer of this run showed the name;
        'S1001 (now S1001-B)' when an undo found the user's SIS ID changed since the job."""
        sis = f"{self.logged_sis_user_id}, now {self.sis_user_id}" if self.logged_sis_user_id else self.sis_user_id
        if self.user_name:
            return f"{self.user_name} ({sis})"
        return f"{self.logged_sis_user_id} (now {self.sis_user_id})" if self.logged_sis_user_id else sis

    def describe(self) -> str:
        """One line for the admin: who (name and SIS ID), where (course and section, ids
        with their names when known), what happened or would happen."""
        who = f"{self.person()} in course {self.course_id}{quoted(self.course_name)}"
        kind = (", limited to its section" if self.limited else "") + (", temporary" if self.temporary else "")
        section = f"section {self.section_id}{quoted(self.section_name)}"
        what = f"enrollment {self.enrollment_id} ({self.role}, {section}{kind})"
        if self.action == "failed":
            text = f"{who}: failed: {self.error}"
        elif self.same_as:
            text = f"{who}: {what} {self.after}: same as line {self.same_as}"
        elif self.action == "unchanged" and self.enrollment_id is None:  # left alone for another row
            text = f"{who}: not enrolled as {self.role}; nothing to do"
        elif self.action == "unchanged" and self.temporary:  # a loan is never "already enrolled"
            text = f"{who}: {what} left as it is ({self.before})"
        elif self.action == "unchanged":
            text = f"{who}: {what} is already {self.before}; nothing to do"
        elif self.action == "created" and self.dry_run:
            # the section as given when it could not be read
            where = "the course's default section" if not self.section else \
                f"section {self.section_id or self.section}{quoted(self.section_name)}"
            text = f"would enroll {who} as {self.role} ({self.after}) in {where}" + \
                (", limited to its section" if self.limited else "")
        elif self.action == "created":
            text = f"enrolled {who}: {what} {self.after}"
        elif self.action == "reopened":
            verb = "would reopen" if self.dry_run else "reopened"
            text = f"{who}: {verb} {self.before} {what} (Canvas reuses it): {self.before} -> {self.after}"
        else:
            verb = f"would be {self.action}" if self.dry_run else self.action
            text = f"{who}: {what} {verb}: {self.before} -> {self.after}"
        moved = f"; moved to course {self.course_id} with its section (the job left it in course " \
            f"{self.logged_course_id})" if self.logged_course_id else ""
        return text + moved + (f"; {self.hint}" if self.hint else "") + \
            (f"; warning: {self.warning}" if self.warning else "")


def quoted(name: str | None) -> str:
    """' "Lab A"': a name beside its id in a line, or '' when unknown."""
    return f' "{name}"' if name else ""


RequestT = TypeVar("RequestT", bound=Request)


class Operation(Generic[RequestT]):
    """What a script declares; the runner does everything else.

    A subclass names its CSV columns, adds its arguments, turns values (from the
    command line, a CSV row or the log) into a Request, and plans Changes from a
    Request and the user's active and inactive enrollments. Applying a Change is
    the same Canvas call whatever planned it. RequestT is the subclass's own
    Request type: what its request() makes is what its plan() takes.
    """

    name = ""
    prog = ""
    columns: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    usage_line = "COURSE SIS_ID ..."

    def add_arguments(self, parser: Parser) -> None:
        """COURSE and SIS_ID, then the operation's own arguments."""
        parser.add_argument("course", nargs="?", metavar="COURSE", type=arg_type(canvas_ids.parse_course),
                            help="course id (12345) or sis_course_id:XYZ")
        parser.add_argument("sis_id", nargs="?", type=arg_type(canvas_ids.parse_sis_id), metavar="SIS_ID",
                            help="the user's SIS ID (exact, case-sensitive)")
        self.add_own_arguments(parser)

    def add_own_arguments(self, parser: Parser) -> None:
        """The third positional (named as the third column) and options named as the optional columns."""
        raise NotImplementedError

    def single_values(self, args: argparse.Namespace) -> dict | None:
        """The command line's one user as CSV-like values; None for --csv/--undo, {} if incomplete."""
        third = self.columns[2]
        if args.course is None and args.sis_id is None:
            return None
        if args.sis_id is None or getattr(args, third) is None:
            return {}
        return {"course_id": args.course, "sis_user_id": args.sis_id, third: getattr(args, third),
                **{column: getattr(args, column) for column in self.optional}}

    def per_user_options(self, args: argparse.Namespace) -> list[str]:
        """Options given that only make sense for one user (refused with --csv)."""
        return [f"--{column}" for column in self.optional if getattr(args, column)]

    def extra_options(self, args: argparse.Namespace) -> dict[str, Any]:
        return {}

    def request(self, values: dict, options: Options, line: int = 0) -> RequestT:
        """Check one row's values as the command line checks them; ValueError if bad."""
        raise NotImplementedError

    # True: the lookups also bring the users' concluded, rejected and deleted rows (prepare's ended)
    wants_ended = False

    def prepare(self, canvas: cc.Canvas, course: str, requests: list[RequestT], found: dict, map: Any = map,
                ended: dict | None = None) -> None:
        """Before planning a course's requests of a block: more lookups, in bulk (default: none).

        found: the users' active and inactive enrollments by SIS ID; ended: their concluded,
        rejected and deleted ones when wants_ended (read with the lookups, or by --from)."""

    def plan(self, canvas: cc.Canvas, request: RequestT, rows: list[dict], dry_run: bool) -> list[Change]:
        """The Changes that bring the user's enrollments (rows) to what request asks; CanvasError if none can."""
        raise NotImplementedError

    def log_fields(self) -> dict:
        """What the start record of a run says beyond the command."""
        return {}

    def job_key(self, options: Options, source_digest: str) -> str:
        """Runs with the same key continue one job."""
        extra = json.dumps(options.extra, sort_keys=True)
        return hashlib.sha256(f"{self.name}\0{source_digest}\0{extra}".encode()).hexdigest()[:16]


# --- applying a change: the same Canvas calls for every operation --------------------


def apply(canvas: cc.Canvas, change: Change) -> Change:
    """Make one change in Canvas; return it with what Canvas made."""
    if change.action in ("created", "reopened"):
        return posted(change, create(canvas, change))
    if change.restore_limit is not None:
        restore_limit(canvas, change)
        change = dataclasses.replace(change, limited=change.restore_limit)
    calls = {"deactivated": canvas.deactivate, "reactivated": canvas.reactivate,
             "deleted": canvas.delete, "concluded": canvas.conclude}
    assert change.enrollment_id is not None  # planned from an enrollment: only a creation has none
    body = calls[change.action](change.course_id, change.enrollment_id)
    if cc.state_group(body.get("enrollment_state")) != cc.state_group(change.after):
        raise cc.CanvasBadResponse(
            f"Canvas answered that enrollment {change.enrollment_id} is "
            f"{body.get('enrollment_state')!r}, not {change.after!r}")
    return dataclasses.replace(change, after=body.get("enrollment_state"), updated_at=body.get("updated_at"))


def restore_limit(canvas: cc.Canvas, change: Change) -> None:
    """Put back the section limit a reopening changed, before the row is concluded or deleted again:
    the same POST (role, section, its state now) with the old limit, which Canvas applies to
    the row it finds, changing nothing else of an active row (Course#enroll_user, app/models/course.rb)."""
    assert change.role is not None and change.before is not None
    canvas.enroll(change.course_id, change.sis_user_id, None if change.role_id else change.role, change.before,
                  str(change.section_id), False, change.role_id, limit=change.restore_limit)


def posted(change: Change, row: dict) -> Change:
    """A POST's answer: Canvas reopened one of the rows looked up before it when it
    answers with that row's id (Course#enroll_user), else it made a new one."""
    # reopens: (id, state, limit) each; logs of earlier versions have no limit
    reopened = next((r for r in change.reopens if int(r[0]) == int(row.get("id") or 0)), None)
    before = reopened[1] if reopened else None
    limit_before = bool(reopened[2]) if reopened and len(reopened) > 2 else change.limit_before
    # the outcome is known now: the plan's conditions (which row Canvas may reopen) no longer apply
    return dataclasses.replace(change, action="reopened" if before else "created", before=before,
                               enrollment_id=row.get("id"), role=row.get("role") or change.role,
                               section_id=row.get("course_section_id"), after=row.get("enrollment_state"),
                               hint=change.lasting, warning=canvas_hints.sis_warning(row),
                               updated_at=row.get("updated_at"), temporary=False,
                               limit_before=limit_before if before else None,
                               limited=bool(row.get("limit_privileges_to_course_section")))


def create(canvas: cc.Canvas, change: Change) -> dict:
    """POST the enrollment; a 404 with a section given names whichever is missing."""
    assert change.role is not None and change.after is not None  # a planned creation names both
    try:
        # a custom role goes by role_id alone: Canvas takes its base type as the type
        return canvas.enroll(change.course_id, change.sis_user_id,
                             None if change.role_id else change.role, change.after,
                             change.section, change.notify, change.role_id, limit=change.limited)
    except cc.CanvasNotFound:
        if change.section and canvas.user_exists(canvas_ids.sis_ref("sis_user_id", change.sis_user_id)):
            raise canvas_hints.section_elsewhere(canvas, change.course_id, change.section) from None
        raise canvas_hints.unknown_user(canvas, change.sis_user_id) from None
    except cc.CanvasBadRequest as exc:
        if "concluded course" in str(exc):
            raise cc.CanvasBadRequest(f"{exc}{canvas_hints.concluded_why(canvas, change.course_id)}") from None
        raise


def write(canvas: cc.Canvas, change: Change) -> Change:
    """Apply with care: after an unclear failure, or a refusal because the enrollment
    is no longer as planned, look at Canvas before (never blindly) writing again.

    RunStopped (the run stopped meanwhile) comes out unclear when an attempt may have
    reached Canvas: one that failed unclearly before the look that the stop cut short."""
    for attempt in range(3):
        try:
            return apply(canvas, change)
        except cc.CanvasError as exc:
            refused = isinstance(exc, cc.CanvasBadRequest) and change.action not in ("created", "reopened")
            if not (exc.unclear or refused) or attempt == 2:
                raise
            try:
                seen = observe(canvas, change)
            except RunStopped as stop:  # stopped while looking: that write's outcome is unknown
                stop.unclear = stop.unclear or exc.unclear
                raise
            except cc.CanvasError as looking:  # the look failed too (a sign-in page, an outage)
                if exc.unclear and not looking.unclear:  # the write's outcome is still unknown
                    looking.unclear = True
                    looking.args = (f"{looking}; whether Canvas made the change is unknown (the same "
                                    "command again looks first)",)
                raise
            if seen is None and not exc.unclear:
                raise  # refused, and not done: writing again would be refused again
            if seen is not None:
                return seen if exc.unclear else dataclasses.replace(
                    seen, action="unchanged", before=seen.after,
                    hint="already so in Canvas (a linked enrollment, or someone else, changed it)")
    raise AssertionError("the last attempt returns or raises")


def observe(canvas: cc.Canvas, change: Change) -> Change | None:
    """The change as Canvas shows it now, if Canvas shows it made; else None (2 lookups)."""
    rows = cc.user_enrollments(canvas, change.course_id, change.sis_user_id)
    return observed(change, rows)


def observed(change: Change, rows: list[dict]) -> Change | None:
    if change.action in ("created", "reopened"):
        row = next((r for r in rows if (r.get("role_id") == change.role_id if change.role_id
                                        else r.get("role") == change.role) and
                    (change.enrollment_id is None or r.get("id") == change.enrollment_id) and
                    canvas_ids.section_matches(r, change.section)), None)
        return None if row is None else posted(change, row)
    row = next((r for r in rows if r.get("id") == change.enrollment_id), None)
    now = row.get("enrollment_state") if row else "deleted"
    if change.action in ("deleted", "concluded"):  # gone from the active and inactive rows
        return dataclasses.replace(change, after=change.after) if row is None else None
    return dataclasses.replace(change, after=now) if cc.state_group(now) == cc.state_group(change.after) else None


# --- the write-ahead audit log: what its records mean in Canvas -------------------------


def settle(canvas: cc.Canvas, journal: audit.Journal | None, intents: list[dict]) -> tuple[list[dict], list[dict]]:
    """Close intents whose answer was lost: done if Canvas shows the change, else not done.

    (made, unsettled): the writes found made, and the intents Canvas cannot tell about now
    (their user has another SIS ID, or the token may not look the enrollment up by id):
    those stay open in the log, each with "unsettled" saying why, never taken for not done."""
    made, unsettled = [], []
    for course in dict.fromkeys(i["course_id"] for i in intents):
        mine = [i for i in intents if i["course_id"] == course]
        found = cc.users_enrollments(canvas, course, [i["sis_user_id"] for i in mine])
        for intent in mine:
            change = change_of(intent)
            rows = found.get(intent["sis_user_id"], [])
            seen = observed(change, rows)
            if seen is None and change.enrollment_id is not None \
                    and not any(r.get("id") == change.enrollment_id for r in rows):
                try:  # not where the log says: the section moved course, or the user's SIS ID changed
                    seen, why = observed_by_id(change, canvas.enrollment_by_id(change.enrollment_id)), ""
                except cc.CanvasForbidden as exc:
                    why = f"enrollment {change.enrollment_id} is not in course {course} now and {exc}"
            else:
                why = "" if seen or change.enrollment_id is not None or canvas.user_exists(
                    canvas_ids.sis_ref("sis_user_id", intent["sis_user_id"])) else \
                    f"Canvas has no user with SIS ID {intent['sis_user_id']!r} now (changed since?)"
                if not seen and not why and change.section:  # its section may have moved course since
                    seen = observed(change, rows_where_section_is(canvas, course, change.section,
                                                                  intent["sis_user_id"]))
            if why:
                unsettled.append({**intent, "unsettled": f"cannot tell whether the job's {change.action} write "
                                                         f"was made: {why}; it stays open in the log"})
                continue
            outcome = seen or change.not_done()
            if journal:
                journal.result(intent["seq"], outcome.result_fields(), of_run=intent["run"], settled=True)
            if seen:
                made.append({**intent, "enrollment_id": seen.enrollment_id,
                             "section_id": seen.section_id, "after": seen.after})
    return made, unsettled


def rows_where_section_is(canvas: cc.Canvas, course: str, section: str, sis_id: str) -> list[dict]:
    """The user's rows in the course a section is in now, when that is not course (it was
    cross-listed or de-cross-listed since: Canvas moves its enrollments with it); [] otherwise.
    GET /api/v1/sections/:id once per section, and one lookup of the user there."""
    found = canvas.any_section(section)
    now = str(found.get("course_id")) if found and found.get("course_id") is not None else None
    if now is None or now == course:
        return []
    try:
        return cc.user_enrollments(canvas, now, sis_id)
    except cc.CanvasError:
        return []


def observed_by_id(change: Change, row: dict | None) -> Change | None:
    """The change as made, from its enrollment found by id wherever it is now (None: Canvas
    has no such enrollment, or it is not in the state the write made)."""
    if row is None or cc.state_group(row.get("enrollment_state")) != cc.state_group(change.after):
        return None
    if change.action in ("created", "reopened"):
        return posted(change, row)
    return dataclasses.replace(change, after=row.get("enrollment_state"))


def change_of(entry: dict) -> Change:
    names = {f.name for f in dataclasses.fields(Change)}
    return Change(**{k: v for k, v in entry.items() if k in names})
