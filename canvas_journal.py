"""The audit log: JSON lines appended whole, written ahead of every write.

Records: start (a run of a job), intent (a write about to be sent, with the
state before it), result (what Canvas answered, or what a later look found),
end (how the run ended). An intent is fsynced before its write is sent, so a
run killed at any instant leaves at worst intents without results; the
runner settles those by looking at Canvas. Runs of the same command on the
same input continue one job until one finishes; undo takes a job or a run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
import uuid
from typing import IO, Any, Callable

import canvas_common as cc
import canvas_files as files
import canvas_http

MAX_RECORD = 1 << 20  # a line longer than this is no record of ours (records are under 2 KiB)
WRITES = ("created", "reopened", "deactivated", "reactivated", "deleted", "concluded")  # actions that change Canvas


class Journal:
    """One run's records in the audit log; an intent is on disk before its write.

    The log was checked and locked by Log first. A record the disk refuses raises
    DiskError (or ConfigError), and from then on the journal writes nothing:
    the run stops before its next write, and what it left open is settled by
    the next run's look at Canvas."""

    def __init__(self, path: str, token: str):
        self.path, self.token = path, token
        self.run = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.job = self.run
        self.seq = 0
        self.lock = threading.Lock()
        self.opening: dict | None = None  # the start record, written with the first record
        self.started = False
        self.fd: int | None = None
        self.broken: cc.CanvasError | None = None  # the write the disk refused

    def _open(self) -> int:
        """The log opened for appending (created with the first record, mode 600)."""
        try:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)  # no CRLF on Windows
            self.fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise files.os_error(exc, f"cannot write the audit log {self.path}") from None
        return self.fd

    def start(self, command: str, operation: str, key: str, continues: dict | None, **fields: Any) -> None:
        """Begin a run; it reaches the file with its first record, so a run that
        changes nothing leaves no trace."""
        if continues:
            self.job = continues["job"]
        self.opening = {"event": "start", "job": self.job, "command": command,
                        "operation": operation, "key": key, **fields,
                        **({"continues": continues["run"]} if continues else {})}

    def intent(self, change: dict) -> int:
        """Record a write about to be sent (and fsync) before it is sent; its number.
        Raises DiskError/ConfigError when the disk refuses: the write must not be sent."""
        with self.lock:
            self.seq += 1
            seq = self.seq
        self.append({"event": "intent", "seq": seq, **change}, sync=True)
        return seq

    def result(self, seq: int, outcome: dict, of_run: str | None = None, settled: bool = False) -> None:
        """Record what became of intent seq (of this run, or of the run of_run)."""
        entry = {"event": "result", "seq": seq, **outcome}
        if of_run:
            entry["of_run"] = of_run
        if settled:
            entry["settled"] = True  # found by a look at Canvas, the answer having been lost
        self.append(entry)  # not fsynced: an intent without it is settled by a look at Canvas

    def end(self, status: str, counts: dict) -> None:
        """The run's last record; nothing if it wrote none, or the disk refused one."""
        if self.started and not self.broken:
            with contextlib.suppress(cc.CanvasError):
                self.append({"event": "end", "status": status, **counts}, sync=True)

    def append(self, entry: dict, sync: bool = False) -> None:
        """Append whole lines in one write(2) on O_APPEND (never interleaved). A write
        cut short is taken back, so the log stays whole lines."""
        with self.lock:
            if self.broken:
                raise self.broken
            lines = []
            for record in filter(None, (self.opening, entry)):
                record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "run": self.run,
                          "job": self.job, **record}
                lines.append(canvas_http.redact(json.dumps(record, ensure_ascii=False), self.token) + "\n")
            fd = self._open() if self.fd is None else self.fd
            size = os.fstat(fd).st_size
            try:
                data = "".join(lines).encode()
                while data:  # a short write (a disk filling up) goes on, then fails
                    data = data[os.write(fd, data):]
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                self.broken = files.os_error(exc, f"cannot write the audit log {self.path}")
                raise self.broken from None
            self.opening, self.started = None, True
        if sync:
            try:
                os.fsync(fd)
            except OSError as exc:
                with self.lock:
                    self.broken = files.os_error(exc, f"cannot write the audit log {self.path}")
                raise self.broken from None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Log:
    """An audit log this process uses: checked, locked, and read once.

    path: the log; writing: this run appends to it (then it may not exist yet,
    and damage at its end is repaired before the first record); command: the
    command as run, shown to a run refused while this one holds the log.
    Raises ConfigError (unusable as named), DiskError (no room), InUse (another run holds it)."""

    def __init__(self, path: str, writing: bool, command: str, warn: Callable[[str], None]):
        self.path = path
        if writing:
            files.check_appendable(path, "the audit log")
        else:
            check_readable(path)
        self.lock = files.FileLock(path, "the audit log")
        self.lock.acquire(command, warn)
        try:
            self.entries = read_log(path, warn, repair=writing) if os.path.exists(path) else []
        except BaseException:
            self.lock.release()
            raise

    def close(self) -> None:
        self.lock.release()


