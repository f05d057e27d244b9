"""Shared helper for enroll_user.py and set_user_state.py.

Reads the Canvas host and token from config, finds a user's enrollments in a
course by SIS ID (asking for the active and inactive states separately), and
makes the enroll, deactivate and reactivate calls. Every Canvas failure is
raised as a CanvasError whose message is one line a person can act on.
"""

from __future__ import annotations

import binascii
import dataclasses
import http.cookiejar
import ipaddress
import json
import os
import random
import re
import shlex
import stat
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Protocol
from urllib.parse import quote, urlsplit

import requests
from urllib3.exceptions import NewConnectionError

__version__ = "1.0"
USER_AGENT = f"canvas-enrollment-tools/{__version__} (+python-requests)"

ROLES = {
    "student": "StudentEnrollment",
    "teacher": "TeacherEnrollment",
    "ta": "TaEnrollment",
    "observer": "ObserverEnrollment",
    "designer": "DesignerEnrollment",
}
# Canvas's raw workflow states, grouped the way an admin thinks of them.
# invited/creation_pending are enrollments not yet accepted: they grant access
# soon, so they count as active and can be deactivated.
ACTIVE_STATES = ("active", "invited", "creation_pending")
INACTIVE_STATES = ("inactive",)
ENDED_STATES = ("completed", "rejected", "deleted")

EXIT_OK, EXIT_CANVAS, EXIT_USAGE = 0, 1, 2
PER_PAGE = 100  # Canvas's maximum; fewer round trips
# SIS IDs per lookup: at most a page of rows for one enrollment each, and a
# query short enough that Canvas's next-page link fits its 6 KiB Link header
# (lib/api.rb) beside the other links and a long host name.
MAX_QUERY_IDS, MAX_QUERY_CHARS = 100, 1500
# pages per lookup: one lookup asks for at most 100 users, so 200 pages of 100
# rows (200 enrollments each) is far past any real answer and bounds a list that never ends
MAX_PAGES = 200
RUBY_SPACE = " \t\n\v\f\r\0"  # what Ruby's strip removes (Python's strip removes more)


# --- errors -----------------------------------------------------------------


class CanvasError(Exception):
    """A failure a user can act on; str() is the one line to show."""

    exit_code = EXIT_CANVAS
    unclear = False  # a write may have been applied although it failed
    final = False  # retrying cannot help


class ConfigError(CanvasError):
    exit_code = EXIT_USAGE


class CanvasAuthError(CanvasError):
    pass


class CanvasScopeMissing(CanvasError):
    """The token works, but its developer key's scopes leave out this endpoint.

    Not a CanvasAuthError: a new token from the same key has the same scopes,
    and the endpoints the key does allow keep working."""

    final = True
    scope = ""  # the scope it needs: url:GET|/api/v1/courses/:id


class CanvasForbidden(CanvasError):
    pass


class CanvasNotFound(CanvasError):
    pass


class CanvasBadRequest(CanvasError):
    pass


class CanvasThrottled(CanvasError):
    pass


class CanvasServerError(CanvasError):
    unclear = True


class CanvasUnreachable(CanvasError):
    def __init__(self, message: str, unclear: bool = False, final: bool = False):
        super().__init__(message)
        self.unclear = unclear
        self.final = final  # retrying cannot help: a certificate, a name that does not resolve


class CanvasBadResponse(CanvasError):
    unclear = True


def canvas_message(resp: requests.Response) -> str:
    """Canvas's own words from an error body, in any of its shapes, on one line."""
    try:
        body = resp.json()
    except ValueError:
        text = resp.text.strip()
        if not text or text.lstrip().startswith("<"):
            return resp.reason or f"HTTP {resp.status_code}"
        return " ".join(text.split())[:200]
    messages = []
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):
            messages += [str(e.get("message", "")) for e in errors if isinstance(e, dict)]
        elif isinstance(errors, dict):  # model validation: {"attr": [{"message": ...}]}
            for attr, items in errors.items():
                for item in items if isinstance(items, list) else []:
                    if isinstance(item, dict):
                        messages.append(f"{attr}: {item.get('message', '')}")
        for key in ("message", "error"):
            if isinstance(body.get(key), str):
                messages.append(body[key])
        if "error_report_id" in body:
            messages.append(f"error report {body['error_report_id']}")
    text = "; ".join(m for m in messages if m) or f"HTTP {resp.status_code}"
    return " ".join(text.split())[:300]


