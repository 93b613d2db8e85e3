"""PID files and PID locks; the only module that uses the ``lockfile`` package.

A ``PidLock`` is a file holding the owner's PID, created atomically.  A lock
whose PID is dead (or was reused by an unrelated program) is stale and is
broken, so a crashed server or a ``kill -9``-ed dispatcher never blocks the
next one.  The object is also the ``pidfile`` context manager python-daemon
wants: it is entered after the fork, so the PID written is the daemon's.
"""

from __future__ import annotations

import errno
import logging
import os
from typing import Optional

from lockfile import AlreadyLocked, LockFailed, LockTimeout, NotLocked, NotMyLock
from lockfile.pidlockfile import PIDLockFile

log = logging.getLogger(__name__)


class LockHeld(Exception):
    """Another live process holds the lock."""

    def __init__(self, path: str, pid: Optional[int]) -> None:
        super().__init__(f"{path} is held by running process {pid}")
        self.pid = pid


def pid_alive(pid: int, marker: str = "") -> bool:
    """Is ``pid`` running, and (where /proc tells) a program with ``marker`` in its cmdline?"""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    if marker:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except FileNotFoundError:
            return False  # exited meanwhile
        except OSError:
            return True  # no /proc to ask: trust kill()
        if marker not in cmdline:
            return False  # the PID was reused by something else
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            if handle.read().rsplit(b")", 1)[-1].split()[0] == b"Z":
                return False  # a zombie holds nothing
    except (OSError, IndexError):
        pass
    return True


class PidLock:
    def __init__(self, path: str, marker: str = "") -> None:
        self.path = path
        self.marker = marker
        self._file = PIDLockFile(path, timeout=0)

    def read_pid(self) -> Optional[int]:
        try:
            return self._file.read_pid()
        except (ValueError, OSError):
            return None

    def holder(self) -> Optional[int]:
        """The live PID holding the lock, or None (a stale lock counts as free)."""
        pid = self.read_pid()
        if pid is not None and pid_alive(pid, self.marker):
            return pid
        return None

    def acquire(self) -> None:
        """Take the lock now or raise LockHeld; a stale lock is broken first."""
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        for _ in range(3):
            try:
                self._file.acquire(timeout=0)
                return
            except (AlreadyLocked, LockTimeout):
                pid = self.read_pid()
                if pid is not None and pid_alive(pid, self.marker):
                    raise LockHeld(self.path, pid) from None
                if self.read_pid() == pid:  # still the same stale owner: break it
                    log.warning("breaking stale lock %s of dead process %s", self.path, pid)
                    self._break()
            except LockFailed as exc:
                raise OSError(errno.EACCES, f"cannot create {self.path}: {exc}") from None
        raise LockHeld(self.path, self.read_pid())

    def _break(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def release(self) -> None:
        try:
            self._file.release()
        except (NotLocked, NotMyLock):
            pass

    # python-daemon's pidfile protocol
    def __enter__(self) -> "PidLock":
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