def check_readable(path: str) -> None:
    """ConfigError unless path is a regular file (a FIFO or /dev/stdout would hang the read)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise cc.ConfigError(f"cannot read audit log {path}: {exc.strerror}") from None
    if files.file_kind(mode):
        raise cc.ConfigError(f"audit log {path} is {files.file_kind(mode)}, not a log file")


def read_log(path: str, warn: Callable[[str], None], repair: bool = False) -> list[dict]:
    """Every whole record of an audit log, read line by line (memory bounded per line).

    A damaged line in the middle is named and skipped. Damage at the end (a
    record cut by a crash or a full disk, garbage after the last record) is
    skipped too; with repair (the caller holds the lock and will append), its
    bytes are saved to PATH.damaged and the log is cut back to its last whole
    record, so nothing is ever appended after a broken line. ConfigError if
    the file cannot be read or holds no record of these scripts."""
    check_readable(path)
    try:
        with open(path, "rb") as f:
            entries, damaged, whole_end, size = _records(f)
    except OSError as exc:
        raise cc.ConfigError(f"cannot read audit log {path}: {exc.strerror}") from None
    if damaged and not entries and not damaged[0][2]:  # a first record cut short is still ours
        raise cc.ConfigError(f"{path} line {damaged[0][0]}: not an audit log written by these scripts "
                             "(no line of it is a record of theirs)")
    middle = [n for n, end, _ in damaged if end <= whole_end]
    if middle:
        shown = ", ".join(map(str, middle[:10])) + (f" and {len(middle) - 10} more" if len(middle) > 10 else "")
        warn(f"warning: {path}: line{'s' if len(middle) > 1 else ''} {shown} damaged (not a whole record); "
             "skipped, every other record is used")
    tail = [n for n, end, _ in damaged if end > whole_end]
    if tail:
        _damaged_tail(path, whole_end, size, tail, warn, repair)
    elif repair and whole_end and _ends_without_newline(path, size):
        _append_newline(path)  # a whole last record cut just before its newline
    return with_starts(entries)


DAMAGED_START = "(its start record is damaged)"


def with_starts(entries: list[dict]) -> list[dict]:
    """The records, with a stand-in start before the first record of each run whose start
    record was damaged (skipped): its job still counts as a job, named as damaged, so the
    last job is never taken for an older one."""
    started = {e["run"] for e in entries if e.get("event") == "start"}
    whole: list[dict] = []
    for entry in entries:
        if entry["run"] not in started:
            started.add(entry["run"])
            whole.append({"time": entry.get("time"), "run": entry["run"], "job": entry.get("job", entry["run"]),
                          "event": "start", "command": DAMAGED_START, "damaged": True})
        whole.append(entry)
    return whole


OURS = b'{"time": "'  # how every record of these scripts begins


def _records(f: IO[bytes]) -> tuple[list[dict], list[tuple[int, int, bool]], int, int]:
    """(records, [(line number, end offset, begins as ours) of damaged lines], end of the last
    whole record, size)."""
    entries: list[dict] = []
    damaged: list[tuple[int, int, bool]] = []
    whole_end, number = 0, 0
    while True:
        line = f.readline(MAX_RECORD)
        if not line:
            break
        number += 1
        start, too_long = line[:len(OURS)], len(line) == MAX_RECORD and not line.endswith(b"\n")
        while len(line) == MAX_RECORD and not line.endswith(b"\n"):  # skip the rest of an endless line
            line = f.readline(MAX_RECORD)
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]  # a byte-order mark an editor (Notepad) put before the first record
        if not too_long and not line.strip(b" \t\r\n"):
            continue
        entry = None if too_long else _record(line)
        if entry is None:
            damaged.append((number, f.tell(), line[:len(OURS)] == OURS or start == OURS))
        else:
            entries.append(entry)
            whole_end = f.tell()
    return entries, damaged, whole_end, f.tell()


EVENTS = ("start", "intent", "result", "write", "end", "change")  # "change": version 1's
# fields each kind of record needs to be used (a record without them is damaged)
NEEDS = {"intent": ("seq", "course_id", "sis_user_id", "action"), "result": ("seq", "action"),
         "change": ("course_id", "enrollment_id", "action")}


def _record(line: bytes) -> dict | None:
    """One line as a record of these scripts, or None."""
    try:
        entry = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):  # RecursionError: brackets nested past Python's stack
        return None
    if not (isinstance(entry, dict) and isinstance(entry.get("run"), str) and entry.get("event") in EVENTS):
        return None
    if any(entry.get(k) is None for k in NEEDS.get(entry["event"], ())):
        return None
    if "seq" in NEEDS.get(entry["event"], ()) and not isinstance(entry["seq"], int):
        return None
    return upgrade(entry)


def _damaged_tail(path: str, start: int, size: int, lines: list[int],
                  warn: Callable[[str], None], repair: bool) -> None:
    """The damage after the last whole record: skipped; with repair, saved aside and cut off."""
    which = f"line {lines[0]}" if len(lines) == 1 else f"lines {lines[0]}-{lines[-1]}"
    what = f"{path} {which} (its end, {size - start} bytes) is not a whole record (cut short by a crash or a full disk)"
    if not repair:
        warn(f"warning: {what}; skipped")
        return
    aside = path + ".damaged"
    try:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | files.NO_FOLLOW
        with open(path, "rb") as source, open(os.open(aside, flags, 0o600), "ab") as out:
            source.seek(start)
            shutil.copyfileobj(source, out)
            out.write(b"\n")
            out.flush()
            os.fsync(out.fileno())
        with open(path, "r+b") as log:
            log.truncate(start)
            os.fsync(log.fileno())
    except OSError as exc:
        raise files.os_error(exc, f"cannot repair the audit log {path} (its end is damaged)") from None
    warn(f"warning: {what}; its bytes were moved to {aside} and the log cut back to its last whole record")


def _ends_without_newline(path: str, size: int) -> bool:
    with open(path, "rb") as f:
        f.seek(size - 1)
        return f.read(1) != b"\n"


def _append_newline(path: str) -> None:
    try:
        with open(path, "ab") as f:
            f.write(b"\n")
    except OSError as exc:
        raise files.os_error(exc, f"cannot write the audit log {path}") from None


def upgrade(entry: dict) -> dict:
    """Logs of version 1 had one 'change' record per confirmed write and no jobs."""
    entry.setdefault("job", entry["run"])
    if entry.get("event") == "change":  # a write confirmed by Canvas
        entry = {**entry, "event": "write"}
    return entry


def open_job(entries: list[dict], key: str | None) -> dict | None:
    """The run to continue: the last run with this key, if it did not finish and its job
    was not undone since (an undo closes the job it put back: the same command afterwards
    is a new job, so a later undo never reverts what the first undo already restored)."""
    starts = [e for e in entries if e.get("event") == "start" and e.get("key") == key]
    if not starts:
        return None
    last = starts[-1]
    ended = any(e.get("event") == "end" and e["run"] == last["run"] and e.get("status") == "finished"
                for e in entries)
    runs = {e["run"] for e in entries if e.get("event") == "start" and e.get("job") == last["job"]}
    undone = any(e.get("event") == "start" and e.get("operation") == "undo"
                 and (e.get("target") == last["job"] or e.get("target") in runs) for e in entries)
    return None if ended or undone else last


def job_writes(entries: list[dict], job: str | None, run: str | None = None) -> tuple[list[dict], list[dict]]:
    """(made, open): the writes a job (or one run of it) made, and its intents with no answer."""
    intents, made = {}, []
    for e in entries:
        if e.get("job") != job or (run and e["run"] != run and e.get("of_run") != run):
            continue
        if e.get("event") == "write":
            made.append(e)
        elif e.get("event") == "intent":
            intents[(e["run"], e["seq"])] = e
        elif e.get("event") == "result":
            intent = intents.pop((e.get("of_run") or e["run"], e["seq"]), None)
            if intent and e.get("action") in WRITES:
                # the result says what Canvas did: a POST planned as a creation may have reopened a row
                made.append({**intent, **{k: e[k] for k in ("action", "enrollment_id", "section_id", "before", "after",
                                                            "limit_before") if e.get(k) is not None},
                             "time": e.get("time")})
    return made, list(intents.values())


def changed_jobs(entries: list[dict]) -> set[str]:
    """The jobs that made a write, or may have (an intent with no answer), in one pass."""
    open_intents: dict[tuple, str] = {}
    changed = set()
    for e in entries:
        if e.get("event") == "write":
            changed.add(e["job"])
        elif e.get("event") == "intent":
            open_intents[(e["run"], e["seq"])] = e["job"]
        elif e.get("event") == "result":
            job = open_intents.pop((e.get("of_run") or e["run"], e["seq"]), None)
            if job and e.get("action") in WRITES:
                changed.add(job)
    return changed | set(open_intents.values())


def pick_job(entries: list[dict], path: str, wanted: str | None, listing: str = "") -> tuple[str, str | None]:
    """(job, run or None): the last job, or the job or run named with --run.

    listing: how to list the log's jobs, said when wanted is none of them."""
    starts = [e for e in entries if e.get("event") == "start"]
    if not starts:
        raise cc.ConfigError(f"{path} records no job that changed anything; nothing to undo")
    if wanted is None:
        # jobs that changed nothing (a mistyped SIS ID, a dry run of a batch) are passed over:
        # the last job that changed something is what an admin means by "undo"
        touched = changed_jobs(entries)
        changed = [e for e in starts if e.get("damaged") or e.get("operation") == "undo" or e["job"] in touched]
        last = (changed or starts)[-1]
        if last.get("damaged"):  # what it was (an undo?) is unknown: put back only when named
            raise cc.ConfigError(f"the start record of the last job in {path} ({last['job']}) is damaged, so "
                                 f"what it did cannot be named; to undo it give --run {last['job']}"
                                 + (f" ({listing})" if listing else ""))
        if last.get("operation") == "undo" and open_job(entries, last.get("key")):
            return pick_job(entries, path, last["target"], listing)  # finish the undo cut short
        return last["job"], None
    if any(e["job"] == wanted for e in starts):
        return wanted, None
    run = next((e for e in starts if e["run"] == wanted), None)
    if run is None:
        raise cc.ConfigError(f"{path} has no job or run {wanted!r}" + (f"; {listing}" if listing else ""))
    return run["job"], wanted