def is_throttled(resp: requests.Response) -> bool:
    """429 on current Canvas; 403 with a rate-limit body on older Canvas."""
    if resp.status_code == 429:
        return True
    return resp.status_code == 403 and "rate limit exceeded" in resp.text.lower()


def error_for(resp: requests.Response, not_found: str) -> CanvasError:
    """Map a failed Canvas answer to the exception family, with advice."""
    status, msg = resp.status_code, canvas_message(resp)
    if is_throttled(resp):
        return CanvasThrottled(
            "Canvas is still rate-limiting this token after all retries; "
            "wait a few minutes and run again")
    if status == 401 and "insufficient scopes" in msg.lower():
        endpoint = scope_of(resp.request.method, resp.request.path_url) if resp.request else "this endpoint"
        missing = CanvasScopeMissing(
            f"the token's developer key does not allow {endpoint}; ask your Canvas admin to add "
            "that scope to the developer key (a new token from the same key would not have it either)")
        missing.scope = endpoint
        return missing
    if status == 401:
        return CanvasAuthError(
            f"Canvas rejected the access token ({msg}): make a new token in Canvas "
            "(Account > Settings > New access token) and put it in the config file or CANVAS_TOKEN")
    if status == 403:
        return CanvasForbidden(
            f"Canvas says the token's user is not permitted to do this ({msg}); "
            "ask a Canvas admin for the needed permission")
    if status == 404:
        return CanvasNotFound(not_found)
    if status in (400, 409, 422):
        return CanvasBadRequest(f"Canvas refused the request: {msg}")
    if status >= 500:
        return CanvasServerError(
            f"Canvas failed with HTTP {status} ({msg}); try again later, and "
            "report it to your Canvas admin if it persists")
    return CanvasBadResponse(f"unexpected answer from Canvas: HTTP {status} ({msg})")


# Canvas's names for the ids in the paths we call, as developer key scopes spell them.
_SCOPE_PARAMS = {"courses": "course_id", "accounts": "account_id", "sections": "section_id",
                 "users": "user_id", "enrollments": "id"}


def scope_of(method, path: str) -> str:
    """The developer key scope a request needs: 'url:GET|/api/v1/courses/:course_id/enrollments'."""
    segments = urlsplit(path).path.split("/")
    for n in range(1, len(segments)):
        if segments[n - 1] in _SCOPE_PARAMS and n > 3:
            segments[n] = ":id" if n == len(segments) - 1 else ":" + _SCOPE_PARAMS[segments[n - 1]]
    return f"url:{method}|{'/'.join(segments)}"


# --- configuration ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Config:
    base_url: str  # scheme://host[:port], no trailing slash
    token: str = dataclasses.field(repr=False)
    source: str
    ca_bundle: str | None = None  # a CA file to trust instead of the usual ones


CONFIG_HELP = (
    "set CANVAS_URL and CANVAS_TOKEN, or write config.json as "
    '{"canvas": {"host": "canvas.example.edu", "access_token": "..."}} '
    "(or name a file with --config)")


def normalize_base_url(host: str) -> str:
    """Turn 'canvas.x.edu' or 'http://127.0.0.1:8080/api/v1/' into scheme://host[:port]."""
    host = host.strip()
    if "://" not in host:
        host = "https://" + host
    try:
        parts = urlsplit(host)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        raise ConfigError(f"host {host!r} is not a valid host name or URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"host {host!r} is not an http(s) URL or host name")
    if not re.fullmatch(r"[\w.-]+|[0-9a-fA-F:.]+", parts.hostname):
        raise ConfigError(f"host {host!r} is not a valid host name")
    path = parts.path.rstrip("/")
    if path not in ("", "/api/v1") or parts.query or parts.fragment or parts.username:
        raise ConfigError(
            f"host {host!r} has a path, query or user name; give only the host name or "
            "base URL, e.g. canvas.example.edu or http://127.0.0.1:8080")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"refusing plain http to {parts.hostname}: the token would cross the "
            "network unencrypted; use https")
    return f"{parts.scheme}://{parts.netloc}"


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
    return Config(normalize_base_url(host), token.strip(), source)


