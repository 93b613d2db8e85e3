"""PID locks: mutual exclusion from the kernel, the holder's PID in the file.

A ``PidLock`` is an exclusive ``flock`` on its file, taken without waiting.  The
kernel releases it when the holder exits or is killed, so a crashed server or a
``kill -9``-ed dispatcher never blocks the next one and nothing is ever "broken"
as stale.  Only the holder writes the file: after the lock is its own it writes
its PID (for ``smss status``, ``smss stop`` and the server's kick), and on release
it empties and removes the file before letting go.  A taker that locked a file
the previous holder had just removed sees that the path no longer names what it
locked and starts over.  The descriptor is close-on-exec: programs the holder
starts do not inherit the lock.

The object is also the ``pidfile`` context manager python-daemon wants: it is
entered after the fork, so the PID written is the daemon's.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from typing import Optional

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


def _parse_pid(text: str) -> Optional[int]:
    text = text.strip()
    return int(text) if text.isdigit() else None


class PidLock:
    def __init__(self, path: str, marker: str = "") -> None:
        self.path = path
        self.marker = marker
        self._fd: Optional[int] = None

    def read_pid(self) -> Optional[int]:
        """The PID written in the file (None: no file, or empty while being taken)."""
        try:
            with open(self.path, encoding="ascii", errors="replace") as handle:
                return _parse_pid(handle.read(32))
        except OSError:
            return None

    def holder(self) -> Optional[int]:
        """The live PID holding the lock, or None (a dead holder's PID counts as free)."""
        if self._fd is not None:
            return os.getpid()
        pid = self.read_pid()
        if pid is not None and pid_alive(pid, self.marker):
            return pid
        return None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock now or raise LockHeld (OSError when the file cannot be made)."""
        if self._fd is not None:
            raise LockHeld(self.path, os.getpid())
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise LockHeld(self.path, self.read_pid()) from None
                raise
            if self._still_named(fd):
                break
            os.close(fd)  # the holder before us removed this file as we opened it: again
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    def _still_named(self, fd: int) -> bool:
        try:
            named = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (named.st_dev, named.st_ino) == (mine.st_dev, mine.st_ino)

    def release(self) -> None:
        """Empty and remove the file while still holding it, then let go."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._still_named(fd):
                os.unlink(self.path)
            os.ftruncate(fd, 0)
        except OSError as exc:
            log.warning("cannot remove %s: %s", self.path, exc)
        finally:
            os.close(fd)  # closing the only descriptor releases the flock

    # python-daemon's pidfile protocol
    def __enter__(self) -> "PidLock":
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
