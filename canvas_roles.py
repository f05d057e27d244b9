"""Course roles as an institution's Canvas names them: the five built-in ones and
custom roles (Auditor, Grader, Examiner ...), each a label on a built-in base type.

A ROLE value is a built-in word (student, TeacherEnrollment ...), a custom
role's name as Canvas shows it, or role_id:N. Built-in words need no request.
Anything else is resolved through GET /api/v1/accounts/:account_id/roles of
the course's account, with the roles it inherits from its parent accounts,
once per account per run (app/controllers/role_overrides_controller.rb
api_index; app/models/role.rb).
"""

from __future__ import annotations

import dataclasses
import re
import threading
import unicodedata
import weakref

import canvas_common as cc
import canvas_ids

_ROLE_ID = re.compile(r"role_id:\s*(\S*)", re.IGNORECASE)
LABELS = {"StudentEnrollment": "student", "TeacherEnrollment": "teacher", "TaEnrollment": "ta",
          "ObserverEnrollment": "observer", "DesignerEnrollment": "designer"}


def parse_role(text: str) -> str:
    """A ROLE argument or cell, checked for form: a built-in type name
    ('StudentEnrollment'), 'role_id:N', or a custom role's name (stripped).

    Raises ValueError for an empty value or a role_id that is not a number.
    Whether a custom name exists only Canvas can say (resolve)."""
    try:
        return canvas_ids.parse_role(text)
    except ValueError:
        pass
    word = text.strip()
    if not word:
        raise ValueError(f"the role is empty: use one of {', '.join(canvas_ids.ROLES)}, a custom role's "
                         "name or role_id:N")
    match = _ROLE_ID.fullmatch(word)
    if match:
        if not (match[1].isascii() and match[1].isdigit()):
            raise ValueError(f"role {text!r}: role_id: takes the role's number, as in role_id:12")
        return f"role_id:{int(match[1])}"
    return word


@dataclasses.dataclass(frozen=True)
class Role:
    """A course role as enrollment rows show it: role (label) and role_id; type is its base.

    label: what a row's "role" says (the type name for built-in roles);
    id: Canvas's role id (None for a built-in role not looked up);
    base_type: the built-in type it is based on (None when Canvas could not be asked)."""

    label: str
    id: int | None = None
    base_type: str | None = None
    builtin: bool = False
    checked: bool = True  # False: a role_id Canvas would not let us look up

    def holds(self, row: dict) -> bool:
        """True when an enrollment row has exactly this role."""
        if self.id is not None and row.get("role_id") is not None:
            return row.get("role_id") == self.id
        return row.get("role") == self.label

    @property
    def custom(self) -> bool:
        return not self.builtin

    def describe(self) -> str:
        if self.builtin:
            return self.label
        base = f", based on {LABELS.get(self.base_type or '', self.base_type)}" if self.base_type else ""
        return f"{self.label} (role_id:{self.id}{base})"


def builtin(type_name: str) -> Role:
    return Role(type_name, None, type_name, builtin=True)


def role_arg(row: dict) -> str:
    """A --role value that reaches exactly this row's role, for a hint: the built-in word
    for a built-in role, role_id:N for a custom one (its name may be a built-in word,
    'Student', or shared with a role of a parent account; the id is never ambiguous)."""
    role, base = row.get("role"), row.get("type")
    if role == base or not role:
        return LABELS.get(str(base), str(base))
    if row.get("role_id") is None:
        return str(role)
    return f"role_id:{row.get('role_id')}"


def row_role(row: dict) -> str:
    """How a row's role reads to a person: 'Auditor (student-type custom role)' or 'StudentEnrollment'."""
    role, base = row.get("role"), row.get("type")
    if role == base or not base:
        return str(role)
    return f"{role} ({LABELS.get(base, base)}-type custom role)"