def _reason(exc: OSError | UnicodeDecodeError) -> str:
    return getattr(exc, "strerror", None) or str(exc)


# --- identifiers --------------------------------------------------------------


def sis_ref(column: str, value: str) -> str:
    """Canvas's 'sis_user_id:X' form, or 'hex:sis_user_id:..' where Canvas would alter X.

    Canvas strips the id and its pattern stops at a newline, so such values
    can only be carried exactly hex-encoded.
    """
    if value != value.strip(RUBY_SPACE) or "\n" in value:
        return f"hex:{column}:{binascii.hexlify(value.encode()).decode()}"
    return f"{column}:{value}"


# a course as the browser's address bar shows it: https://HOST/courses/4711/users
COURSE_URL = re.compile(r"(?i:https?)://[^/?#\s]+/courses/(?P<id>\d+)(?:[/?#]\S*)?")  # schemes: any case


def parse_course(text: str) -> str:
    """A course argument, checked: numeric id, sis_course_id:XYZ or a course URL (whose host the
    runner checks, canvas_jobs/courses.py); ValueError otherwise."""
    if COURSE_URL.fullmatch(text.strip()):
        return text
    try:
        return _canvas_id(text, "course", "sis_course_id")
    except ValueError as exc:
        raise ValueError(f"{exc}; or the course's address, https://HOST/courses/12345") from None


def parse_section(text: str) -> str:
    """A section argument, checked: numeric id or sis_section_id:XYZ; ValueError otherwise."""
    return _canvas_id(text, "section", "sis_section_id")


def _canvas_id(text: str, what: str, column: str) -> str:
    if (text.isascii() and text.isdigit()) or (text.startswith(column + ":") and text != column + ":"):
        return text
    raise ValueError(f"{what} must be a Canvas {what} id (12345) or {column}:XYZ, not {text!r}")


def id_ref(text: str, column: str) -> str:
    """A checked id as Canvas must receive it: numeric, or the SIS form via sis_ref."""
    prefix = column + ":"
    return sis_ref(column, text[len(prefix):]) if text.startswith(prefix) else text


def course_path(course: str) -> str:
    """/api/v1/courses/<id>, escaped so no character can leave the path segment."""
    return f"/api/v1/courses/{quote(id_ref(course, 'sis_course_id'), safe=':')}"


def parse_role(text: str) -> str:
    """'student'/'StudentEnrollment' etc. to Canvas's type name; ValueError otherwise."""
    word = text.strip().lower()
    for short, type_name in ROLES.items():
        if word in (short, type_name.lower()):
            return type_name
    raise ValueError(f"unknown role {text!r}: use one of {', '.join(ROLES)}")


def parse_sis_id(text: str) -> str:
    """A SIS ID argument, exactly as given; ValueError if empty."""
    if not text:
        raise ValueError("the SIS ID is empty")
    return text


def row_sis_id(row: dict) -> str | None:
    """The SIS ID Canvas reports for an enrollment row, or None if it hides it."""
    user = row.get("user")
    return row.get("sis_user_id", user.get("sis_user_id") if isinstance(user, dict) else None)


def section_matches(row: dict, section: str | None) -> bool:
    """Whether an enrollment row is in section (an id or sis_section_id:X); any section for None."""
    if section is None:
        return True
    if section.startswith("sis_section_id:"):
        return row.get("sis_section_id") == section[len("sis_section_id:"):]
    return str(row.get("course_section_id")) == section


# --- HTTP ---------------------------------------------------------------------


class BearerAuth(requests.auth.AuthBase):
    """The token as Canvas wants it; set as the session's auth so ~/.netrc is never asked."""

    def __init__(self, token: str):
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def make_session(token: str) -> requests.Session:
    """The one Session: Bearer auth, our User-Agent, proxies and CA files as requests reads them."""
    session = requests.Session()
    session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
    session.auth = BearerAuth(token)  # with auth set, requests never reads ~/.netrc
    # stateless: the token alone authenticates, and workers share no cookie state
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return session


