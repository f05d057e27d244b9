"""A stand-in Canvas: a real HTTP server on 127.0.0.1 that answers the
enrollment API the way Canvas does (see docs/canvas-api.md, which cites
the canvas-lms source files each behaviour comes from).

It implements the course enrollment list (state filters and their defaults,
sis_user_id[] and user_id filters, bookmark pagination with opaque next
links), enroll with Canvas's already-enrolled rules, DELETE with its task
values, reactivate, user and course lookups, Canvas's error bodies, a leaky
rate-limit bucket, and faults on demand. It records every request.

Canvas as institutions configure it: accounts and custom course roles with
base types (the roles API, enrollment[role_id]), rows reused by a POST in any
state, course, term and section end dates with Canvas's open-section
exception, cross-listed sections, developer keys with enforced scopes, and
sis_import_id, end_at and limit_privileges_to_course_section on enrollment
rows.

The bundled demo data (seed_demo; tests/demo.py and `python tests/standin.py
--port 8080` serve it, token demo-token) holds two rounds of one course:

- sis_course_id:PHYS2-2027, "Physics 2, spring 2027", today's course: the
  default section, "Lecture" (sis_section_id:PHYS2-2027-LEC) and "Lab A"
  (sis_section_id:PHYS2-2027-LAB-A); 30 active students S9000-S9029
  ("Student 000"...). Not enrolled yet: S1001 Ada Lovelace, S1002 Alan Turing,
  S1003 Grace Hopper, S1004 Edsger Dijkstra, S1005 Barbara Liskov.
- sis_course_id:PHYS2-2026, "Physics 2, spring 2026", the previous round:
  sections "Lecture" (PHYS2-2026-LEC), "Lab A" (PHYS2-2026-LAB-A) and "Lab B"
  (PHYS2-2026-LAB-B, which has no namesake in PHYS2-2027). Students, each in
  the lecture and a lab: S2001 Lise Meitner (Lab A), S2002 Emmy Noether
  (Lab B), S2005 Paul Dirac (Lab A), active; S2003 Niels Bohr (Lab A),
  inactive in both. S2004 Marie Curie: concluded (completed) in Lab B.
  S1002 Alan Turing: active in the lecture. T3001 Chien-Shiung Wu: TA of
  Lab A, limited to her section (limit_privileges_to_course_section).
  T3002 Richard Feynman: teacher of the lecture.
- The custom student-type role "Auditor" in the root account.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import dataclasses
import itertools
import json
import random
import re
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

TYPES = ("StudentEnrollment", "TeacherEnrollment", "TaEnrollment",
         "ObserverEnrollment", "DesignerEnrollment")
ROLE_IDS = {t: i for i, t in enumerate(TYPES, start=1)}
LABELS = {"StudentEnrollment": "Student", "TeacherEnrollment": "Teacher", "TaEnrollment": "TA",
          "ObserverEnrollment": "Observer", "DesignerEnrollment": "Designer"}
RUBY_SPACE = " \t\n\v\f\r\0"  # Ruby's String#strip; Python's strip() removes more
NOT_FOUND = {"errors": [{"message": "The specified resource does not exist."}]}
ADMINS = ("admin", "noroles")  # token kinds with an account admin's rights on enrollments
UNAUTHORIZED = {"status": "unauthorized",
                "errors": [{"message": "user not authorized to perform that action"}]}


# seconds added to the real clock: a test moves time on between an admin's steps, as
# updated_at is whole seconds (lib/api/v1/user.rb enrollment_json, xmlschema)
CLOCK = {"offset": 0.0}


def now_iso() -> str:
    moment = datetime.fromtimestamp(time.time() + CLOCK["offset"], timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class User:
    id: int
    name: str
    sis_user_id: str | None  # the SIS ID Canvas shows: app/models/sis_pseudonym.rb picks one login
    other_logins: tuple = ()  # more SIS IDs of the same person (a merge, a changed SIS ID)
    login_id: str | None = None  # the login's unique_id (often an e-mail); default S1@example.edu

    @property
    def login(self):
        return self.login_id or f"{self.sis_user_id}@example.edu"

    @property
    def sis_ids(self):
        return (self.sis_user_id, *self.other_logins)

    @property
    def sortable_name(self):
        first, _, last = self.name.rpartition(" ")
        return f"{last}, {first}" if first else last


@dataclasses.dataclass
class Account:
    id: int
    name: str
    parent_id: int | None = None


@dataclasses.dataclass
class Role:
    """A course role (app/models/role.rb): built-in ones are their own base type;
    a custom one has a label, a base type and lives in an account, seen by its
    sub-accounts too. workflow_state: built_in, active, inactive or deleted."""

    id: int
    label: str
    base_role_type: str
    account_id: int | None = None
    workflow_state: str = "active"


@dataclasses.dataclass
class Course:
    id: int
    name: str
    sis_course_id: str | None
    default_section_id: int
    workflow_state: str = "available"  # or "completed" (concluded)
    account_id: int = 1
    end_at: datetime | None = None
    restrict_enrollments_to_course_dates: bool = False
    term_end_at: datetime | None = None  # its enrollment term's end
    course_code: str | None = None  # the short name admins use (None: the course's name)

    def concluded(self) -> bool:
        """app/models/course.rb concluded?/soft_concluded?: the course's own end date
        counts only with restrict_enrollments_to_course_dates; else the term's."""
        now = datetime.now(timezone.utc)
        if self.workflow_state == "completed":
            return True
        if self.end_at and self.restrict_enrollments_to_course_dates:
            return self.end_at < now
        return bool(self.term_end_at and self.term_end_at < now)


@dataclasses.dataclass
class Section:
    id: int
    course_id: int
    name: str
    sis_section_id: str | None = None
    end_at: datetime | None = None
    restrict_enrollments_to_section_dates: bool = False
    nonxlist_course_id: int | None = None  # the course it came from, once cross-listed

    def concluded(self, course: Course) -> bool:
        """app/models/course_section.rb concluded?: its own end date with
        restrict_enrollments_to_section_dates, else the course's."""
        if self.end_at and self.restrict_enrollments_to_section_dates:
            return self.end_at < datetime.now(timezone.utc)
        return course.concluded()


@dataclasses.dataclass
class Enrollment:
    id: int
    user_id: int
    course_id: int
    course_section_id: int
    type: str
    role: str
    workflow_state: str
    associated_user_id: int | None = None  # an observer's link to the student it observes
    role_id: int = 0
    sis_import_id: int | None = None  # set when an SIS import made or last changed it
    end_at: str | None = None  # its own end date (ISO 8601), independent of its state
    limit: bool = False  # limit_privileges_to_course_section
    # a temporary enrollment (app/models/enrollment.rb temporary_enrollment?): the provider whose
    # access is lent, and the pairing that ends it on end_at (app/models/enrollment_state.rb)
    temporary_source: int | None = None
    temporary_pairing: int | None = None
    created_at: str = dataclasses.field(default_factory=now_iso)
    updated_at: str = dataclasses.field(default_factory=now_iso)