class _Book:
    """One run's answers: course -> account id, account -> its course roles (or the error)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.accounts: dict[str, object] = {}
        self.roles: dict[object, list[dict] | Exception] = {}


_BOOKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _book(canvas: cc.Canvas) -> _Book:
    if canvas not in _BOOKS:
        _BOOKS[canvas] = _Book()
    return _BOOKS[canvas]


def resolve(canvas: cc.Canvas, course: str, text: str, enrolling: bool = True) -> Role:
    """The Role a parsed ROLE value names in this course.

    Built-in type names cost nothing. Others cost GET /api/v1/courses/:id (its
    account_id; asked once per run and shared with the dry run's checks) and
    GET /api/v1/accounts/:account_id/roles?show_inherited=1 (once per account).
    Raises CanvasNotFound for an unknown, ambiguous or inactive role (listing the
    roles that exist), CanvasForbidden / CanvasScopeMissing when the token may
    not list roles and the value is a name. A role_id:N the token may not look
    up is returned unchecked: Canvas checks it when enrolling."""
    if text in canvas_ids.ROLES.values():
        return builtin(text)
    wanted_id = int(text[len("role_id:"):]) if text.startswith("role_id:") else None
    try:
        roles = _course_roles(canvas, course)
    except (cc.CanvasForbidden, cc.CanvasScopeMissing) as exc:
        if wanted_id is not None:
            return Role(text, wanted_id, None, checked=False)
        why = str(exc) if isinstance(exc, cc.CanvasScopeMissing) else \
            "listing an account's roles needs Canvas's 'Permissions - manage' right"
        checks = "Canvas checks the id when enrolling" if enrolling else \
            "it is matched against the enrollments' role_id"
        raise type(exc)(f"cannot look up role {text!r} by name ({why}); give it as role_id:N "
                        f"({checks})") from None
    return pick(roles, text, wanted_id, course, enrolling)


def _nfc(text: object) -> str:
    return unicodedata.normalize("NFC", str(text))


def _folded(text: object) -> str:
    return _nfc(_nfc(text).casefold())


def pick(roles: list[dict], text: str, wanted_id: int | None, course: str, enrolling: bool = True) -> Role:
    """The role among Canvas's list that text names: role_id:N, the exact label, or the
    label in any case when only one role has it. Labels and text are compared in
    Unicode NFC (a name typed on macOS arrives decomposed, NFD)."""
    if wanted_id is not None:
        found = [r for r in roles if r.get("id") == wanted_id]
    else:
        found = [r for r in roles if _nfc(r.get("label", "")) == _nfc(text)] or \
            [r for r in roles if _folded(r.get("label", "")) == _folded(text)]
    custom = [r for r in found if r.get("workflow_state") != "built_in"]
    if len(custom) > 1:
        listed = ", ".join(f"{r.get('label')} (role_id:{r.get('id')})" for r in custom)
        raise cc.CanvasNotFound(f"role {text!r} is ambiguous in course {course}: {listed}; "
                                "give the exact name or role_id:N")
    if not found:
        raise cc.CanvasNotFound(f"no course role {text!r} in course {course}'s account: "
                                f"{_listing(roles)}")
    role = (custom or found)[0]
    if role.get("workflow_state") == "built_in":
        return builtin(role["base_role_type"])
    if role.get("workflow_state") != "active" and (enrolling or role.get("workflow_state") != "inactive"):
        raise cc.CanvasNotFound(f"role {role.get('label')!r} is {role.get('workflow_state')} in Canvas, "
                                f"which adds no enrollments with it: {_listing(roles)}")
    return Role(role["label"], role["id"], role["base_role_type"])


def _listing(roles: list[dict]) -> str:
    active = [f"{r['label']} ({LABELS.get(r['base_role_type'], r['base_role_type'])})"
              for r in roles if r.get("workflow_state") == "active"]
    inactive = [str(r["label"]) for r in roles if r.get("workflow_state") == "inactive"]
    text = "roles are " + ", ".join([*canvas_ids.ROLES, *active])
    return text + (f"; inactive: {', '.join(inactive)}" if inactive else "")


def _course_roles(canvas: cc.Canvas, course: str) -> list[dict]:
    """The course roles of the course's account and its parents, active and inactive."""
    book = _book(canvas)
    with book.lock:
        if course not in book.accounts:
            try:
                book.accounts[course] = canvas.course(course).get("account_id")
            except cc.CanvasError as exc:
                book.accounts[course] = exc
        account = book.accounts[course]
        if isinstance(account, Exception):
            raise account
        if not isinstance(account, int):
            raise cc.CanvasBadResponse(f"Canvas did not say which account course {course} is in")
        if account not in book.roles:
            try:
                book.roles[account] = [
                    r for r in canvas.get_all(f"/api/v1/accounts/{int(account)}/roles",
                                              {"state[]": ["active", "inactive"], "show_inherited": "1"},
                                              f"account {account} not found")
                    if isinstance(r, dict) and r.get("base_role_type") in canvas_ids.ROLES.values()]
            except cc.CanvasError as exc:
                book.roles[account] = exc
        roles = book.roles[account]
    if isinstance(roles, Exception):
        raise roles
    return roles
