"""The audit log: JSON lines appended whole, written ahead of every write.

Records: start (a run of a job), intent (a write about to be sent, with the
state before it), result (what Canvas answered, or what a later look found),
end (how the run ended). An intent is fsynced before its write is sent, so a
run killed at any instant leaves at worst intents without results; the
runner settles those by looking at Canvas. Runs of the same command on the
same input continue one job until one finishes; undo takes a job or a run.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from typing import Any, Callable

import canvas_common as cc
import canvas_http

WRITES = ("created", "reopened", "deactivated", "reactivated", "deleted", "concluded")  # actions that change Canvas


class Journal:
    """One run's records in the audit log; an intent is on disk before its write."""

    def __init__(self, path: str, token: str):
        self.path, self.token = path, token
        self.run = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.job = self.run
        self.seq = 0
        self.lock = threading.Lock()
        self.opening: dict | None = None  # the start record, written with the first record
        self.started = False
        self.fd: int | None = None
        if os.path.exists(path):
            self._open()
        else:  # created with its first record: a run that changes nothing leaves no file
            folder = os.path.dirname(os.path.abspath(path))
            if not (os.path.isdir(folder) and os.access(folder, os.W_OK)):
                raise cc.ConfigError(f"cannot write the audit log {path}: "
                                     f"{'no such folder' if not os.path.isdir(folder) else 'permission denied'}")

    def _open(self) -> int:
        """The log opened for appending (created if need be, mode 600)."""
        try:
            flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)  # no CRLF on Windows
            fd = os.open(self.path, flags, 0o600)
            # a crash may have cut the last line: never glue a record onto it
            if os.fstat(fd).st_size:
                os.lseek(fd, -1, os.SEEK_END)  # (os.pread is not on Windows)
                if os.read(fd, 1) != b"\n":
                    os.write(fd, b"\n")
        except OSError as exc:
            raise cc.ConfigError(f"cannot write the audit log {self.path}: {exc.strerror}") from None
        self.fd = fd
        return fd

    def start(self, command: str, operation: str, key: str, continues: dict | None, **fields: Any) -> None:
        """Begin a run; it reaches the file with its first record, so a run that
        changes nothing leaves no trace."""
        if continues:
            self.job = continues["job"]
        self.opening = {"event": "start", "job": self.job, "command": command,
                        "operation": operation, "key": key, **fields,
                        **({"continues": continues["run"]} if continues else {})}

    def intent(self, change: dict) -> int:
        """Record a write about to be sent (and fsync) before it is sent; its number."""
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
        if self.started:
            self.append({"event": "end", "status": status, **counts}, sync=True)

    def append(self, entry: dict, sync: bool = False) -> None:
        lines = []
        with self.lock:
            for record in filter(None, (self.opening, entry)):
                record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "run": self.run,
                          "job": self.job, **record}
                lines.append(canvas_http.redact(json.dumps(record, ensure_ascii=False), self.token) + "\n")
            fd = self._open() if self.fd is None else self.fd
            self.opening, self.started = None, True
            os.write(fd, "".join(lines).encode())  # one write(2) on O_APPEND: never interleaved
        if sync:
            os.fsync(fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)


def read_log(path: str, warn: Callable[[str], None]) -> list[dict]:
    """Every record of an audit log; a last line cut by a crash is skipped with a warning."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise cc.ConfigError(f"cannot read audit log {path}: {exc.strerror}") from None
    lines = data.split(b"\n")
    entries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line.decode("utf-8"))
            if not isinstance(entry, dict) or "run" not in entry:
                raise ValueError
        except ValueError:
            if number == len(lines):  # no newline after it: cut short by a crash
                warn(f"warning: {path} line {number} was cut short (a crash?); ignoring it")
                continue
            raise cc.ConfigError(f"{path} line {number}: not an audit log written by these scripts") from None
        entries.append(upgrade(entry))
    return entries


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
                made.append({**intent, **{k: e[k] for k in ("action", "enrollment_id", "section_id", "before", "after")
                                          if e.get(k) is not None}, "time": e["time"]})
    return made, list(intents.values())


def pick_job(entries: list[dict], path: str, wanted: str | None, listing: str = "") -> tuple[str, str | None]:
    """(job, run or None): the last job, or the job or run named with --run.

    listing: how to list the log's jobs, said when wanted is none of them."""
    starts = [e for e in entries if e.get("event") == "start"]
    if not starts:
        raise cc.ConfigError(f"{path} records no job that changed anything; nothing to undo")
    if wanted is None:
        last = starts[-1]
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