@dataclasses.dataclass
class Fault:
    """An answer on demand for requests that match method and path (a regex).

    kind: "status" answers status/body instead of doing the work; "after" does
    the work, then answers status (a lost answer); "delay" waits seconds first;
    "reset" does the work, then closes the connection without an answer;
    "truncated" sends half a body; "trickle" does the work, then sends its answer one byte
    every seconds; "not_json" answers 200 with HTML;
    "redirect" answers 302 to location; "next_host" makes list links point at
    location; "no_links" drops the Link header; "drop_page" answers as if the
    request had no page parameter (a proxy that drops it); "bad_bookmark" as if
    its bookmark were one Canvas cannot decode. The first skip
    matching requests pass untouched (a fault in the middle of a batch). then()
    runs when the fault is taken: another admin acting at that moment, a token
    revoked, an outage beginning.
    """

    kind: str
    method: str = ".*"
    path: str = ".*"
    times: int = 1
    status: int = 500
    body: object = None
    headers: dict = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    location: str = "https://evil.example.com"
    then: Callable[[], None] | None = None
    skip: int = 0

    def matches(self, method, path):
        return self.times > 0 and re.fullmatch(self.method, method) and re.search(self.path, path)


# Canvas's own answers for common faults.
def throttled(status=403, **kw) -> Fault:
    reason = "Forbidden" if status == 403 else "Too Many Requests"
    return Fault("status", status=status, body=f"{status} {reason} (Rate Limit Exceeded)\n",
                 headers={"Content-Type": "text/plain", "X-Rate-Limit-Remaining": "0.0",
                          "Retry-After": "0"}, **kw)


def server_error(report_id=4242, **kw) -> Fault:
    return Fault("status", status=500, body={"errors": [{"message": "An error occurred.",
                                                         "error_code": "internal_server_error"}],
                                             "error_report_id": report_id}, **kw)


def proxy_error(status=502, **kw) -> Fault:
    reason = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}[status]
    kw.setdefault("headers", {"Content-Type": "text/html", "Retry-After": "0"})
    return Fault("status", status=status,
                 body=f"<html><head><title>{status} {reason}</title></head>"
                      f"<body><h1>{status} {reason}</h1></body></html>", **kw)


