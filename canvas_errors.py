"""The exception family of the Canvas tools, and the one function that maps Canvas's answers to it.

Every failure a user or Canvas can cause is a CanvasError whose str() is the one line to
show; its exit_code is the exit status the scripts end with (README, "Exit codes").
canvas_common re-exports the family, so callers name it as canvas_common.CanvasError.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

import requests

EXIT_OK, EXIT_CANVAS, EXIT_USAGE = 0, 1, 2


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


class CanvasForeignAnswer(CanvasUnreachable):
    """Something that is not Canvas answered: a sign-in page, a proxy's block page, a body
    that is not JSON or was cut short. A write's outcome is then unknown (the page may have
    come after Canvas made it), so it is unclear, never a row's failure; the run's Guard
    stops after a few in a row. what names what answered ("a sign-in page")."""

    def __init__(self, message: str, what: str, unclear: bool = False):
        super().__init__(message, unclear=unclear)
        self.what = what


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
    """Map a failed Canvas answer to the exception family, with advice.

    An answer that is not Canvas's (foreign_answer), whatever its status, is a
    CanvasForeignAnswer: unclear for a write."""
    status, msg = resp.status_code, canvas_message(resp)
    if is_throttled(resp):
        return CanvasThrottled(
            "Canvas is still rate-limiting this token after all retries; "
            "wait a few minutes and run again")
    what = foreign_answer(resp)
    if what:
        method = resp.request.method if resp.request else "GET"
        host = urlsplit(resp.url).netloc
        return CanvasForeignAnswer(
            f"{what} answered instead of Canvas at {host} (HTTP {status} to a {method}"
            f"{': whether Canvas made the change is unknown' if method != 'GET' else ''}); "
            f"{_foreign_advice(what)}", what, unclear=method != "GET")
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


# Canvas's API answers JSON whatever happens (lib/api.rb, ApplicationController#render_unauthorized_action
# renders JSON for API requests); a 5xx page of a load balancer stays a server error (error_for).
_SIGN_IN = re.compile(r"<input[^>]*type\s*=\s*[\"']?password|<form[^>]*(?:log-?in|sign-?in|sso|saml|auth)"
                      r"|samlrequest|saml2|name\s*=\s*[\"']?(?:username|j_username|loginfmt)", re.I)
_LOGIN_WORDS = re.compile(r"\b(?:sign|log)[ -]?(?:in|on)\b|\blogin\b|single sign", re.I)
# words of web filters and proxies that put their name on the page they answer with
_PROXY_PAGE = re.compile(r"\bby ([\w-]+(?:\.[\w-]+)+) \((?:squid|proxy)|proxy(?: server)? ([\w-]+(?:\.[\w-]+)+)", re.I)


def foreign_answer(resp: requests.Response) -> str | None:
    """What answered instead of Canvas, when the answer is not Canvas's; None when it may be.

    Not Canvas's: an HTML page with any status below 500 (a sign-in page, a proxy's block
    page), or a success whose body is not JSON (empty, other text, JSON cut short).
    Returns "a sign-in page", "a proxy's page from HOST", "a page that is not Canvas's
    (HTML, TITLE)" or "an answer that is not JSON (...)"."""
    status = resp.status_code
    if status >= 500 or 300 <= status < 400 or is_throttled(resp):
        return None
    kind = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    text = resp.text[:65536]
    if "html" in kind or text.lstrip()[:1] == "<":
        return _page(resp, text)
    if status >= 300:
        return None  # a refusal in words (error_for shows them)
    try:
        resp.json()
    except ValueError:
        if not text.strip():
            return "an empty answer"
        if "json" in kind:
            return "an answer cut short (JSON that does not end)"
        return f"an answer that is not JSON ({kind or 'no content type'})"
    return None


def _page(resp: requests.Response, text: str) -> str:
    match = re.search(r"<title[^>]*>(.*?)</title", text, re.I | re.S)
    title = " ".join(html.unescape(match[1]).split())[:80] if match else ""
    if _SIGN_IN.search(text) or _LOGIN_WORDS.search(title):
        return "a sign-in page" + (f" ({title})" if title else "")
    proxy = _proxy_host(resp, text)
    if proxy:
        return f"a proxy's page from {proxy}" + (f" ({title})" if title else "")
    return f"a page that is not Canvas's (HTML{', ' + title if title else ''})"


def _proxy_host(resp: requests.Response, text: str) -> str | None:
    """The proxy that put its page in Canvas's place: Via names it (RFC 9110 7.6.3), else its page may."""
    via = resp.headers.get("Via", "").split(",")[-1].split()
    if len(via) >= 2:
        return via[1]
    match = _PROXY_PAGE.search(text)
    if match:
        return match[1] or match[2]
    server = resp.headers.get("Server", "")
    if re.search(r"squid|proxy|zscaler|bluecoat|fortigate|forcepoint|netskope|websense|barracuda", server, re.I):
        return server.split()[0]
    return None


def _foreign_advice(what: str) -> str:
    if what.startswith("a sign-in page"):
        return ("this machine's network wants a sign-in before it lets requests through (a captive "
                "portal, VPN or single sign-on gateway): sign in there, or ask IT to let this machine "
                "reach Canvas's API")
    if what.startswith("a proxy's page"):
        return ("a proxy between this machine and Canvas blocks or rewrites the requests: ask its admins to "
                "let Canvas's API through, or set NO_PROXY for Canvas's host")
    return "check that the host in the config is your Canvas and that nothing between rewrites its answers"


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


def redact(text: str, token: str) -> str:
    """Remove the token from any text that may be shown or written."""
    return text.replace(token, "[REDACTED]") if token else text