# map() or a pool's map: how a batch of lookups is sent
Mapper = Callable[[Callable[[Any], Any], Iterable[Any]], Iterable[Any]]

# Plain http is allowed to loopback only; no proxy may see that traffic in clear.
DIRECT = {"http": None, "https": None}


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _short_reason(exc: Exception) -> str:
    """The innermost reason, short: 'certificate verify failed: self-signed certificate'."""
    text = str(exc)
    match = re.search(r"\[SSL: [A-Z_]+\] ([^(]+?)(?: \(_ssl|\)|'|$)", text)
    return (match[1] if match else text.split(":")[-1]).strip()[:160]


def _remaining(resp: requests.Response) -> float | None:
    try:
        return float(resp.headers["X-Rate-Limit-Remaining"])
    except (KeyError, ValueError):
        return None


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request cannot have reached Canvas (DNS, refused, connect timeout)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


class AttemptGuard(Protocol):
    """A run's stop policy, told of every attempt (canvas_jobs.guard.Guard is the one used).

    before() may raise to stop a request before it is sent; failed(error, method) hears of a
    request that got no answer; answered(response, tries) of one that did, and returns
    True when the request is to be sent again (throttling as back-pressure)."""

    def before(self) -> None: ...

    def failed(self, error: CanvasError, method: str = "GET") -> None: ...

    def answered(self, resp: requests.Response, tries: int) -> bool: ...


