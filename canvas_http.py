"""HTTP to one Canvas: the one Session, retries, throttling, pagination and answer checks.

Client sends API calls and reads lists; it maps every failed answer to the exception
family (canvas_errors.error_for) and never resends a write whose outcome is in doubt.
canvas_common.Canvas builds the lookups by SIS ID and the enrollment calls on it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.cookiejar
import random
import re
import sys
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from urllib3.exceptions import NewConnectionError

from canvas_errors import (
    CanvasBadResponse,
    CanvasError,
    CanvasUnreachable,
    error_for,
    foreign_answer,
    is_throttled,
    redact,
)

PER_PAGE = 100  # Canvas's maximum; fewer round trips
# pages per lookup: one lookup asks for at most 100 users, so 200 pages of 100
# rows (200 enrollments each) is far past any real answer and bounds a list that never ends
MAX_PAGES = 200
# pages of a course's whole roster (--from): 100,000 rows, twice the largest course we plan for;
# a list that goes round is caught by its links and pages, not by this cap
ROSTER_PAGES = 1000

_VERBOSE_LOCK = threading.Lock()  # -v lines from several threads never run together


@dataclasses.dataclass(frozen=True)
class Config:
    """Where Canvas is and how to reach it: what load_config (canvas_common) reads."""

    base_url: str  # scheme://host[:port], no trailing slash
    token: str = dataclasses.field(repr=False)
    source: str  # where host and token came from: a file name or the environment
    ca_bundle: str | None = None  # a CA file to trust instead of the usual ones


class BearerAuth(requests.auth.AuthBase):
    """The token as Canvas wants it; set as the session's auth so ~/.netrc is never asked."""

    def __init__(self, token: str):
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def make_session(token: str, user_agent: str) -> requests.Session:
    """The one Session: Bearer auth, our User-Agent, proxies and CA files as requests reads them."""
    session = requests.Session()
    session.headers.update({"User-Agent": user_agent, "Accept": "application/json"})
    session.auth = BearerAuth(token)  # with auth set, requests never reads ~/.netrc
    # stateless: the token alone authenticates, and workers share no cookie state
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return session


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

class Client:
    """One Canvas's API over HTTP: retries, throttling, pagination."""

    def __init__(self, config: Config, user_agent: str, timeout: float = 30.0, retries: int = 5,
                 verbose: bool = False):
        self.config = config
        self.timeout = timeout  # seconds
        self.retries = retries
        self.verbose = verbose
        self.session = make_session(config.token, user_agent)
        # told of every answer: (X-Rate-Limit-Remaining or None, throttled?)
        self.observer = lambda remaining, throttled: None
        # a batch's stop policy, told of every attempt; may stop the run
        self.guard: AttemptGuard | None = None


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
                    allow_redirects=False, verify=self.config.ca_bundle or True, stream=True,
                    # requests reads None as "no proxy for this scheme"; its stubs allow only str
                    proxies=DIRECT if url.startswith("http://") else None)  # type: ignore[arg-type]
                _read_whole(resp, started + self.timeout)
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
            if foreign_answer(resp):  # not Canvas's: a write's outcome unknown, a read read again
                error = error_for(resp, not_found)
                if self.guard:
                    self.guard.failed(error, method)
                if last or method != "GET":
                    raise error
                self._backoff(attempt, None)
                attempt += 1
                continue
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
        if isinstance(exc, requests.exceptions.SSLError) and _plain_http(exc):
            return CanvasUnreachable(
                f"cannot make a TLS connection to {host}: the server there answers plain HTTP, not "
                f"HTTPS ({_short_reason(exc)}); check the port in {self.config.source}, or, for a "
                f"Canvas on this machine, write the host as http://{host} (plain HTTP is allowed "
                "to this machine only)", final=True)
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
            line = redact(f"{method} {shown} -> {status} ({ms:.0f} ms)", self.config.token) + "\n"
            with _VERBOSE_LOCK:  # one whole line at a time from the workers' threads
                sys.stderr.write(line)
                sys.stderr.flush()

    def get_all(self, path: str, params: dict, not_found: str, max_pages: int = MAX_PAGES,
                key: str | None = None) -> list:
        """GET a Canvas list, following only rel="next" links on the same host; CanvasError if it fails.
        key: the list is the page's member of that name ({"sis_imports": [...]}), not the page.

        max_pages bounds a list that never ends but does not repeat itself (a link or a
        page already seen is refused at once): MAX_PAGES for lookups of up to 100
        users, ROSTER_PAGES for a course's whole roster."""
        items: list = []
        url: str | None = self.config.base_url + path
        query: dict | None = {**params, "per_page": PER_PAGE}
        followed: set[str] = set()
        pages: set[str] = set()  # digests of the pages read: one seen again means the list goes round
        previous = None
        while url:
            resp = self.send("GET", url, params=query, not_found=not_found)
            body = _json(resp)
            if key is not None and isinstance(body, dict):
                body = body.get(key)
            if not isinstance(body, list):
                raise CanvasBadResponse("Canvas answered a list request with something that is not a list")
            _check_progress(body, previous, len(followed), max_pages)
            digest = hashlib.sha256(resp.content).hexdigest()
            repeated = bool(body) and digest in pages
            pages.add(digest)
            items += body
            followed.add(url)
            links = parse_links(resp.headers.get("Link", ""))
            url, query, previous = links.get("next"), None, body  # the link carries the query
            if url in followed:
                raise CanvasBadResponse(
                    "Canvas's next-page link leads back to a page already read (a proxy that "
                    "drops the page parameter?), so the list would never end; nothing was changed")
            if repeated:  # links that differ each time, rows that do not: it goes round
                raise CanvasBadResponse(
                    "Canvas answered a page of a list with the same rows as an earlier page, so "
                    "the list would never end; nothing was changed")
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