class Store:
    """Canvas's data: users, courses, sections, enrollments, tokens."""

    def __init__(self):
        self.lock = threading.RLock()
        self.ids = itertools.count(1)
        self.users: dict[int, User] = {}
        self.courses: dict[int, Course] = {}
        self.sections: dict[int, Section] = {}
        self.enrollments: dict[int, Enrollment] = {}
        # token -> kind: admin (all rights), nosis (a teacher: no SIS data),
        # noroles (an admin without "Permissions - manage": may not list roles),
        # student (no rights), expired, revoked
        self.tokens: dict[str, str] = {}
        # token -> its developer key's scopes ("url:GET|/api/v1/courses/:course_id/enrollments")
        # when the key enforces scopes (lib/authentication_methods.rb, validate_scopes)
        self.scopes: dict[str, list[str]] = {}
        self.accounts: dict[int, Account] = {1: Account(1, "Root account")}
        self.role_ids = itertools.count(100)
        self.roles: dict[int, Role] = {i: Role(i, LABELS[t], t, None, "built_in")
                                       for t, i in ROLE_IDS.items()}
        self.sis_batches: dict[int, dict] = {}  # SIS imports: id -> created_at, ended_at
        self.batch_ids = itertools.count(500)
        # the root account's temporary_enrollments feature: the enrollment JSON shows the
        # temporary fields only when it is on (lib/api/v1/user.rb API_ENROLLMENT_JSON_OPTS)
        self.temporary_feature = True
        CLOCK["offset"] = 0.0

    def advance(self, seconds: float):
        """Time passes (between an admin's steps): later saves get a later updated_at."""
        CLOCK["offset"] += seconds

    def lend(self, provider, recipient, course, type="TeacherEnrollment", section=None,
             end_at=None, state="active") -> Enrollment:
        """A temporary enrollment: provider's access lent to recipient until end_at
        (app/models/enrollment.rb temporary_enrollment_source_user_id, temporary_enrollment_pairing_id)."""
        with self.lock:
            e = self.enroll(recipient, course, type=type, state=state, section=section, end_at=end_at)
            e.temporary_source, e.temporary_pairing = provider.id, next(self.ids)
            return e

    def sis_import(self, states: list) -> int:
        """An SIS import setting each (enrollment, state): lib/sis/enrollment_importer.rb saves a
        row only when it changed (updated_at moves, sis_batch_id set); an unchanged one gets the
        batch id by update_all, which leaves updated_at as it was."""
        with self.lock:
            batch = next(self.batch_ids)
            self.sis_batches[batch] = {"id": batch, "created_at": now_iso(), "workflow_state": "importing"}
            for e, state in states:
                if e.workflow_state != state:
                    self.set_state(e, state)
                e.sis_import_id = batch
            self.sis_batches[batch].update(ended_at=now_iso(), workflow_state="imported")
            return batch

    def add_account(self, name, parent=None) -> Account:
        with self.lock:
            account = Account(max(self.accounts) + 1, name, parent.id if parent else 1)
            self.accounts[account.id] = account
            return account

    def add_role(self, label, base="StudentEnrollment", account=None, state="active") -> Role:
        """A custom course role in an account (the root account by default)."""
        with self.lock:
            role = Role(next(self.role_ids), label, base, account.id if account else 1, state)
            self.roles[role.id] = role
            return role

    def account_chain(self, account_id) -> list[int]:
        chain = []
        while account_id is not None:
            chain.append(account_id)
            account_id = self.accounts[account_id].parent_id
        return chain

    def course_roles(self, course) -> list[Role]:
        """Built-in roles and the custom ones of the course's account and its parents
        (app/models/account.rb available_course_roles via role.rb), deleted ones left out."""
        chain = self.account_chain(course.account_id)
        return [r for r in self.roles.values() if r.workflow_state != "deleted"
                and (r.account_id is None or r.account_id in chain)]

    def crosslist(self, section, course):
        """Move a section and its enrollments into another course
        (app/models/course_section.rb crosslist_to_course)."""
        with self.lock:
            section.nonxlist_course_id = section.nonxlist_course_id or section.course_id
            section.course_id = course.id
            for e in self.enrollments.values():
                if e.course_section_id == section.id:
                    e.course_id = course.id

    def uncrosslist(self, section):
        """Move a cross-listed section back to the course it came from, its enrollments
        (every state) with it (app/models/course_section.rb uncrosslist, move_to_course)."""
        with self.lock:
            home, section.nonxlist_course_id = section.nonxlist_course_id, None
            if home is None:
                return
            section.course_id = home
            for e in self.enrollments.values():
                if e.course_section_id == section.id:
                    e.course_id, e.updated_at = home, now_iso()

    def change_sis_id(self, user, new_sis_user_id):
        """An SIS import's change_sis_id row: the login's sis_user_id is changed in place, so the
        old one finds nobody any more (lib/sis/change_sis_id_importer.rb)."""
        with self.lock:
            user.sis_user_id = new_sis_user_id

    def add_user(self, sis_user_id, name=None, other_logins=()) -> User:
        with self.lock:
            user = User(next(self.ids), name or f"User {sis_user_id}", sis_user_id, tuple(other_logins))
            self.users[user.id] = user
            return user

    def add_course(self, name="Course", sis_course_id=None, sections=()) -> Course:
        with self.lock:
            course_id, section_id = next(self.ids), next(self.ids)
            course = Course(course_id, name, sis_course_id, section_id)
            self.courses[course_id] = course
            self.sections[section_id] = Section(section_id, course_id, name)
            for sis in sections:
                self.add_section(course, sis)
            return course

    def add_section(self, course, sis_section_id=None, name=None) -> Section:
        with self.lock:
            section = Section(next(self.ids), course.id, name or f"Section {sis_section_id}",
                              sis_section_id)
            self.sections[section.id] = section
            return section

    def enroll(self, user, course, type="StudentEnrollment", state="active",
               section=None, role=None, observing=None, **extra) -> Enrollment:
        """role: a custom Role (its base type is the type); extra: sis_import_id, end_at."""
        with self.lock:
            section_id = section.id if section else course.default_section_id
            if role is not None:
                type = role.base_role_type
            role = role or self.roles[ROLE_IDS[type]]
            extra.setdefault("created_at", now_iso())
            extra.setdefault("updated_at", extra["created_at"])
            enrollment = Enrollment(next(self.ids), user.id, course.id, section_id, type,
                                    role.label if role.workflow_state != "built_in" else type,
                                    state, observing.id if observing else None, role.id, **extra)
            self.enrollments[enrollment.id] = enrollment
            return enrollment

    def user_by_sis(self, sis):
        return next((u for u in self.users.values() if sis in u.sis_ids), None)

    def enrollments_of(self, sis, course=None) -> list[Enrollment]:
        user = self.user_by_sis(sis)
        return sorted((e for e in self.enrollments.values()
                       if user and e.user_id == user.id and (course is None or e.course_id == course.id)),
                      key=lambda e: e.id)

    def set_state(self, e: Enrollment, state: str):
        """Change a state as Canvas saves it: linked observer enrollments follow a
        student's (app/models/enrollment.rb, update_linked_enrollments; deleted
        observer enrollments are not brought back)."""
        if e.workflow_state != state:  # a save that changes nothing leaves updated_at
            e.workflow_state, e.updated_at = state, now_iso()
        if e.type != "StudentEnrollment":
            return
        for other in self.enrollments.values():
            if (other.associated_user_id == e.user_id and other.course_id == e.course_id and
                    other.course_section_id == e.course_section_id and other.workflow_state != "deleted"):
                other.workflow_state, other.updated_at = state, now_iso()

    def conclude_course(self, course: Course):
        """An admin concludes the course (workflow_state completed): Course#update_enrolled_users
        (app/models/course.rb) turns its active and invited enrollments into completed ones;
        inactive ones stay inactive. A course that ends by its dates changes no enrollment."""
        with self.lock:
            course.workflow_state = "completed"
            for e in self.enrollments.values():
                if e.course_id == course.id and e.workflow_state in ("active", "invited"):
                    e.workflow_state, e.updated_at = "completed", now_iso()

    def states_of(self, sis, course=None) -> list[str]:
        return [e.workflow_state for e in self.enrollments_of(sis, course)]

    # --- Canvas's id forms (sis_parse_id) ---

    def find(self, collection: dict, text: str, column: str):
        """Numeric id, column:value or hex:column:hexbytes, as Canvas parses them."""
        text = text.strip(RUBY_SPACE)
        match = re.fullmatch(r"hex:(sis_\w+):((?:[0-9A-Fa-f]{2})+)", text)
        if match:
            name, value = match[1], binascii.unhexlify(match[2]).decode("utf-8", "replace")
        elif (match := re.fullmatch(r"(sis_\w+):(.+)", text)):
            name, value = match[1], match[2]
        elif text.isdigit():
            return collection.get(int(text))
        else:
            return None
        if name == column == "sis_user_id":  # any of the user's logins
            return next((u for u in collection.values() if value in u.sis_ids), None)
        if name == "sis_login_id" and column == "sis_user_id":
            # lib/api.rb: users by LOWER(pseudonyms.unique_id)
            return next((u for u in collection.values() if u.login.lower() == value.lower()), None)
        return next((obj for obj in collection.values()
                     if name == column and getattr(obj, column, None) == value), None)