class Canvas:
    """One Canvas account's API: retries, pagination and the enrollment calls."""

    def __init__(self, config: Config, timeout: float = 30.0, retries: int = 5,
                 verbose: bool = False):
        self.config = config
        self.timeout = timeout
        self.retries = retries
        self.verbose = verbose
        self.session = make_session(config.token)
        # told of every answer: (X-Rate-Limit-Remaining or None, throttled?)
        self.observer = lambda remaining, throttled: None
        # a batch's stop policy, told of every attempt; may stop the run
        self.guard: AttemptGuard | None = None
        self._seen: dict[str, dict] = {}  # course and section answers, asked once
        self._lists: dict[str, list] = {}  # a course's sections, asked once
        self.known_users: set[str] = set()  # user refs a roster just showed: they exist

    # Canvas answers throttling before doing any work, so any method may be
    # resent then. A 5xx or a lost connection after sending may hide an applied
    # write, so only reads are resent; callers look again before re-writing.
    def request(self, method: str, url: str, *, not_found: str, params: dict | None = None,
                data: dict | None = None) -> Any:
        """Send one API call and return its decoded JSON body; CanvasError if it fails."""
        return _json(self.send(method, url, not_found=not_found, params=params, data=data))

    def send(self, method: str, url: str, *, not_found: str, params: dict | None = None,
             data: dict | None = None) -> requests.Response:
        """Send one API call with retries; return the successful Response; CanvasError if it fails.

        url is a path under the base URL or a full URL (a next-page link); not_found
        is the message of the CanvasNotFound a 404 raises."""
        try:
            return self._send(method, url, not_found, params, data)
        except CanvasError as exc:
            exc.args = (redact(str(exc), self.config.token),)  # a server may echo anything
            raise

    def _send(self, method: str, url: str, not_found: str, params: dict | None,
              data: dict | None) -> requests.Response:
        if not url.startswith("http"):
            url = self.config.base_url + url
        first = time.monotonic()
        attempt = throttles = 0
        while True:
            last = attempt >= self.retries
            started = time.monotonic()
            if self.guard:
                self.guard.before()
            try:
                resp = self.session.request(
                    method, url, params=params, data=data, timeout=self.timeout,
                    allow_redirects=False, verify=self.config.ca_bundle or True,
                    # requests reads None as "no proxy for this scheme"; its stubs allow only str
                    proxies=DIRECT if url.startswith("http://") else None)  # type: ignore[arg-type]
            except requests.RequestException as exc:
                self._log(method, url, params, type(exc).__name__, started)
                error = self._network_error(exc, method, attempt + 1, time.monotonic() - first)
                if self.guard:
                    self.guard.failed(error, method)
                if last or error.final or (error.unclear and method != "GET"):
                    raise error from None
                self._backoff(attempt, None)
                attempt += 1
                continue
            self._log(method, resp.url, None, resp.status_code, started)
            self.observer(_remaining(resp), is_throttled(resp))
            if self.guard and self.guard.answered(resp, throttles):
                throttles += 1  # back-pressure: it waited its turn and goes again, not a retry
                continue
            retryable = is_throttled(resp) or (method == "GET" and resp.status_code in (502, 503, 504))
            if retryable and not last:
                self._backoff(attempt, _retry_after(resp))
                attempt += 1
                continue
            if 300 <= resp.status_code < 400:
                raise CanvasBadResponse(
                    f"Canvas answered with a redirect to {_origin(resp.headers.get('Location', '?'))}; "
                    "not following it with the token: check the host in the config")
            if resp.status_code >= 400:
                raise error_for(resp, not_found)
            return resp
        raise AssertionError("the last attempt returns or raises")

    @staticmethod
    def _backoff(attempt: int, retry_after: float | None) -> None:
        """Exponential backoff with full jitter, or Canvas's Retry-After."""
        delay = retry_after if retry_after is not None else random.uniform(0, 0.5 * 2 ** attempt)
        time.sleep(min(delay, 60.0))

    def _network_error(self, exc: requests.RequestException, method: str, tries: int,
                       seconds: float) -> CanvasError:
        host = urlsplit(self.config.base_url).netloc
        if isinstance(exc, requests.exceptions.SSLError):
            return CanvasUnreachable(
                f"cannot make a trusted TLS connection to {host}: a certificate problem "
                f"({_short_reason(exc)}); if your network inspects TLS, name your organisation's "
                'CA file with --ca-bundle FILE (or "ca_bundle" in the config file, or '
                "REQUESTS_CA_BUNDLE)", final=True)
        if isinstance(exc, requests.exceptions.ProxyError):
            return CanvasUnreachable(
                f"cannot reach Canvas at {host} through the proxy ({_short_reason(exc)}); "
                "check HTTPS_PROXY and NO_PROXY")
        if isinstance(exc, requests.Timeout):
            return CanvasUnreachable(
                f"Canvas at {host} gave no answer in {tries} {'try' if tries == 1 else 'tries'} "
                f"over {seconds:.{1 if seconds < 10 else 0}f} s (each allowed {self.timeout:g} s); try again later or "
                "allow more with --timeout", unclear=not _never_sent(exc))
        if _never_sent(exc):
            text = str(exc).lower()
            if "resolve" in text or "name or service" in text or "getaddrinfo" in text:
                return CanvasUnreachable(
                    f"cannot reach Canvas at {host}: the host name does not resolve; check the "
                    f"host in {self.config.source} and your network", final=True)
            return CanvasUnreachable(
                f"cannot reach Canvas at {host}: the connection was refused; check the host in "
                f"{self.config.source} and your network")
        return CanvasUnreachable(
            f"the connection to Canvas at {host} broke during {method} "
            f"({type(exc).__name__}); try again", unclear=True)

    def _log(self, method: str, url: str, params: dict | None, status: int | str, started: float) -> None:
        if self.verbose:
            shown = requests.Request(method, url, params=params).prepare().url if params else url
            ms = (time.monotonic() - started) * 1000
            print(redact(f"{method} {shown} -> {status} ({ms:.0f} ms)", self.config.token),
                  file=sys.stderr)

    def get_all(self, path: str, params: dict, not_found: str) -> list:
        """GET a Canvas list, following only rel="next" links on the same host; CanvasError if it fails."""
        items: list = []
        url: str | None = self.config.base_url + path
        query: dict | None = {**params, "per_page": PER_PAGE}
        followed: set[str] = set()
        previous = None
        while url:
            resp = self.send("GET", url, params=query, not_found=not_found)
            body = _json(resp)
            if not isinstance(body, list):
                raise CanvasBadResponse("Canvas answered a list request with something that is not a list")
            _check_progress(body, previous, len(followed))
            items += body
            followed.add(url)
            links = parse_links(resp.headers.get("Link", ""))
            url, query, previous = links.get("next"), None, body  # the link carries the query
            if url in followed:
                raise CanvasBadResponse(
                    "Canvas's next-page link leads back to a page already read (a proxy that "
                    "drops the page parameter?), so the list would never end; nothing was changed")
            if url and _origin(url) != self.config.base_url:
                raise CanvasBadResponse(
                    f"Canvas's next-page link points at {_origin(url)}, not "
                    f"{self.config.base_url}; refusing to send the token there")
            if not url and "last" not in links and len(body) >= _per_page(links):
                # Canvas leaves out links that would pass 6 KiB (lib/api.rb): a full
                # page without them may have more behind it
                raise CanvasBadResponse(
                    f"Canvas sent a full page of {len(body)} rows without a link to the next "
                    "page, so the list may be cut short; nothing was changed. Try again, and "
                    "report it if it persists")
        return items

    # --- enrollment calls -----------------------------------------------------

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

    def course(self, course: str) -> dict:
        """GET /api/v1/courses/:id?include[]=concluded, once per run: its account_id, and
        "concluded" as Course#concluded? (app/models/course.rb) judges it, end dates included."""
        return self._once(course_path(course), f"course {course} not found: check the course id",
                          {"include[]": "concluded"})

    def sections(self, course: str) -> list[dict]:
        """GET /api/v1/courses/:course_id/sections, once per run: the course's active sections."""
        path = f"{course_path(course)}/sections"
        if path not in self._lists:
            self._lists[path] = self.get_all(path, {}, f"course {course} not found: check the course id")
        return self._lists[path]

    def any_section(self, section: str) -> dict | None:
        """GET /api/v1/sections/:id: a section in whatever course it is now (course_id), and
        the course it was cross-listed from (nonxlist_course_id); None if Canvas has none."""
        try:
            return self._once(f"/api/v1/sections/{quote(id_ref(section, 'sis_section_id'), safe=':')}", "")
        except CanvasNotFound:
            return None

    def section(self, course: str, section: str) -> dict:
        """GET /api/v1/courses/:course_id/sections/:id, once per run; only the course's own."""
        return self._once(f"{course_path(course)}/sections/{quote(id_ref(section, 'sis_section_id'), safe=':')}",
                          f"section {section} not found in course {course}")

    def _once(self, path: str, not_found: str, params=None) -> dict:
        if path not in self._seen:
            body = self.request("GET", path, not_found=not_found, params=params)
            if not isinstance(body, dict):
                raise CanvasBadResponse("Canvas answered with something that is not an object")
            self._seen[path] = body
        return self._seen[path]

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
        return body.get("id", -1) if isinstance(body, dict) else -1

    def enroll(self, course: str, sis_id: str, type_name: str | None, state: str,
               section: str | None, notify: bool, role_id: int | None = None) -> dict:
        """POST /api/v1/courses/:course_id/enrollments for a user given by SIS ID.

        type_name: the built-in type, or a custom role's base type (None: Canvas takes
        the role's); role_id: a custom role's id (enrollments_api_controller.rb create)."""
        data = {"enrollment[user_id]": sis_ref("sis_user_id", sis_id)}
        if type_name:
            data["enrollment[type]"] = type_name
        if role_id is not None:
            data["enrollment[role_id]"] = str(role_id)
        data.update({"enrollment[enrollment_state]": state,
                     "enrollment[notify]": "true" if notify else "false"})
        if section:
            data["enrollment[course_section_id]"] = id_ref(section, "sis_section_id")
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


