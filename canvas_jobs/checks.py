"""Whole-file checks before any change: cells Excel rewrote, rows that contradict each other.

A file is run in order, row by row, and each row's report must be true at the
end. Two rows that ask one enrollment for two different states cannot both be
true, and a SIS ID that Excel turned into 1.23457E+11 has lost its digits: such
a file is refused before any request, naming the lines (exit 2), rather than
half run.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable

import canvas_common as cc

from .changes import Operation, Request
from .courses import course_id
from .options import Options

# Excel's General format shows a number of 12 or more digits as d.ddddE+dd: the digits
# after the sixth are gone, so no SIS ID, section or course written so can be trusted. A
# European Excel writes a decimal comma (1,23457E+11), other programs a small e; the sign
# after the E is what a SIS ID such as 12E4 lacks
EXCEL_NUMBER = re.compile(r"[+-]?\d(?:[.,]\d{1,14})?[Ee][+-]\d{2,3}")
CHECKED_CELLS = ("sis_user_id", "course_id", "section")
TEXT_COLUMN_HINT = ("export it again from its source, or open the CSV with Excel's Data > From Text/CSV "
                    "and set the column's type to Text before saving")
# fields of a Request that say what is wanted, not which enrollment
WANTED = ("state",)


def check_rows(rows: Callable[[], Iterable[tuple[int, dict]]], operation: Operation,
               options: Options, name: str, base_url: str) -> None:
    """Refuse the file (cc.ConfigError, exit 2) if a cell is Excel's scientific notation, a
    course URL is of another Canvas than base_url, or two rows ask one enrollment for
    different states. rows() yields (line, values) afresh; memory stays small: only rows
    whose user appears twice are kept, on a second pass."""
    repeated = _repeated_users(rows(), name, base_url)
    if not repeated:
        return
    seen: dict[tuple, list[Request]] = {}
    for line, values in rows():
        if hash((values.get("course_id"), values.get("sis_user_id"))) not in repeated:
            continue
        try:
            values = {**values, "course_id": course_id(values.get("course_id") or "", base_url)}
            request = operation.request(values, options, line)
        except ValueError:
            continue  # a bad row fails alone, as in the run
        mine = seen.setdefault((request.course, request.sis_id), [])
        for other in mine:
            if _contradict(other, request):
                raise cc.ConfigError(
                    f"{name} lines {other.line} and {line} contradict each other: both are "
                    f"{request.sis_id!r} in course {request.course}, one asks for "
                    f"{_wanted(other)} and the other for {_wanted(request)}; keep the one you mean")
        mine.append(request)


def _repeated_users(rows: Iterable[tuple[int, dict]], name: str, base_url: str) -> set[int]:
    """Hashes of (course, SIS ID) found on more than one row; Excel's marks refused on the way."""
    once: set[int] = set()
    twice: set[int] = set()
    for line, values in rows:
        for column in CHECKED_CELLS:
            value = (values.get(column) or "").strip()
            if EXCEL_NUMBER.fullmatch(value):
                raise cc.ConfigError(
                    f"{name} line {line}: {column} {value!r} is a number as Excel shows it in "
                    f"scientific notation, its digits lost; {TEXT_COLUMN_HINT}")
        try:
            course_id(values.get("course_id") or "", base_url)
        except ValueError as exc:
            raise cc.ConfigError(f"{name} line {line}: {exc}") from None
        key = hash((values.get("course_id"), values.get("sis_user_id")))
        (twice if key in once else once).add(key)
    return twice


def _scope(request: Request) -> dict:
    skip = ("course", "sis_id", "line", *WANTED)
    return {f.name: getattr(request, f.name) for f in dataclasses.fields(request) if f.name not in skip}


def _contradict(a: Request, b: Request) -> bool:
    """Same user and course, enrollments that overlap (a field left empty means any), different wants."""
    if type(a) is not type(b) or _wanted(a) == _wanted(b) or not _wanted(a):
        return False
    sa, sb = _scope(a), _scope(b)
    return all(sa[k] == sb[k] or sa[k] is None or sb[k] is None for k in sa)


def _wanted(request: Request) -> str:
    return ", ".join(str(getattr(request, f)) for f in WANTED if hasattr(request, f))