class StandinCanvas:
    """The server; start() binds 127.0.0.1 on a free port."""

    def __init__(self, latency=(0.0, 0.0), per_page=10):
        self.store = Store()
        self.latency = latency
        self.default_per_page = per_page
        self.max_per_page = 100  # Canvas's api_max_per_page setting
        self.faults: list[Fault] = []
        self.requests: list[dict] = []
        self.throttle_status = 429
        self.throttled = 0  # answers refused by the bucket
        self.loose_search = False  # sis_user_id[] as bare user search: case-insensitive substring
        self.bucket: tuple[float, float, float] | None = None  # (high-water mark, outflow per second, cost per request)
        self._level, self._level_at = 0.0, time.monotonic()
        self._log_lock = threading.Lock()
        self.httpd: Server | None = None
        self.httpsd: Server | None = None

    def start(self, port=0):
        self.httpd = self._serve(port, None)
        return self

    def start_tls(self, context, host="localhost"):
        """Serve the same Canvas over https too, with the certificate in context."""
        self.httpsd = self._serve(0, context, host)
        return self

    def _serve(self, port, context, host="127.0.0.1") -> Server:
        handler = type("Handler", (Handler,), {"canvas": self})
        httpd = Server(("127.0.0.1", port), handler)
        httpd.daemon_threads = True
        if context:
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        httpd.base_url = f"{'https' if context else 'http'}://{host}:{httpd.server_address[1]}"
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        return httpd

    def stop(self):
        for httpd in (self.httpd, self.httpsd):
            if httpd:
                httpd.shutdown()
                httpd.server_close()

    @property
    def url(self) -> str:
        assert self.httpd is not None, "start() first"
        return self.httpd.base_url

    @property
    def tls_url(self) -> str:
        assert self.httpsd is not None, "start_tls() first"
        return self.httpsd.base_url

    def reset(self):
        self.store = Store()
        self.faults, self.requests = [], []
        self.latency, self.bucket, self.throttle_status = (0.0, 0.0), None, 429
        self.throttled, self.loose_search = 0, False
        self.default_per_page, self.max_per_page = 10, 100
        CLOCK["offset"] = 0.0

    def fault(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def calls(self, method=None, path=None) -> list[dict]:
        return [r for r in self.requests
                if (method is None or r["method"] == method) and (path is None or re.search(path, r["path"]))]

    def writes(self) -> list[dict]:
        return [r for r in self.requests if r["method"] != "GET"]

    def take_fault(self, method, path):
        with self._log_lock:
            for fault in self.faults:
                if fault.matches(method, path) and fault.skip > 0:
                    fault.skip -= 1
                elif fault.matches(method, path):
                    fault.times -= 1
                    if fault.then:
                        with self.store.lock:
                            fault.then()
                    return fault
        return None

    # Canvas's LeakyBucket (app/middleware/request_throttle.rb): every request
    # first reserves an up-front cost of 50 and is refused when that fills the
    # bucket to its high-water mark; when it ends, the reservation is replaced
    # by the request's real cost. X-Rate-Limit-Remaining is hwm - level after that.
    UP_FRONT_COST, MAXIMUM = 50.0, 800.0

    def _bucket_add(self, amount: float) -> float:
        assert self.bucket is not None  # called only when a bucket is set
        _hwm, outflow, _ = self.bucket
        with self._log_lock:
            now = time.monotonic()
            self._level = max(0.0, self._level - (now - self._level_at) * outflow)
            self._level = min(self.MAXIMUM, max(0.0, self._level + amount))
            self._level_at = now
            return self._level

    def bucket_reserve(self) -> bool:
        """Reserve the up-front cost; True when Canvas would refuse the request (throttled)."""
        if not self.bucket:
            return False
        return self._bucket_add(self.UP_FRONT_COST) >= self.bucket[0]

    def bucket_settle(self, refused: bool):
        """Replace the reservation by the real cost; the Remaining header's value, or None."""
        if not self.bucket:
            return None
        cost = 0.0 if refused else self.bucket[2]
        return self.bucket[0] - self._bucket_add(cost - self.UP_FRONT_COST)


class Server(ThreadingHTTPServer):
    base_url = ""  # scheme://host:port, set when it starts serving

    def handle_error(self, request, client_address):
        """A client that hung up (a timeout test, a killed batch) is no server error."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, OSError)):
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    canvas: StandinCanvas
    server: Server

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_DELETE(self):
        self.dispatch("DELETE")

    # --- plumbing ---

    def dispatch(self, method):
        canvas = self.canvas
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        self.query = parse_params(split.query)
        self.form = parse_params(raw_body.decode("utf-8", "replace")) \
            if "urlencoded" in (self.headers.get("Content-Type") or "") else {}
        segments = [unquote(s) for s in split.path.split("/")[1:]]
        auth = self.headers.get("Authorization") or ""
        self.record = {"method": method, "path": split.path, "raw": self.path,
                       "query": self.query, "form": self.form,
                       "authorization": auth, "cookie": self.headers.get("Cookie"),
                       "time": time.monotonic()}
        with canvas._log_lock:
            canvas.requests.append(self.record)
        refused = canvas.bucket_reserve()
        self.settled = False
        try:
            self.answer(method, split, segments, auth, refused)
        finally:
            if not self.settled:  # a fault answered early: its reservation ends too
                canvas.bucket_settle(refused=False)

    def answer(self, method, split, segments, auth, refused):
        canvas = self.canvas
        low, high = canvas.latency
        if high:
            time.sleep(random.uniform(low, high))
        if refused:
            canvas.throttled += 1
            self.settled = True
            # request_throttle.rb sets the header from the bucket after the refusal too,
            # and sends no Retry-After (rate_limit_exceeded): the client must judge the wait
            remaining = canvas.bucket_settle(refused=True)
            status = canvas.throttle_status
            reason = "Forbidden" if status == 403 else "Too Many Requests"
            return self.send(status, f"{status} {reason} (Rate Limit Exceeded)\n",
                             {"Content-Type": "text/plain", "X-Rate-Limit-Remaining": f"{remaining:.1f}"})
        self.next_host = None
        fault = canvas.take_fault(method, split.path)
        if fault and fault.kind == "delay":
            time.sleep(fault.seconds)
        elif fault and fault.kind == "status":
            return self.send(fault.status, fault.body, fault.headers)
        elif fault and fault.kind == "not_json":
            return self.send(200, "<html><body>Log in to Canvas</body></html>",
                             {"Content-Type": "text/html"})
        elif fault and fault.kind == "redirect":
            return self.send(302, "", {"Location": fault.location + split.path})
        elif fault and fault.kind == "next_host":
            self.next_host = fault.location
        elif fault and fault.kind == "drop_page":
            # page one again, and (lib/api.rb builds the links from the request's own query
            # and the collection's next page) page one's next link again
            self.query.pop("page", None)
        elif fault and fault.kind == "bad_bookmark":
            self.query["page"] = "bookmark:bm90IGpzb24"  # a bookmark Canvas cannot decode
        with canvas.store.lock:
            status, body, headers = self.route(method, segments, auth)
        remaining, self.settled = canvas.bucket_settle(refused=False), True
        self.extra_headers = {} if remaining is None else {"X-Rate-Limit-Remaining": f"{remaining:.1f}"}
        if fault and fault.kind == "after":
            return self.send(fault.status, fault.body if fault.body is not None else
                             "<html><h1>502 Bad Gateway</h1></html>", {"Content-Type": "text/html"})
        if fault and fault.kind == "reset":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if fault and fault.kind == "truncated":
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        if fault and fault.kind == "trickle":  # a network that hands the answer over a byte at a time
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.flush()
            for byte in data:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(fault.seconds)
            return
        if fault and fault.kind == "no_links":
            headers = {k: v for k, v in headers.items() if k != "Link"}
        cookie = {"Set-Cookie": "_normandy_session=abc; path=/"}  # Canvas sets one; clients must not echo it
        self.send(status, body, {**headers, **self.extra_headers, **cookie})

    def send(self, status, body, headers=None):
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
        else:
            data = (body or "").encode()
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    # --- routes ---

    def route(self, method, seg, auth):
        store = self.canvas.store
        if seg[:2] == ["api", "v1"] and len(seg) == 4 and seg[2] == "users" and method == "GET":
            return self.with_token(auth, lambda kind: self.show_user(seg[3], kind))
        if seg[:3] == ["api", "v1", "accounts"] and len(seg) == 5 and seg[4] == "roles" and method == "GET":
            return self.with_token(auth, lambda kind: self.list_roles(seg[3], kind))
        if seg[:3] == ["api", "v1", "accounts"] and len(seg) == 6 and seg[4] == "enrollments" and method == "GET":
            return self.with_token(auth, lambda kind: self.show_enrollment(seg[3], seg[5], kind))
        if seg[:3] == ["api", "v1", "accounts"] and len(seg) == 5 and seg[4] == "sis_imports" and method == "GET":
            return self.with_token(auth, lambda kind: self.list_sis_imports(seg[3], kind))
        if seg[:3] == ["api", "v1", "accounts"] and len(seg) == 6 and seg[4] == "sis_imports" and method == "GET":
            return self.with_token(auth, lambda kind: self.show_sis_import(seg[3], seg[5], kind))
        if seg[:3] == ["api", "v1", "sections"] and len(seg) == 4 and method == "GET":
            return self.with_token(auth, lambda kind: self.show_section(None, seg[3]))
        if seg[:3] != ["api", "v1", "courses"] or len(seg) < 4:
            return 404, NOT_FOUND, {}
        course = store.find(store.courses, seg[3], "sis_course_id")
        if course is None:  # Canvas looks the course up before checking the token
            return 404, NOT_FOUND, {}
        rest = seg[4:]
        if rest == [] and method == "GET":
            return self.with_token(auth, lambda kind: (200, self.course_json(course), {}))
        if len(rest) == 2 and rest[0] == "sections" and method == "GET":
            return self.with_token(auth, lambda kind: self.show_section(course, rest[1]))
        if rest == ["sections"] and method == "GET":
            return self.with_token(auth, lambda kind: self.list_sections(course, kind))
        if rest == ["enrollments"] and method == "GET":
            return self.with_token(auth, lambda kind: self.list_enrollments(course, kind))
        if rest == ["enrollments"] and method == "POST":
            return self.with_token(auth, lambda kind: self.create(course, kind))
        if len(rest) == 2 and rest[0] == "enrollments" and method == "DELETE":
            return self.with_token(auth, lambda kind: self.destroy(course, rest[1], kind))
        if len(rest) == 3 and rest[0] == "enrollments" and rest[2] == "reactivate" and method == "PUT":
            return self.with_token(auth, lambda kind: self.reactivate(course, rest[1], kind))
        return 404, NOT_FOUND, {}

    def with_token(self, auth, action):
        www = {"WWW-Authenticate": 'Bearer realm="canvas-lms"'}
        if not auth:
            return 401, {"status": "unauthenticated",
                         "errors": [{"message": "user authorization required"}]}, www
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        kind = self.canvas.store.tokens.get(token)
        if kind in (None, "expired", "revoked"):
            message = {None: "Invalid", "expired": "Expired", "revoked": "Revoked"}[kind]
            return 401, {"errors": [{"message": f"{message} access token."}]}, www
        scopes = self.canvas.store.scopes.get(token)
        if scopes is not None and not any(scope_allows(s, self.record["method"], self.record["path"])
                                          for s in scopes):
            # lib/authentication_methods.rb validate_scopes raises AccessTokenScopeError;
            # app/controllers/application_controller.rb answers it 401, without WWW-Authenticate
            return 401, {"errors": [{"message": "Insufficient scopes on access token."}]}, {}
        return action(kind)

    def course_json(self, course):
        """GET /api/v1/courses/:id (lib/api/v1/course_json.rb): include[]=concluded adds
        Course#concluded?, which counts end dates, not only workflow_state."""
        # course_code beside name: both in every course answer (lib/api/v1/course_json.rb)
        body = {"id": course.id, "name": course.name, "course_code": course.course_code or course.name,
                "sis_course_id": course.sis_course_id,
                "workflow_state": course.workflow_state, "account_id": course.account_id,
                "end_at": iso(course.end_at),
                "restrict_enrollments_to_course_dates": course.restrict_enrollments_to_course_dates}
        if "concluded" in as_list(self.query.get("include[]", [])):
            body["concluded"] = course.concluded()
        return body

    def list_roles(self, ident, kind):
        """GET /api/v1/accounts/:account_id/roles (app/controllers/role_overrides_controller.rb
        api_index): needs manage_role_overrides; state[] active (default) and/or inactive;
        built-in roles listed when active is asked; show_inherited adds the parent
        accounts' custom roles; paginated (numeric pages)."""
        store = self.canvas.store
        account = store.accounts.get(int(ident)) if ident.isdigit() else None
        if account is None:
            return 404, NOT_FOUND, {}
        if kind != "admin":  # noroles: an admin without manage_role_overrides
            return 403, UNAUTHORIZED, {}
        states = [s for s in as_list(self.query.get("state[]", [])) if s in ("active", "inactive")] or ["active"]
        inherited = self.query.get("show_inherited") in ("1", "true")
        chain = store.account_chain(account.id) if inherited else [account.id]
        roles = [r for r in store.roles.values() if r.workflow_state == "built_in"] if "active" in states else []
        roles += sorted((r for r in store.roles.values() if r.account_id in chain and r.workflow_state in states),
                        key=lambda r: r.id)
        return self.numbered_pages([{
            "id": r.id, "role": r.label, "label": r.label, "base_role_type": r.base_role_type,
            "workflow_state": r.workflow_state, "account": {"id": r.account_id or 1}} for r in roles])

    def numbered_pages(self, items):
        """lib/api.rb paginate with numeric pages: page=N, rel next while more remain."""
        try:
            per_page = int(self.query.get("per_page") or self.canvas.default_per_page)
            per_page = max(1, min(self.canvas.max_per_page, per_page))
            page = max(1, int(self.query.get("page") or 1))
        except ValueError:
            per_page, page = 1, 1
        pages = {"current": page, "first": 1, "last": max(1, -(-len(items) // per_page))}
        if page * per_page < len(items):
            pages["next"] = page + 1
        links = self.link_header(pages, per_page)
        return 200, items[(page - 1) * per_page:page * per_page], ({"Link": links} if links else {})

    def show_section(self, course, ident):
        """GET /api/v1/courses/:course_id/sections/:id: only the course's own sections;
        GET /api/v1/sections/:id (course None): any section, with the course it is in now
        and, once cross-listed, the one it came from (app/models/course_section.rb)."""
        store = self.canvas.store
        section = store.find(store.sections, ident, "sis_section_id")
        if section is None or (course is not None and section.course_id != course.id):
            return 404, NOT_FOUND, {}
        return 200, {"id": section.id, "name": section.name, "course_id": section.course_id,
                     "sis_section_id": section.sis_section_id, "end_at": iso(section.end_at),
                     "restrict_enrollments_to_section_dates": section.restrict_enrollments_to_section_dates,
                     "nonxlist_course_id": section.nonxlist_course_id}, {}

    def list_sections(self, course, kind):
        """GET /api/v1/courses/:course_id/sections (app/controllers/sections_controller.rb, index):
        the course's active sections (cross-listed ones where they are now) ordered by name,
        then id, in numbered pages; the section JSON (lib/api/v1/section.rb) does not say
        which one is the default section."""
        if kind == "student":
            return 403, UNAUTHORIZED, {}
        sections = sorted((s for s in self.canvas.store.sections.values() if s.course_id == course.id),
                          key=lambda s: (s.name.lower(), s.id))
        return self.numbered_pages([{**self.show_section(course, str(s.id))[1],
                                     **({"sis_course_id": course.sis_course_id, "integration_id": None}
                                        if kind == "admin" else {"sis_section_id": None})}
                                    for s in sections])

    def show_user(self, ident, kind):
        """GET /api/v1/users/:id (sis_user_id:, sis_login_id: as lib/api.rb finds them); an
        admin sees the SIS ID and login ID (lib/api/v1/user.rb user_json)."""
        if kind == "student":
            return 403, UNAUTHORIZED, {}
        user = self.canvas.store.find(self.canvas.store.users, ident, "sis_user_id")
        if user is None:
            return 404, NOT_FOUND, {}
        body = {"id": user.id, "name": user.name, "sortable_name": user.sortable_name}
        if kind in ADMINS:
            body.update(sis_user_id=user.sis_user_id, login_id=user.login)
        return 200, body, {}

    def show_sis_import(self, account, ident, kind):
        """GET /api/v1/accounts/:account_id/sis_imports/:id (app/controllers/sis_imports_api_controller.rb,
        root account, 'self' too; manage_sis): the SisImport's created_at and ended_at."""
        batch = self.canvas.store.sis_batches.get(int(ident)) if ident.isdigit() else None
        if account not in ("self", "1") or batch is None:
            return 404, NOT_FOUND, {}
        if kind != "admin":
            return 403, UNAUTHORIZED, {}
        return 200, dict(batch), {}

    def list_sis_imports(self, account, kind):
        """GET /api/v1/accounts/:account_id/sis_imports (app/controllers/sis_imports_api_controller.rb
        index; import_sis or manage_sis): newest first, created_since keeps those created after
        it, paginated, and the page is wrapped: {"sis_imports": [...]}."""
        if account not in ("self", "1"):
            return 404, NOT_FOUND, {}
        if kind != "admin":
            return 403, UNAUTHORIZED, {}
        since = self.query.get("created_since")
        batches = sorted(self.canvas.store.sis_batches.values(), key=lambda b: (b["created_at"], b["id"]),
                         reverse=True)
        if isinstance(since, str) and since:
            batches = [b for b in batches if b["created_at"] > since]  # both ISO 8601 UTC with Z
        status, page, headers = self.numbered_pages([dict(b) for b in batches])
        return status, {"sis_imports": page}, headers

    def show_enrollment(self, account_ident, ident, kind):
        """GET /api/v1/accounts/:account_id/enrollments/:id (app/controllers/enrollments_api_controller.rb
        show): @context.all_enrollments.find(id), the account's enrollments by root_account_id
        (app/models/account.rb), in any state, deleted too, wherever the course is now; "self"
        is the root account (lib/api.rb api_find_all). A sub-account holds none (its id is no
        root_account_id): 404. Needs read_roster on the account: admins only here."""
        store = self.canvas.store
        account = store.accounts.get(1 if account_ident == "self" else
                                     int(account_ident) if account_ident.isdigit() else 0)
        if account is None:
            return 404, NOT_FOUND, {}
        e = store.enrollments.get(int(ident)) if ident.isdigit() else None
        if e is None or store.account_chain(store.courses[e.course_id].account_id)[-1] != account.id:
            return 404, NOT_FOUND, {}
        if kind not in ADMINS:
            return 403, UNAUTHORIZED, {}
        return 200, self.enrollment_json(e, kind), {}

    def list_enrollments(self, course, kind):
        store, q = self.canvas.store, self.query
        if kind == "student":
            return 403, UNAUTHORIZED, {}
        rows = [e for e in store.enrollments.values() if e.course_id == course.id]
        states = q.get("state[]", q.get("state"))
        if isinstance(states, str):
            states = [states] if states else None
        if "user_id" in q:
            user = store.find(store.users, q["user_id"], "sis_user_id")
            if user is None:
                return 404, NOT_FOUND, {}
            rows = [e for e in rows if e.user_id == user.id]
            if not states:
                states = ["active", "invited"]
        if "sis_user_id[]" in q or "sis_user_id" in q:
            if kind not in ADMINS:
                return 400, {"message": "Insufficient permissions to filter by SIS fields"}, {}
            wanted = as_list(q.get("sis_user_id[]", q.get("sis_user_id")))
            wanted = [w for w in wanted if w.strip(RUBY_SPACE)]
            if any(len(w.strip(RUBY_SPACE)) < 2 for w in wanted):
                return 400, {"errors": [{"field": "search_term", "code": "invalid",
                                         "message": "2 or more characters is required"}]}, {}
            ids = {u.id for u in store.users.values() if set(u.sis_ids) & set(wanted) or (
                self.canvas.loose_search and u.sis_user_id and
                any(w.lower() in u.sis_user_id.lower() for w in wanted))}
            rows = [e for e in rows if e.user_id in ids]
        if "type[]" in q and "role[]" not in q:
            rows = [e for e in rows if e.type in as_list(q["type[]"])]
        if "role[]" in q:
            roles = as_list(q["role[]"])
            known = {r.label if r.workflow_state != "built_in" else r.base_role_type
                     for r in store.course_roles(course)}
            if any(r not in known for r in roles):
                return 400, {"errors": [{"message": "An error occurred.", "error_code": "bad_request"}]}, {}
            rows = [e for e in rows if e.role in roles]
        if states:
            rows = [e for e in rows if e.workflow_state in states]
        else:
            hidden = {"rejected", "completed", "deleted"} | ({"inactive"} if kind not in ADMINS else set())
            rows = [e for e in rows if e.workflow_state not in hidden]
        keyed = sorted(((self.sort_key(e), e) for e in rows), key=lambda pair: pair[0])
        rows, self.keys = [e for _, e in keyed], [k for k, _ in keyed]
        # only the page's rows are rendered: a 20,000-row roster is read page by page in tests
        return self.paginate(rows, lambda page: [self.enrollment_json(e, kind, with_user=True) for e in page])

    def sort_key(self, e):
        user = self.canvas.store.users[e.user_id]
        return (e.type, user.sortable_name.lower(), e.id)

    def paginate(self, rows, render):
        """Bookmark pagination: opaque page tokens, rel=next only while more remain.
        render(rows of the page) -> the page's JSON items."""
        q = self.query
        try:
            per_page = max(1, min(self.canvas.max_per_page, int(q.get("per_page") or self.canvas.default_per_page)))
        except ValueError:
            per_page = 1
        page = q.get("page")
        page = page if isinstance(page, str) else ""
        start = 0
        if page.startswith("bookmark:"):
            try:
                mark = json.loads(base64.urlsafe_b64decode(page[9:] + "=" * (-len(page[9:]) % 4)))
                key = (mark[0], mark[1].lower(), mark[2])
                start = bisect.bisect_right(self.keys, key)
            except (ValueError, IndexError, TypeError, AttributeError):
                # a bookmark Canvas cannot decode or validate is dropped: page one again
                # (gems/bookmarked_collection/lib/bookmarked_collection/collection.rb, page_to_bookmark)
                start, page = 0, ""
        chunk = render(rows[start:start + per_page])
        pages = {"current": page or "first", "first": "first"}
        if start + per_page < len(rows):
            last = rows[start + per_page - 1]
            user = self.canvas.store.users[last.user_id]
            pages["next"] = "bookmark:" + base64.urlsafe_b64encode(
                json.dumps([last.type, user.sortable_name, last.id]).encode()).decode().rstrip("=")
        else:
            pages["last"] = pages["current"]  # bookmarks know the last page only on it
        links = self.link_header(pages, per_page)
        self.record["link"] = links
        return 200, chunk, ({"Link": links} if links else {})

    # lib/api.rb: the links repeat the request's query (Rails' to_query: sorted,
    # CGI-escaped) after the path, whose segments Rails escapes leaving the
    # sub-delimiters raw (Journey's escape_segment); they are added in the
    # priority next, last, prev, current, first while their URLs total at most
    # 6 KiB, the first that does not fit ending the list; the header lists them
    # as current, next, prev, first, last.
    LINK_PRIORITY = ("next", "last", "prev", "current", "first")
    LINK_ORDER = ("current", "next", "prev", "first", "last")
    MAX_LINKS_SIZE = 6 * 1024

    def link_header(self, pages: dict, per_page: int) -> str:
        split = urlsplit(self.path)
        path = "/".join(quote(unquote(seg), safe="!$&'()*+,;=:@") for seg in split.path.split("/"))
        kept = [(k, v) for k, v in parse_qsl(split.query, keep_blank_values=True)
                if k not in ("page", "per_page", "access_token", "api_key")]
        base = (self.next_host or self.server.base_url) + path + "?" + \
            (urlencode(sorted(kept, key=lambda kv: kv[0])) + "&" if kept else "")
        urls, size = {}, 0
        for rel in self.LINK_PRIORITY:
            if rel not in pages:
                continue
            url = f"{base}page={pages[rel]}&per_page={per_page}"
            if size + len(url) > self.MAX_LINKS_SIZE:
                break
            size += len(url)
            urls[rel] = url
        self.record["next"] = urls.get("next")
        return ",".join(f'<{urls[rel]}>; rel="{rel}"' for rel in self.LINK_ORDER if rel in urls)

    def enrollment_json(self, e, kind, with_user=False):
        store = self.canvas.store
        user, course = store.users[e.user_id], store.courses[e.course_id]
        section = store.sections[e.course_section_id]
        body = {"id": e.id, "user_id": e.user_id, "course_id": e.course_id, "type": e.type,
                "created_at": e.created_at, "updated_at": e.updated_at,
                "associated_user_id": e.associated_user_id, "start_at": None, "end_at": e.end_at,
                "course_section_id": e.course_section_id, "root_account_id": 1,
                "limit_privileges_to_course_section": e.limit, "enrollment_state": e.workflow_state,
                "role": e.role, "role_id": e.role_id,
                "html_url": f"{self.canvas.url}/courses/{course.id}/users/{user.id}"}
        if store.temporary_feature:  # lib/api/v1/user.rb: only with the temporary_enrollments feature
            body.update(temporary_enrollment_source_user_id=e.temporary_source,
                        temporary_enrollment_pairing_id=e.temporary_pairing)
        if e.type == "StudentEnrollment":
            body["grades"] = {"html_url": f"{self.canvas.url}/courses/{course.id}/grades/{user.id}",
                              "current_score": None, "final_score": None}
        if kind in ADMINS:  # read_sis; sis_import_id needs manage_sis (lib/api/v1/user.rb)
            body["sis_import_id"] = e.sis_import_id
            body.update({"sis_account_id": None, "sis_course_id": course.sis_course_id,
                         "course_integration_id": None, "sis_section_id": section.sis_section_id,
                         "section_integration_id": None, "sis_user_id": user.sis_user_id})
        if with_user:
            body["user"] = {"id": user.id, "name": user.name, "created_at": e.created_at,
                            "sortable_name": user.sortable_name, "short_name": user.name}
            if kind in ADMINS:
                body["user"].update({"sis_user_id": user.sis_user_id, "integration_id": None,
                                     "login_id": f"{user.sis_user_id}@example.edu"})
        return body

    def create(self, course, kind):
        """POST /api/v1/courses/:course_id/enrollments as app/controllers/enrollments_api_controller.rb
        create checks it, then Course#enroll_user (app/models/course.rb)."""
        store, f = self.canvas.store, self.form
        params = {k[len("enrollment["):-1]: v for k, v in f.items() if k.startswith("enrollment[")}
        if not params:
            return 400, {"message": "No parameters given"}, {}
        type_, errors, role = params.get("type") or "", [], None
        if params.get("role_id"):
            role = store.roles.get(int(params["role_id"])) if params["role_id"].isdigit() else None
            if role is not None and role not in store.course_roles(course):
                role = None  # another account's role is not this course's
        elif type_:
            role = store.roles.get(ROLE_IDS.get(type_, 0))
            if role is None:
                errors.append("Invalid type")
        else:
            role = store.roles[ROLE_IDS["StudentEnrollment"]]
        if role is not None:
            type_ = type_ or role.base_role_type
            if role.workflow_state == "inactive":
                errors.append("Cannot create an enrollment with this role because it is inactive.")
            elif type_ != role.base_role_type:
                errors.append("The specified type must match the base type for the role")
        elif not errors:
            errors.append("Invalid role")
        if not params.get("user_id"):
            errors.append("Can't create an enrollment without a user. Include enrollment[user_id] "
                          "to create an enrollment")
        if errors:
            return 400, {"message": ", ".join(errors)}, {}
        assert role is not None  # else "Invalid role" was answered above
        if kind == "student" or (kind == "nosis" and type_ != "StudentEnrollment"):
            return 403, UNAUTHORIZED, {}
        section, asked = store.sections.get(course.default_section_id), None
        if params.get("course_section_id"):
            # api_find over course_sections.active: a section cross-listed away is not found
            section = asked = store.find(store.sections, params["course_section_id"], "sis_section_id")
            if section is None or section.course_id != course.id:
                return 404, NOT_FOUND, {}
        user = store.find(store.users, params["user_id"], "sis_user_id")
        if user is None:
            return 404, NOT_FOUND, {}
        # "allow moving users already in the course to open sections"; user.enrollments
        # (app/models/user.rb) has no state scope: a row in any state, deleted too, counts
        in_course = any(e.user_id == user.id and e.course_id == course.id for e in store.enrollments.values())
        if course.concluded() and not (asked and in_course and not asked.concluded(course)):
            return 400, {"message": "Can't add an enrollment to a concluded course."}, {}
        state = params.get("enrollment_state") or "invited"
        # enroll_user reuses the row of the same user, type, role and section in any state
        assert section is not None  # the course's default section, or the one found above
        same = next((e for e in store.enrollments.values()
                     if (e.user_id, e.course_id, e.type, e.role_id, e.course_section_id)
                     == (user.id, course.id, type_, role.id, section.id)), None)
        # enrollments_api_controller.rb create: the limit as sent, else Course#enroll_user's "|| false"
        limit = as_boolean(params.get("limit_privileges_to_course_section"))
        if same and same.workflow_state != "active":
            if same.workflow_state == "deleted":
                same.sis_import_id = None  # enroll_user clears sis_batch_id of a deleted row
            store.set_state(same, state)
        elif same is None:
            same = store.enroll(user, course, state=state, section=section,
                                role=role if role.workflow_state != "built_in" else None, type=type_)
        # Course#enroll_user applies to the row it found, in any state, active too: the limit
        # sent, start_at/end_at as asked (none), and no temporary source or pairing unless
        # sent: a temporary row of this user, role and section becomes an ordinary one
        before = (same.limit, same.end_at, same.temporary_source, same.temporary_pairing)
        same.limit, same.end_at, same.temporary_source, same.temporary_pairing = limit, None, None, None
        if before != (limit, None, None, None):
            same.updated_at = now_iso()
        return 200, self.enrollment_json(same, kind), {}

    def lookup(self, course, ident):
        e = self.canvas.store.enrollments.get(int(ident)) if ident.isdigit() else None
        if e is None or e.course_id != course.id or e.workflow_state == "deleted":
            return None
        return e

    def destroy(self, course, ident, kind):
        e = self.lookup(course, ident)
        if e is None:
            return 404, NOT_FOUND, {}
        if kind not in ADMINS:
            return 403, UNAUTHORIZED, {}
        task = self.query.get("task") or self.form.get("task") or ""
        self.canvas.store.set_state(e, {"delete": "deleted", "deactivate": "inactive",
                                        "inactivate": "inactive"}.get(task, "completed"))
        return 200, self.enrollment_json(e, kind), {}

    def reactivate(self, course, ident, kind):
        e = self.lookup(course, ident)
        if e is None:
            return 404, NOT_FOUND, {}
        if kind not in ADMINS:
            return 403, UNAUTHORIZED, {}
        if e.workflow_state != "inactive":
            return 400, {"error": "enrollment not inactive"}, {}
        self.canvas.store.set_state(e, "active")
        return 200, self.enrollment_json(e, kind), {}


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def scope_allows(scope: str, method: str, path: str) -> bool:
    """A developer key's url scope ("url:GET|/api/v1/courses/:course_id/enrollments") as
    Canvas matches it against the request path (app/models/access_token.rb url_scopes_for_method:
    :params are one segment, an optional .json suffix)."""
    verb, _, pattern = scope[len("url:"):].partition("|")
    regex = re.sub(r":\w+", "[^/]+", re.escape(pattern).replace("\\:", ":"))
    return verb == method and re.fullmatch(regex + r"(\.json)?", path) is not None


def parse_params(text: str) -> dict:
    """Rack-style: 'a[]' keys collect lists, plain keys keep the last value."""
    params: dict = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        if key.endswith("[]"):
            params.setdefault(key, []).append(value)
        else:
            params[key] = value
    return params


def as_boolean(value) -> bool:
    """A form value as Canvas reads a boolean parameter (value_to_boolean): absent is false."""
    return str(value or "").strip().lower() in ("1", "true", "t", "yes", "y", "on")


def as_list(value):
    return value if isinstance(value, list) else [value]


def seed_demo(canvas: StandinCanvas, token="demo-token", filler=30):
    """The bundled demo data (see the module docstring): today's course and the previous round.

    Returns the new course (sis_course_id:PHYS2-2027)."""
    store = canvas.store
    store.tokens[token] = "admin"
    course = store.add_course("Physics 2, spring 2027", "PHYS2-2027")
    store.add_role("Auditor", "StudentEnrollment")
    store.add_section(course, "PHYS2-2027-LEC", "Lecture")
    store.add_section(course, "PHYS2-2027-LAB-A", "Lab A")
    for n in range(filler):
        store.enroll(store.add_user(f"S{9000 + n}", f"Student {n:03d}"), course)
    store.add_user("S1001", "Ada Lovelace")
    for n, name in enumerate(["Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov"]):
        store.add_user(f"S{1002 + n}", name)
    seed_previous_round(store)
    return course


def seed_previous_round(store: Store) -> Course:
    """The round before (sis_course_id:PHYS2-2026), as --from reads it: see the module docstring."""
    old = store.add_course("Physics 2, spring 2026", "PHYS2-2026")
    lecture = store.add_section(old, "PHYS2-2026-LEC", "Lecture")
    lab_a = store.add_section(old, "PHYS2-2026-LAB-A", "Lab A")
    lab_b = store.add_section(old, "PHYS2-2026-LAB-B", "Lab B")  # no namesake in PHYS2-2027
    people = {sis: store.add_user(sis, name) for sis, name in [
        ("S2001", "Lise Meitner"), ("S2002", "Emmy Noether"), ("S2003", "Niels Bohr"),
        ("S2004", "Marie Curie"), ("S2005", "Paul Dirac"), ("T3001", "Chien-Shiung Wu"),
        ("T3002", "Richard Feynman")]}
    for sis, lab, state in [("S2001", lab_a, "active"), ("S2002", lab_b, "active"),
                            ("S2003", lab_a, "inactive"), ("S2005", lab_a, "active")]:
        for section in (lecture, lab):
            store.enroll(people[sis], old, state=state, section=section)
    store.enroll(people["S2004"], old, state="completed", section=lab_b)  # concluded
    store.enroll(store.user_by_sis("S1002"), old, section=lecture)  # already in the new round by then
    store.enroll(people["T3001"], old, "TaEnrollment", section=lab_a, limit=True)
    store.enroll(people["T3002"], old, "TeacherEnrollment", section=lecture)
    return old


def main(argv=None) -> int:
    """Serve the demo course until Ctrl-C, to try the scripts by hand."""
    import argparse
    parser = argparse.ArgumentParser(description="Serve a stand-in Canvas with a demo course on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free one)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay every answer this long")
    args = parser.parse_args(argv)
    canvas = StandinCanvas().start(port=args.port)
    canvas.latency = (args.latency_ms / 1000, args.latency_ms / 1000)
    seed_demo(canvas, token="demo-token")
    print(f"stand-in Canvas at {canvas.url}; try:\n"
          f"  export CANVAS_URL={canvas.url} CANVAS_TOKEN=demo-token\n"
          "  python enroll_user.py sis_course_id:PHYS2-2027 S1001 student", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        canvas.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