def parse_links(header: str) -> dict[str, str]:
    """rel -> URL from a Link header, each URL read up to its closing '>' (RFC 8288).

    Canvas leaves ; , = and other sub-delimiters raw inside the URLs (a course
    SIS ID like PHYS;2027), so the header cannot be split at them.
    """
    links: dict[str, str] = {}
    pos = 0
    while (start := header.find("<", pos)) >= 0 and (end := header.find(">", start)) >= 0:
        pos = header.find("<", end)
        params = header[end + 1:pos if pos >= 0 else len(header)]
        rel = re.search(r';\s*rel\s*=\s*"?([^";,]+)"?', params)
        for name in rel[1].split() if rel else ():
            links.setdefault(name.lower(), header[start + 1:end])
        if pos < 0:
            break
    return links


def _check_progress(page: list, previous: list | None, pages: int):
    """A list that does not move on is refused, not followed forever.

    Canvas answers page one again for a bookmark it cannot decode
    (gems/bookmarked_collection/lib/bookmarked_collection/collection.rb), with
    the same next link; a proxy that drops the page parameter does the same.
    """
    if page and page == previous:
        raise CanvasBadResponse(
            "Canvas answered the next page with the same rows as the page before (a page "
            "link it could not read?), so the list would never end; nothing was changed")
    if pages >= MAX_PAGES:
        raise CanvasBadResponse(
            f"a list from Canvas ran past {MAX_PAGES} pages of {PER_PAGE}; stopped reading it "
            "and nothing was changed")