def undo_target(entries: list[dict], job: str) -> str | None:
    """The job or run that job undid, when job is an undo (its start says so); else None."""
    start = next((e for e in entries if e.get("event") == "start" and e["job"] == job), None)
    return str(start.get("target")) if start and start.get("operation") == "undo" else None


def jobs(entries: list[dict]) -> list[dict]:
    """Every job of a log, oldest first: {job, time, command, changes (writes made),
    unknown (intents with no answer), runs, status (of its last run: finished, stopped,
    interrupted...; None if it never ended), undo_of (the job or run an undo put back),
    undone_by (the undos that put it back, or a run of it)}."""
    starts = [e for e in entries if e.get("event") == "start"]
    ends = {e["run"]: e.get("status") for e in entries if e.get("event") == "end"}
    listed = []
    for job in dict.fromkeys(e["job"] for e in starts):
        runs = [e for e in starts if e["job"] == job]
        made, unknown = job_writes(entries, job)
        names = {job, *(e["run"] for e in runs)}
        listed.append({
            "job": job, "time": runs[0].get("time"), "command": runs[0].get("command"),
            "changes": len(made), "unknown": len(unknown), "runs": len(runs),
            "status": ends.get(runs[-1]["run"]), "undo_of": undo_target(entries, job),
            "undone_by": list(dict.fromkeys(e["job"] for e in starts if e.get("operation") == "undo"
                                            and e.get("target") in names))})
    return listed


def undo_values(made: list[dict]) -> list[dict]:
    """One row per enrollment, newest first: back to its state before the first write."""
    latest: dict = {}
    for entry in reversed(made):
        key = (entry["course_id"], entry["enrollment_id"])
        if key not in latest:
            latest[key] = dict(entry)
        latest[key]["before"], latest[key]["first_action"] = entry["before"], entry["action"]
    return list(latest.values())
