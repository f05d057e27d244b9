"""Shared helper for enroll_user.py and set_user_state.py.

Reads the Canvas host and token from config, finds a user's enrollments in a
course by SIS ID (asking for the active and inactive states separately), and
makes the enroll, deactivate and reactivate calls. Every Canvas failure is
raised as a CanvasError (canvas_errors, re-exported here) whose message is one
line a person can act on. HTTP itself is canvas_http's; identifiers are canvas_ids'.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import shlex
import stat
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Callable
from urllib.parse import quote, urlsplit

import requests

from canvas_errors import (  # noqa: F401 -- the exception family, as callers name it: cc.CanvasError
    EXIT_CANVAS,
    EXIT_OK,
    EXIT_USAGE,
    CanvasAuthError,
    CanvasBadRequest,
    CanvasBadResponse,
    CanvasError,
    CanvasForbidden,
    CanvasNotFound,
    CanvasScopeMissing,
    CanvasServerError,
    CanvasThrottled,
    CanvasUnreachable,
    ConfigError,
    redact,
)
from canvas_http import Config
from canvas_ids import RUBY_SPACE, course_path, id_ref, row_sis_id, sis_ref
from canvas_reads import Reads

__version__ = "1.0"
USER_AGENT = f"canvas-enrollment-tools/{__version__} (+python-requests)"

# Canvas's raw workflow states, grouped the way an admin thinks of them.
# invited/creation_pending are enrollments not yet accepted: they grant access
# soon, so they count as active and can be deactivated.
ACTIVE_STATES = ("active", "invited", "creation_pending")
INACTIVE_STATES = ("inactive",)
ENDED_STATES = ("completed", "rejected", "deleted")

# SIS IDs per lookup: at most a page of rows for one enrollment each, and a
# query short enough that Canvas's next-page link fits its 6 KiB Link header
# (lib/api.rb) beside the other links and a long host name.
MAX_QUERY_IDS, MAX_QUERY_CHARS = 100, 1500


# --- configuration ----------------------------------------------------------


CONFIG_HELP = (
    "set CANVAS_URL and CANVAS_TOKEN, or write config.json as "
    '{"canvas": {"host": "canvas.example.edu", "access_token": "..."}} '
    "(or name a file with --config)")


def normalize_base_url(host: str) -> str:
    """Turn 'canvas.x.edu' or 'http://127.0.0.1:8080/api/v1/' into scheme://host[:port].
    ConfigError if it is not one; the message never shows a query, a fragment or a user
    name and password (an access_token=... pasted with the address stays unsaid)."""
    host = host.strip()
    if "://" not in host:
        host = "https://" + host
    try:
        parts = urlsplit(host)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        raise ConfigError(f"host {_shown(host)!r} is not a valid host name or URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"host {_shown(host)!r} is not an http(s) URL or host name")
    if not re.fullmatch(r"[\w.-]+|[0-9a-fA-F:.]+", parts.hostname):
        raise ConfigError(f"host {_shown(host)!r} is not a valid host name")
    path = parts.path.rstrip("/")
    if path not in ("", "/api/v1") or parts.query or parts.fragment or parts.username:
        raise ConfigError(
            f"host {_shown(host)!r} has a path, query or user name; give only the host name or "
            "base URL, e.g. canvas.example.edu or http://127.0.0.1:8080")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"refusing plain http to {parts.hostname}: the token would cross the "
            "network unencrypted; use https")
    return f"{parts.scheme}://{parts.netloc}"


def _shown(host: str) -> str:
    """A host as an error may show it: without user info, query or fragment."""
    host = re.split(r"[?#]", host, maxsplit=1)[0]
    scheme, sep, rest = host.rpartition("://")
    return scheme + sep + rest.rpartition("@")[2] if "@" in rest else host


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def load_config(path: str | None = None, environ: Mapping[str, str] | None = None,
                ca_bundle: str | None = None) -> Config:
    """Host and token from --config FILE, else CANVAS_URL/CANVAS_TOKEN, else ./config.json.

    Both always come from one source, so a token is never sent to a host
    named somewhere else. The CA file: --ca-bundle, else the config file's
    "ca_bundle", else what requests reads (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE),
    else SSL_CERT_FILE.
    """
    environ = os.environ if environ is None else environ
    if path is None and ("CANVAS_URL" in environ or "CANVAS_TOKEN" in environ):
        config = _make_config(environ.get("CANVAS_URL"), environ.get("CANVAS_TOKEN"),
                              "the environment (CANVAS_URL, CANVAS_TOKEN)")
        return _with_ca(config, ca_bundle, None, environ)
    if path is None:
        path = "config.json"
        if not os.path.exists(path):
            raise ConfigError(f"no Canvas host or token configured: {CONFIG_HELP}")
    try:
        _check_config_file(path, os.stat(path).st_mode)  # before open: a device or socket is never read
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            raw = f.read(MAX_CONFIG + 1)  # /dev/zero or an endless pipe: bounded
        if len(raw) > MAX_CONFIG:
            raise ConfigError(f"config file {path} is larger than {MAX_CONFIG // 1024} KiB: not a config file")
        data = json.loads(_config_text(raw))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist: {CONFIG_HELP}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {_reason(exc)}") from None
    except ValueError as exc:
        raise ConfigError(f"config file {path} is not valid JSON ({exc})") from None
    except RecursionError:  # brackets nested deeper than Python's stack
        raise ConfigError(f"config file {path} is not a config file (JSON nested too deep)") from None
    canvas = data.get("canvas") if isinstance(data, dict) else None
    if not isinstance(canvas, dict):
        raise ConfigError(f'config file {path} has no "canvas" object: {CONFIG_HELP}')
    if os.name == "posix" and mode & (stat.S_IRGRP | stat.S_IROTH):
        print(f"warning: config file {path} can be read by other users; "
              f"protect the token with: chmod 600 {path}", file=sys.stderr)
    config = _make_config(canvas.get("host"), canvas.get("access_token"), path)
    return _with_ca(config, ca_bundle, canvas.get("ca_bundle"), environ)


MAX_CONFIG = 64 * 1024  # a config is a few hundred bytes


def _check_config_file(path: str, mode: int) -> None:
    """Refuse what cannot be a config (a device, a socket, a directory) and, as ssh refuses
    such a key, a file other users can change: whoever writes it decides where the token goes.
    A pipe (--config <(...)) is read. ConfigError."""
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
        raise ConfigError(f"config file {path} is a {'socket' if stat.S_ISSOCK(mode) else 'device'}, not a file")
    if os.name == "posix" and stat.S_ISREG(mode) and mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(f"config file {path} can be changed by other users (mode {stat.S_IMODE(mode):03o}), "
                          f"who could send the token anywhere; fix it with: chmod 600 {shlex.quote(path)}")


def _config_text(raw: bytes) -> str:
    """UTF-8, with or without the byte-order mark Notepad writes, or UTF-16 (PowerShell 5's >)."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    return raw.decode("utf-8-sig")


def _with_ca(config: Config, option, in_file, environ) -> Config:
    named = [(option, "--ca-bundle"), (in_file, f'"ca_bundle" in {config.source}')] + \
        [(environ.get(v), v) for v in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")]
    for value, where in named:
        if value:
            if not isinstance(value, str) or not os.path.isfile(value):
                raise ConfigError(f"the CA file {value!r} named by {where} does not exist")
            return dataclasses.replace(config, ca_bundle=value)
    return config


def _make_config(host, token, source: str) -> Config:
    if not isinstance(host, str) or not host.strip():
        raise ConfigError(f"no Canvas host in {source}: {CONFIG_HELP}")
    if not isinstance(token, str) or not token.strip():
        raise ConfigError(f"no access token in {source}: {CONFIG_HELP}")
    if not re.fullmatch(r"[\x21-\x7e]+", token.strip()):
        # never echo it: it may be a real token pasted with a stray character
        raise ConfigError(f"the access token in {source} has spaces or characters a Canvas "
                          "token cannot have; copy it again")
    try:
        base_url = normalize_base_url(host)
    except ConfigError as exc:  # a host pasted with the token in it
        raise ConfigError(redact(str(exc), token.strip())) from None
    return Config(base_url, token.strip(), source)


def _reason(exc: OSError | UnicodeDecodeError) -> str:
    return getattr(exc, "strerror", None) or str(exc)


# --- lookups by SIS ID and the enrollment calls ---------------------------------

# map() or a pool's map: how a batch of lookups is sent
Mapper = Callable[[Callable[[Any], Any], Iterable[Any]], Iterable[Any]]


class Canvas(Reads):
    """One Canvas account: the lookups by SIS ID and the enrollment calls, over canvas_http.Client
    and the reads asked once per run (canvas_reads.Reads: the course, its sections, ...)."""

    def __init__(self, config: Config, timeout: float = 30.0, retries: int = 5,
                 verbose: bool = False):
        super().__init__(config, USER_AGENT, timeout=timeout, retries=retries, verbose=verbose)
        self.known_users: set[str] = set()  # user refs a roster just showed: they exist
        self.people: dict[str, str] = {}  # SIS ID -> the user's name, as answers showed it (no request of its own)

    def enrollments(self, course: str, sis_ids: list[str], states: Iterable[Iterable[str]],
                    map: Mapper = map) -> dict[str, list]:
        """GET /api/v1/courses/:course_id/enrollments: rows by the SIS ID asked for.

        One request per short chunk of SIS IDs and group of states, sent through
        map (a pool's, to overlap them). A row counts for a SIS ID when Canvas
        shows exactly that SIS ID, so a loose server-side match never reaches
        another person; or when Canvas shows another SIS ID of the same user
        (a second login), which is confirmed by asking who the asked one belongs to.
        states: groups of workflow states, one lookup each. CanvasError if a lookup fails.
        """
        queries = [q for group in states for q in _lookup_queries(sis_ids, group)]
        # the first goes alone: an unknown course or a token without rights costs one request
        answers = [self._lookup(course, queries[0][1])] if queries else []
        answers += map(lambda q: self._lookup(course, q[1]), queries[1:])
        found: dict[str, list] = {}
        strays = []  # (SIS IDs asked in that request, a row showing none of them)
        for (asked, _), rows in zip(queries, answers):
            for row in rows:
                shown = row_sis_id(row)
                self._remember(shown, row.get("user"))
                if shown is not None and shown in asked:
                    found.setdefault(shown, []).append(row)
                else:
                    strays.append((asked, row))
        unresolved = list(dict.fromkeys(s for asked, _ in strays for s in asked if s not in found))
        owners = dict(zip(unresolved, map(self.user_id, unresolved)))
        for asked, row in strays:
            for sis in asked:
                if owners.get(sis) is not None and owners[sis] == row.get("user_id"):
                    found.setdefault(sis, []).append(row)
        return found

    def _lookup(self, course: str, params: dict) -> list[dict]:
        try:
            rows = self.get_all(f"{course_path(course)}/enrollments", params,
                                f"course {course} not found: check the course id")
        except CanvasBadRequest as exc:
            if "sis fields" in str(exc).lower():
                raise CanvasForbidden(
                    f"this token may not look users up by SIS ID ({exc}); its user needs "
                    "Canvas's permission to read SIS data (ask a Canvas admin)") from None
            raise
        except CanvasNotFound:
            # user_id= answers 404 for an unknown user too, not just an unknown course
            if "user_id" not in params or self.user_exists(params["user_id"]):
                raise
            return []
        for row in rows:
            if not isinstance(row, dict) or "id" not in row:
                raise CanvasBadResponse("Canvas returned an enrollment list of an unexpected shape")
            if row_sis_id(row) is None:
                raise CanvasForbidden(
                    "Canvas hides SIS IDs from this token; the token's user needs "
                    "permission to read SIS data")
        return rows

    def _remember(self, sis_id: str | None, user: object) -> None:
        """Keep a user's name an answer showed (an enrollment row's user, a user's own answer)."""
        if sis_id is not None and isinstance(user, dict) and isinstance(user.get("name"), str):
            self.people[sis_id] = user["name"]

    def user_id(self, sis_id: str) -> int | None:
        """GET /api/v1/users/sis_user_id:X: the user any of whose logins has this SIS ID."""
        return self._user(sis_ref("sis_user_id", sis_id))

    def user_exists(self, user_ref: str) -> bool:
        """GET /api/v1/users/:user_id (a sis_ref); False when Canvas knows no such user."""
        return user_ref in self.known_users or self._user(user_ref) is not None

    def _user(self, user_ref: str) -> int | None:
        try:
            body = self.request("GET", f"/api/v1/users/{quote(user_ref, safe=':')}", not_found="")
        except CanvasNotFound:
            return None
        if user_ref.startswith("sis_user_id:"):
            self._remember(user_ref[len("sis_user_id:"):], body)
        return body.get("id", -1) if isinstance(body, dict) else -1

    def enrollment_by_id(self, enrollment_id: int) -> dict | None:
        """GET /api/v1/accounts/self/enrollments/:id: one enrollment wherever it is now.

        EnrollmentsApiController#show (app/controllers/enrollments_api_controller.rb) finds it
        in the root account's all_enrollments (any workflow state, deleted too; "self" is the
        root account, lib/api.rb api_find_all): the course, section and SIS ID it has now.
        None when Canvas has no such enrollment (removed for good, or another root account).
        Needs read_roster on the account (CanvasForbidden otherwise)."""
        try:
            body = self.request("GET", f"/api/v1/accounts/self/enrollments/{int(enrollment_id)}", not_found="")
        except CanvasNotFound:
            return None
        return self._enrollment(body)

    def enroll(self, course: str, sis_id: str, type_name: str | None, state: str,
               section: str | None, notify: bool, role_id: int | None = None, limit: bool | None = None) -> dict:
        """POST /api/v1/courses/:course_id/enrollments for a user given by SIS ID.

        type_name: the built-in type, or a custom role's base type (None: Canvas takes
        the role's); role_id: a custom role's id (enrollments_api_controller.rb create);
        limit: limit_privileges_to_course_section, which Canvas sets on the row it makes or
        reuses, to false when not sent (Course#enroll_user, app/models/course.rb)."""
        data = {"enrollment[user_id]": sis_ref("sis_user_id", sis_id)}
        if type_name:
            data["enrollment[type]"] = type_name
        if role_id is not None:
            data["enrollment[role_id]"] = str(role_id)
        data.update({"enrollment[enrollment_state]": state,
                     "enrollment[notify]": "true" if notify else "false"})
        if section:
            data["enrollment[course_section_id]"] = id_ref(section, "sis_section_id")
        if limit is not None:
            data["enrollment[limit_privileges_to_course_section]"] = "true" if limit else "false"
        return self._enrollment(self.request(
            "POST", f"{course_path(course)}/enrollments", data=data,
            not_found=f"Canvas has no user with SIS ID {sis_id!r}" + (f" or no section {section}" if section else "")))

    def deactivate(self, course: str, enrollment_id: int) -> dict:
        """DELETE /api/v1/courses/:course_id/enrollments/:id?task=deactivate."""
        return self._end(course, enrollment_id, "deactivate")

    def delete(self, course: str, enrollment_id: int) -> dict:
        """DELETE ...?task=delete: Canvas keeps the row, restorable by enrolling again."""
        return self._end(course, enrollment_id, "delete")

    def conclude(self, course: str, enrollment_id: int) -> dict:
        """DELETE ...?task=conclude: completed, read-only with its grades (undo of a reopening)."""
        return self._end(course, enrollment_id, "conclude")

    def _end(self, course: str, enrollment_id: int, task: str) -> dict:
        # never without task: Canvas then concludes, which reactivate cannot undo
        return self._enrollment(self.request(
            "DELETE", f"{course_path(course)}/enrollments/{int(enrollment_id)}",
            params={"task": task}, not_found=f"enrollment {enrollment_id} no longer exists"))

    def reactivate(self, course: str, enrollment_id: int) -> dict:
        """PUT /api/v1/courses/:course_id/enrollments/:id/reactivate."""
        return self._enrollment(self.request(
            "PUT", f"{course_path(course)}/enrollments/{int(enrollment_id)}/reactivate",
            not_found=f"enrollment {enrollment_id} no longer exists"))

    def _enrollment(self, body: Any) -> dict:
        if not isinstance(body, dict) or "id" not in body or "enrollment_state" not in body:
            raise CanvasBadResponse("Canvas answered with something that is not an enrollment")
        return body


def _lookup_queries(sis_ids: Iterable[str], states: Iterable[str]) -> Iterator[tuple[list[str], dict]]:
    """(SIS IDs, query parameters) for enrollment lookups: many sis_user_id[] per request.

    Canvas refuses sis_user_id[] values shorter than 2 characters (its user
    search minimum), so those few are asked for by user_id instead.
    """
    base = {"state[]": list(states)}
    chunk: list[str] = []
    size = 0
    for sis in dict.fromkeys(sis_ids):
        if len(sis.strip(RUBY_SPACE)) < 2:
            yield [sis], {**base, "user_id": sis_ref("sis_user_id", sis)}
            continue
        cost = len(quote(sis, safe="")) + 20
        if chunk and (size + cost > MAX_QUERY_CHARS or len(chunk) == MAX_QUERY_IDS):
            yield chunk, {**base, "sis_user_id[]": chunk}
            chunk, size = [], 0
        chunk.append(sis)
        size += cost
    if chunk:
        yield chunk, {**base, "sis_user_id[]": chunk}


# --- for the scripts ----------------------------------------------------------


def connect(config_path: str | None, timeout: float, retries: int, verbose: bool, pool: int = 1,
            ca_bundle: str | None = None) -> Canvas:
    """A Canvas client from the configuration (load_config), with a connection per worker; ConfigError if bad."""
    canvas = Canvas(load_config(config_path, ca_bundle=ca_bundle), timeout=timeout,
                    retries=retries, verbose=verbose)
    if pool > 1:  # one kept-alive connection per worker
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=pool)
        canvas.session.mount("https://", adapter)
        canvas.session.mount("http://", adapter)
    return canvas


def user_enrollments(canvas: Canvas, course: str, sis_id: str) -> list[dict]:
    """The user's active (incl. invited) and inactive enrollments: two lookups."""
    return users_enrollments(canvas, course, [sis_id]).get(sis_id, [])


def users_enrollments(canvas: Canvas, course: str, sis_ids: list[str], map: Mapper = map) -> dict[str, list]:
    """Active and inactive enrollments of many users by SIS ID, the states asked separately."""
    return canvas.enrollments(course, sis_ids, (ACTIVE_STATES, INACTIVE_STATES), map)


def users_enrollments_and_ended(canvas: Canvas, course: str, sis_ids: list[str],
                                map: Mapper = map) -> tuple[dict[str, list], dict[str, list]]:
    """({SIS ID: active and inactive enrollments}, {SIS ID: concluded, rejected or deleted ones}).

    The ended states ride along with the inactive one (still asked apart from the
    active ones), so knowing which row a POST would reopen (Course#enroll_user,
    app/models/course.rb) costs no request of its own."""
    found = canvas.enrollments(course, sis_ids, (ACTIVE_STATES, INACTIVE_STATES + ENDED_STATES), map)
    held: dict[str, list] = {}
    ended: dict[str, list] = {}
    for sis, rows in found.items():
        for row in rows:
            (ended if row.get("enrollment_state") in ENDED_STATES else held).setdefault(sis, []).append(row)
    return held, ended


def no_such_user(sis_id: str, login_of: dict | None = None) -> CanvasNotFound:
    """The one wording of 'unknown SIS ID', for every script and path; login_of: the user
    (GET /api/v1/users/sis_login_id:X) whose login ID the value is, if it is one."""
    spaces = " (it has leading or trailing spaces)" if sis_id != sis_id.strip() else ""
    # Excel and other spreadsheets read 000140 as the number 140
    zeros = "; if it came from a spreadsheet, leading zeros may have been dropped (000140 saved " \
        "as 140): keep the column as text" if sis_id.isascii() and sis_id.isdigit() else ""
    if login_of:
        owner = login_of.get("sis_user_id")
        who = f"{owner}'s login" if owner else f"the login of user {login_of.get('id')} ({login_of.get('name')})"
        return CanvasNotFound(f"Canvas has no user with SIS ID {sis_id!r}: that is {who} (a login ID, not a "
                              "SIS ID)" + (f"; give the SIS ID {owner}" if owner else ""))
    return CanvasNotFound(
        f"Canvas has no user with SIS ID {sis_id!r}{spaces}; check it (SIS IDs are case-sensitive){zeros}")


def state_group(state: str | None) -> str | None:
    """A workflow state as an admin thinks of it: active for invited and creation_pending too."""
    return "active" if state in ACTIVE_STATES else state