def _per_page(links: dict[str, str]) -> int:
    """The page size Canvas used, from its links, else the one asked for."""
    for url in links.values():
        match = re.search(r"[?&]per_page=(\d+)", url)
        if match:
            return int(match[1])
    return PER_PAGE


def _json(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        raise CanvasBadResponse(
            f"Canvas answered HTTP {resp.status_code} with a body that is not JSON; "
            "check that the host is your Canvas") from None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


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


def redact(text: str, token: str) -> str:
    """Remove the token from any text that may be shown or written."""
    return text.replace(token, "[REDACTED]") if token else text


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


def no_such_user(sis_id: str) -> CanvasNotFound:
    """The one wording of 'unknown SIS ID', for every script and path."""
    spaces = " (it has leading or trailing spaces)" if sis_id != sis_id.strip() else ""
    # Excel and other spreadsheets read 000140 as the number 140
    zeros = "; if it came from a spreadsheet, leading zeros may have been dropped (000140 saved " \
        "as 140): keep the column as text" if sis_id.isascii() and sis_id.isdigit() else ""
    return CanvasNotFound(
        f"Canvas has no user with SIS ID {sis_id!r}{spaces}; check it (SIS IDs are case-sensitive){zeros}")


# The commands pip, pipx and uv put on PATH (pyproject.toml [project.scripts]).
COMMANDS = ("enroll_user", "set_user_state")


def installed() -> bool:
    """True when this process was started as an installed command (enroll_user on PATH,
    enroll_user.exe on Windows), False for python enroll_user.py or any other program."""
    name = os.path.basename(sys.argv[0]).lower() if sys.argv and sys.argv[0] else ""
    return any(name in (command, command + ".exe", command + "-script.py") for command in COMMANDS)


def prog_name(script: str) -> str:
    """A script's name as the user runs it, for usage and error lines: 'enroll_user.py'
    from a checkout, 'enroll_user' when installed."""
    name = script[:-3] if script.endswith(".py") else script
    return name if installed() else name + ".py"


def command(script: str) -> str:
    """What to type to run a script, for hints: 'python set_user_state.py' from a
    checkout, 'set_user_state' when installed."""
    return prog_name(script) if installed() else f"python {prog_name(script)}"


def config_args(config: Config) -> list[str]:
    """['--config', FILE] when the host and token came from a file other than ./config.json
    (which a command finds by itself), for hints that name a command to run; else []."""
    if config.source.startswith("the environment") or config.source == "config.json":
        return []
    return ["--config", config.source]


def shell_quote(text: str) -> str:
    """A value as this platform's shell takes it in a hint (cmd.exe on Windows)."""
    if os.name == "nt":
        # list2cmdline quotes only spaces and tabs; cmd.exe also acts on & | < > ^ ( ) and
        # %VAR% outside double quotes, so a value with any of them is quoted whole
        quoted = subprocess.list2cmdline([text])
        if quoted == text and re.search(r'[&|<>^()%!]', text):
            return f'"{text}"'
        return quoted
    return shlex.quote(text)


def state_group(state: str | None) -> str | None:
    """A workflow state as an admin thinks of it: active for invited and creation_pending too."""
    return "active" if state in ACTIVE_STATES else state
