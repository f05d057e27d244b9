"""Canvas identifiers as the scripts take them and as Canvas must receive them.

Course, section and user references (numeric ids, sis_course_id:X, course URLs), the
built-in roles, and how an enrollment row names its user and section.
"""

from __future__ import annotations

import binascii
import re
from urllib.parse import quote

ROLES = {
    "student": "StudentEnrollment",
    "teacher": "TeacherEnrollment",
    "ta": "TaEnrollment",
    "observer": "ObserverEnrollment",
    "designer": "DesignerEnrollment",
}
RUBY_SPACE = " \t\n\v\f\r\0"  # what Ruby's strip removes (Python's strip removes more)


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


NAME_PREFIX = "name:"


def parse_section(text: str) -> str:
    """A section argument: a numeric id (all digits: always the id, even if a section is so
    named), sis_section_id:XYZ, or a section's name as Canvas shows it ('Lab group', or
    name:XYZ for a name that is all digits or starts with sis_section_id:), returned as
    'name:Lab group' for the runner to turn into an id (canvas_jobs/sections.py).
    ValueError if empty."""
    if text.startswith(NAME_PREFIX) and text != NAME_PREFIX:
        return text
    try:
        return _canvas_id(text, "section", "sis_section_id")
    except ValueError:
        if not text.strip() or text.strip() in ("sis_section_id:", NAME_PREFIX):
            raise ValueError(f"section must be a Canvas section id (12345), sis_section_id:XYZ "
                             f"or the section's name, not {text!r}") from None
        return NAME_PREFIX + text


def section_name(section: str) -> str | None:
    """The name of a section argument given by name (parse_section), else None."""
    return section[len(NAME_PREFIX):] if section.startswith(NAME_PREFIX) else None


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


def in_course(course: str, row: dict) -> bool:
    """Whether an enrollment row is in the course given as an id or sis_course_id:X (hex: too)."""
    if course.isdigit():
        return str(row.get("course_id")) == course
    column, _, value = course.partition(":")
    if column == "hex":
        column, _, hexed = value.partition(":")
        try:
            value = binascii.unhexlify(hexed).decode()
        except (ValueError, UnicodeDecodeError):
            return False
    return column == "sis_course_id" and row.get("sis_course_id") == value
