"""Files on an admin's disk: refused before the first write when they cannot take it,
written whole or not at all, and held by one process at a time (the audit log's lock).

Exit codes: EXIT_DISK (the disk refused a write: full, quota, ulimit -f, I/O error)
and EXIT_IN_USE (the audit log is held by another run). A file that cannot be used
as named (a device, a FIFO, a directory, a read-only folder) is a usage error (2).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import stat
import sys
import tempfile
import time
from typing import IO, Callable

import canvas_common as cc

EXIT_IN_USE = 4  # another run holds the audit log; nothing was done
EXIT_DISK = 74  # sysexits.h's EX_IOERR: the disk refused a write
# room a log needs before a run starts: a few hundred records; a run that needs
# more and meets a full disk stops cleanly before its next write
HEADROOM = 64 * 1024
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO)
LOCK_BYTE = 1 << 30  # Windows locks a byte range; one far past the holder's note, so others can read it


class DiskError(cc.CanvasError):
    """The disk refused a write (full, over quota, past ulimit -f, an I/O error)."""

    exit_code = EXIT_DISK


class InUse(cc.CanvasError):
    """Another process holds the file's lock."""

    exit_code = EXIT_IN_USE


def os_error(exc: OSError, what: str) -> cc.CanvasError:
    """An OSError as one line: DiskError for a full disk and its kin, else ConfigError."""
    kind = DiskError if exc.errno in DISK_ERRORS else cc.ConfigError
    return kind(f"{what}: {exc.strerror or exc}")


# a file these scripts make beside another (PATH.lock, PATH.damaged) is never reached through a
# symbolic link someone put there: it would write into whatever file the link names (POSIX)
NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)


def file_kind(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"),
             (stat.S_ISFIFO, "a pipe (FIFO)"), (stat.S_ISSOCK, "a socket"))
    return None if stat.S_ISREG(mode) else next((w for test, w in kinds if test(mode)), "not a file")


def check_appendable(path: str, what: str) -> None:
    """Refuse, before the first write, a file that cannot take appends.

    path: the file (it may not exist yet: its folder must then be writable).
    Raises ConfigError (a device such as /dev/null or /dev/stdout, a FIFO, a
    directory, a missing or read-only folder, a read-only file) or DiskError
    (less than HEADROOM bytes free, or ulimit -f leaves less than that)."""
    try:
        st: os.stat_result | None = os.stat(path)  # follows links: /dev/stdout is what it points to
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise os_error(exc, f"cannot use {what} {path}") from None
    if st is not None and file_kind(st.st_mode):
        raise cc.ConfigError(f"{what} {path} is {file_kind(st.st_mode)}, not a file; give the name "
                             "of a file in a folder you can write")
    if st is not None and _is_output(st):
        raise cc.ConfigError(f"{what} {path} is the file this command's output goes to (stdout or stderr "
                             "redirected to it); give the log another name")
    folder = os.path.dirname(os.path.abspath(path))
    if st is None and not os.path.isdir(folder):
        raise cc.ConfigError(f"cannot write {what} {path}: no such folder {folder}")
    if not os.access(path if st else folder, os.W_OK):
        raise cc.ConfigError(f"cannot write {what} {path}: "
                             + ("the file is read-only" if st else f"the folder {folder} is read-only"))
    check_room(path, folder, st.st_size if st else 0, what)


def _is_output(st: os.stat_result) -> bool:
    """Is this file where stdout or stderr goes (--log /dev/stdout > file, --log X > X)?"""
    for fd in (1, 2):
        try:
            if os.path.samestat(st, os.fstat(fd)):
                return True
        except OSError:  # a closed stream
            continue
    return False


def check_room(path: str, folder: str, size: int, what: str) -> None:
    """DiskError unless HEADROOM more bytes fit: on the disk, and under ulimit -f (POSIX)."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # a filesystem that does not tell: the first write will
    if free < HEADROOM:
        raise DiskError(f"cannot write {what} {path}: the disk is full ({free // 1024} KiB free); "
                        "free some space, then run again")
    limit = _file_size_limit()
    if limit is not None and limit - size < HEADROOM:
        raise DiskError(f"cannot write {what} {path}: the file size limit (ulimit -f) leaves room for "
                        f"{max(0, limit - size) // 1024} KiB; raise it, then run again")


def _file_size_limit() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def write_new(path: str, fill: Callable[[IO[str]], None], encoding: str = "utf-8") -> None:
    """Create path whole or not at all, never over an existing file; mode 600.

    fill writes the text into the stream it is given. The text goes to a temporary
    file in the same folder, fsynced, then linked to path; on any failure the
    temporary file is removed and path is not there. Raises DiskError (full
    disk), ConfigError (path exists, or cannot be written)."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, temp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".part")
    except OSError as exc:
        raise os_error(exc, f"cannot write {path}") from None
    try:
        with open(fd, "w", encoding=encoding, newline="") as out:
            fill(out)
            out.flush()
            os.fsync(out.fileno())
        _link_new(temp, path)
        _sync_folder(folder)
    except OSError as exc:
        raise os_error(exc, f"cannot write {path}; nothing was written") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)


