"""A course pasted from the browser: https://canvas.example.edu/courses/4711/users is course 4711.

Accepted only when the URL's host is the configured Canvas: a course of another
Canvas (a test instance, another school) has an id that means another course here.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import canvas_common as cc

DEFAULT_PORTS = {"http": 80, "https": 443}


def course_id(text: str, base_url: str) -> str:
    """The course as Canvas takes it: a course URL on base_url becomes its numeric id; any
    other value comes back unchanged. ValueError for a course URL of another host."""
    match = cc.COURSE_URL.fullmatch(text.strip())
    if not match:
        return text
    url, canvas = urlsplit(text.strip()), urlsplit(base_url)
    if (url.hostname, _port(url)) != (canvas.hostname, _port(canvas)):
        raise ValueError(f"the course URL {text.strip()!r} is on {url.netloc}, not on the configured "
                         f"Canvas {canvas.netloc}; give the course id of a course there")
    return match["id"]


def _port(parts) -> int | None:
    try:
        return parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
