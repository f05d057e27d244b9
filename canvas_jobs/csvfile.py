"""CSV files as admins save them (Excel, pipes): checked whole before a run, then streamed."""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import IO, TYPE_CHECKING

import canvas_common as cc
import canvas_ids

if TYPE_CHECKING:
    from _csv import Reader as _Reader


MAX_LINE = 1 << 20  # a row is under 1 KiB; an old Mac file (CR only) of thousands of rows still fits


def open_csv(path: str) -> IO[bytes]:
    """The CSV as a seekable binary file (a pipe or stdin is spooled to disk); ConfigError if unreadable."""
    try:
        # returned open (SIM115): the runner closes it when the run ends
        source = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
        if path != "-" and source.seekable():
            return source
        spool = tempfile.TemporaryFile()  # noqa: SIM115 -- returned open; read twice: checked whole, then run
        with source:
            shutil.copyfileobj(source, spool)
        spool.seek(0)
        return spool
    except OSError as exc:
        raise cc.ConfigError(f"cannot read CSV file {path}: {exc.strerror}") from None


def digest(raw: IO[bytes]) -> str:
    raw.seek(0)
    return hashlib.file_digest(raw, "sha256").hexdigest() if hasattr(hashlib, "file_digest") \
        else hashlib.sha256(raw.read()).hexdigest()


def text_lines(raw: IO[bytes], name: str) -> Iterator[str]:
    """Decode line by line, so a bad byte is reported with its line number.

    Lines end in LF, CRLF or a lone CR (old Mac Excel); each comes out ending in LF.
    """
    raw.seek(0)
    number = 0
    while chunk := raw.readline(MAX_LINE + 1):  # bounded: /dev/zero is one endless line
        if len(chunk) > MAX_LINE:
            raise cc.ConfigError(f"{name} line {number + 1}: longer than {MAX_LINE // 1024} KiB; "
                                 "not a CSV file of enrollments")
        for line in chunk.splitlines(keepends=True):
            number += 1
            try:
                text = line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise cc.ConfigError(
                    f"{name} line {number}: not UTF-8 text; save the file as UTF-8 (in Excel: "
                    "Save As, 'CSV UTF-8 (Comma delimited)')") from None
            yield text.rstrip("\r\n") + "\n" if text.endswith(("\r", "\n")) else text


def column_name(text: str) -> str:
    """'Course ID', 'course_id' and ' COURSE  id' are one column."""
    return re.sub(r"[\s_]+", "_", text.strip().lower())


def csv_reader(raw: IO[bytes], columns: Sequence[str], name: str) -> tuple[list[str], _Reader]:
    """(header, reader) with the delimiter the header line uses: ',' ';' or tab (Excel's)."""
    first = next(text_lines(raw, name), "")
    def found(delimiter: str) -> tuple[int, int]:
        names = [column_name(h) for h in next(csv.reader([first], delimiter=delimiter), [])]
        return sum(c in names for c in columns), len(names)
    delimiter = max([",", ";", "\t"], key=found)
    reader = csv.reader(text_lines(raw, name), delimiter=delimiter, strict=True)
    header = [column_name(h) for h in next(reader, None) or []]
    return header, reader


def check_csv(raw: IO[bytes], columns: Sequence[str], name: str) -> int:
    """Refuse a bad file before any change: every error names its line. Returns the row count."""
    count, reader = 0, None
    try:
        header, reader = csv_reader(raw, columns, name)
        if not header:
            raise cc.ConfigError(f"{name}: empty file; the first line must name the columns "
                                 f"({', '.join(columns)})")
        missing = [c for c in columns if c not in header]
        if missing:
            raise cc.ConfigError(f"{name} line 1: missing column(s) {', '.join(missing)}; "
                                 f"the header has: {', '.join(header)}")
        needed = max(header.index(c) for c in columns) + 1
        course = header.index("course_id")
        for fields in reader:
            if fields and len(fields) < needed:
                raise cc.ConfigError(f"{name} line {reader.line_num}: only {len(fields)} field(s), "
                                     f"expected {len(header)}")
            if fields and any(v.strip() for v in fields):
                try:  # as on the command line: a malformed course refuses the whole file
                    canvas_ids.parse_course(fields[course])
                except ValueError as exc:
                    raise cc.ConfigError(f"{name} line {reader.line_num}: {exc}") from None
                count += 1
    except csv.Error as exc:
        line = reader.line_num if reader else 1
        raise cc.ConfigError(f"{name} line {line}: not valid CSV ({exc})") from None
    return count


def csv_rows(raw: IO[bytes], columns: Sequence[str], name: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, {column: value}) for each non-blank row; values exactly as written."""
    header, reader = csv_reader(raw, columns, name)
    for fields in reader:
        if fields and any(v.strip() for v in fields):
            yield reader.line_num, dict(zip(header, fields))