def _link_new(temp: str, path: str) -> None:
    """temp under the name path, refused if path exists (even one made a moment ago)."""
    if os.name == "nt":
        os.rename(temp, path)  # fails if path exists
        return
    try:
        os.link(temp, path)
    except FileExistsError:
        raise cc.ConfigError(f"{path}: the file exists; choose another name (or delete it)") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if os.path.lexists(path):  # a filesystem without hard links (FAT, some shares)
            raise cc.ConfigError(f"{path}: the file exists; choose another name (or delete it)") from None
        os.rename(temp, path)


def _sync_folder(folder: str) -> None:
    """The new name on disk too (POSIX; Windows cannot open a folder)."""
    if os.name != "nt":
        with contextlib.suppress(OSError):
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


class FileLock:
    """An OS lock on PATH.lock beside a file: one process uses the file at a time.

    The lock (flock on POSIX, msvcrt.locking on Windows) belongs to the
    process: the OS drops it when the process ends, by kill -9 too. The lock
    file says who holds it (pid, host, start, command), for the refusal; it is
    removed when the holder releases it, and one left by a killed run is taken over.
    """

    def __init__(self, path: str, what: str):
        self.path, self.what = path, what
        self.name = os.path.realpath(path) + ".lock"  # one lock whatever link or relative name is used
        self.fd: int | None = None

    def acquire(self, command: str, warn: Callable[[str], None]) -> None:
        """Take the lock or raise InUse naming the holder; ConfigError/DiskError if the
        lock file cannot be written. A filesystem without locks: a warning, no lock."""
        for _ in range(10):  # the holder may remove its lock file between our open and lock
            fd = self._open()
            try:
                held = _try_lock(fd)
            except OSError as exc:
                os.close(fd)
                warn(f"warning: cannot lock {self.what} {self.path} ({exc.strerror}); make sure no "
                     "other run uses it at the same time")
                return
            if not held:
                holder = _holder(fd)
                os.close(fd)
                raise InUse(f"{self.what} {self.path} is in use by another run ({holder}); nothing was "
                            "done: wait for it to end (or stop it), then run again")
            if _same_file(fd, self.name):
                self.fd = fd
                break
            os.close(fd)
        else:
            raise cc.ConfigError(f"cannot lock {self.what} {self.path}: its lock file {self.name} keeps changing")
        note = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "command": command}
        try:
            os.ftruncate(self.fd, 0)
            os.lseek(self.fd, 0, os.SEEK_SET)
            os.write(self.fd, json.dumps(note, ensure_ascii=False).encode())
        except OSError as exc:
            self.release()
            raise os_error(exc, f"cannot write the lock file {self.name}") from None

    def _open(self) -> int:
        try:
            return os.open(self.name, os.O_RDWR | os.O_CREAT | NO_FOLLOW | getattr(os, "O_BINARY", 0), 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise cc.ConfigError(f"the lock file {self.name} of {self.what} {self.path} is a symbolic link; "
                                     "remove it (the scripts make their own), then run again") from None
            raise os_error(exc, f"cannot write the lock file {self.name} of {self.what} {self.path}") from None

    def release(self) -> None:
        """Remove the lock file, then let go (a run that opens it meanwhile makes a new one)."""
        if self.fd is None:
            return
        with contextlib.suppress(OSError):  # Windows: an open file cannot be removed; it is reused
            os.unlink(self.name)
        os.close(self.fd)
        self.fd = None


def _try_lock(fd: int) -> bool:
    """True: locked; False: another process holds it. OSError: this filesystem cannot lock."""
    if sys.platform == "win32":
        import msvcrt
        os.lseek(fd, LOCK_BYTE, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except PermissionError:
            return False
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EDEADLK):
                return False
            raise
        return True
    import fcntl
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _same_file(fd: int, name: str) -> bool:
    """Is the locked file still the one at name (not removed by a holder that ended)?"""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(name))
    except OSError:
        return False


def _holder(fd: int) -> str:
    """Who holds the lock, from its note: 'pid N[ on host H], since T: COMMAND'."""
    for _ in range(20):  # the holder writes its note right after it takes the lock
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            note = json.loads(os.read(fd, 65536).decode("utf-8", "replace"))
            pid, command = int(note["pid"]), str(note["command"])
        except (OSError, ValueError, KeyError, TypeError):
            time.sleep(0.05)
            continue
        host = note.get("host")
        where = f" on {host}" if host and host != socket.gethostname() else ""
        return f"pid {pid}{where}, since {note.get('started', '?')}: {command}"
    return "pid unknown"