def _check_progress(page: list, previous: list | None, pages: int, max_pages: int = MAX_PAGES):
    """A list that does not move on is refused, not followed forever.

    Canvas answers page one again for a bookmark it cannot decode
    (gems/bookmarked_collection/lib/bookmarked_collection/collection.rb), with
    the same next link; a proxy that drops the page parameter does the same.
    """
    if page and page == previous:
        raise CanvasBadResponse(
            "Canvas answered the next page with the same rows as the page before (a page "
            "link it could not read?), so the list would never end; nothing was changed")
    if pages >= max_pages:
        raise CanvasBadResponse(
            f"a list from Canvas ran past {max_pages} pages of {PER_PAGE}; stopped reading it "
            "and nothing was changed")


# what OpenSSL says when the other end answers a TLS hello with plain HTTP
_PLAIN_HTTP = ("wrong version number", "record layer failure", "packet length too long",
               "http request", "unknown protocol")


def _plain_http(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(words in text for words in _PLAIN_HTTP)


def _read_whole(resp: requests.Response, deadline: float) -> None:
    """Read the body into resp (as requests does without stream=True) by time.monotonic() deadline.

    requests' timeout bounds each socket read, so an answer trickling in a byte at a
    time would never end; this bounds the whole answer. Raises requests' own
    exceptions: ReadTimeout past the deadline (the connection closed), ChunkedEncodingError
    for a body shorter than its Content-Length, ConnectionError for one that broke."""
    read = getattr(resp.raw, "read1", None) or resp.raw.read  # read1: at most one socket read
    chunks = []
    while chunk := _read_some(resp, read):
        chunks.append(chunk)
        if time.monotonic() > deadline:
            resp.close()
            raise requests.exceptions.ReadTimeout("the answer did not arrive whole in time", response=resp)
    resp._content = b"".join(chunks)  # what Response.content would have read
    resp._content_consumed = True  # type: ignore[attr-defined]  # set as Response.content sets it
    resp.raw.release_conn()


def _read_some(resp: requests.Response, read: Any) -> bytes:
    """One read of the body; urllib3's exceptions mapped to requests' as Response.iter_content does."""
    try:
        return read(65536, decode_content=True)  # requests asks urllib3 not to decode
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.exceptions.ReadTimeout(exc, response=resp) from None
    except urllib3.exceptions.SSLError as exc:
        raise requests.exceptions.SSLError(exc, response=resp) from None
    except urllib3.exceptions.ProtocolError as exc:  # IncompleteRead: Content-Length not reached
        raise requests.exceptions.ChunkedEncodingError(exc, response=resp) from None
    except urllib3.exceptions.DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc, response=resp) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise requests.exceptions.ConnectionError(exc, response=resp) from None


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
    except (ValueError, RecursionError):  # RecursionError: nested past Python's stack
        raise CanvasBadResponse(
            f"Canvas answered HTTP {resp.status_code} with a body that is not JSON; "
            "check that the host is your Canvas") from None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
