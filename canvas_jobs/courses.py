"""A course pasted from the browser: https://canvas.example.edu/courses/4711/users is course 4711.

Accepted only when the URL's host is the configured Canvas: a course of another
Canvas (a test instance, another school) has an id that means another course here.
http and https of the same host are the same Canvas (only the id is taken from the
URL; requests go to the configured base URL alone); a port, when the URL gives one,
must be the configured one.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import canvas_ids

DEFAULT_PORTS = {"http": 80, "https": 443}


def course_id(text: str, base_url: str) -> str:
    """The course as Canvas takes it: a course URL on base_url becomes its numeric id; any
    other value comes back unchanged. ValueError for a course URL of another host."""
    match = canvas_ids.COURSE_URL.fullmatch(text.strip())
    if not match:
        return text
    url, canvas = urlsplit(text.strip()), urlsplit(base_url)
    port, configured = _port(url), _port(canvas)
    # no port on either: the scheme's default, and http or https of one host is one Canvas
    same_port = (port is None and configured is None) or \
        (port or DEFAULT_PORTS.get(url.scheme.lower())) == (configured or DEFAULT_PORTS.get(canvas.scheme))
    if url.hostname != canvas.hostname or not same_port:
        where = f"port {port or DEFAULT_PORTS.get(url.scheme.lower())}" if url.hostname == canvas.hostname \
            else f"{url.hostname}:{port}" if port else url.hostname
        raise ValueError(f"the course URL {text.strip()!r} is on {where}, not on the configured "
                         f"Canvas {canvas.netloc}; give the course id of a course there")
    return match["id"]


def _port(parts) -> int | None:
    """The port the URL names (None when it names none); -1 for one that is not a port."""
    try:
        return parts.port
    except ValueError:
        return -1
