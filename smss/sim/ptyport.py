"""Pseudo-terminal transport: the modem as a serial device at a path of your choice.

Owns: the pty pair, the symlink ``path`` -> the slave (``/dev/pts/N``) that
clients open like ``/dev/ttyUSB0``, raw mode on the line, and hanging up: a
drop fault closes the master (the client's reads fail like an unplugged USB
modem) and a new pty appears behind the same symlink.  The simulator keeps a
slave descriptor open itself, so a client closing the port is not a hangup and
output written while no client has the port open waits in the line's buffer.
"""

from __future__ import annotations

import logging
import os
import tty
from typing import Optional

from smss.sim.link import StreamLink

log = logging.getLogger(__name__)


class PtyPort(StreamLink):
    def __init__(self, modem, path: str) -> None:
        super().__init__(modem, "pty")
        self.path = os.path.abspath(path)
        self.master: Optional[int] = None
        self.slave: Optional[int] = None
        self.slave_name = ""
        self.hangups = 0
        self._make_pty()

    def _make_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self.master, self.slave = master, slave
        self.slave_name = os.ttyname(slave)
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        temporary = f"{self.path}.{os.getpid()}.tmp"
        if os.path.lexists(temporary):
            os.unlink(temporary)
        os.symlink(self.slave_name, temporary)
        os.replace(temporary, self.path)  # atomic: a client never sees the path missing
        log.info("pty %s -> %s", self.path, self.slave_name)

    def _close_pty(self) -> None:
        for fd in (self.master, self.slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master = self.slave = None

    def fileno(self) -> int:
        assert self.master is not None
        return self.master

    def read_some(self) -> bytes:
        assert self.master is not None
        return os.read(self.master, 4096)

    def write_some(self, data: bytes) -> int:
        assert self.master is not None
        return os.write(self.master, data)

    def link_closed(self, reason: str) -> bool:
        """Hang up: a new pty takes the path first, then the old one disappears (so the
        path never dangles, and a client reopening after its EIO finds the new one)."""
        old = (self.master, self.slave)
        self._make_pty()
        for fd in old:
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.hangups += 1
        return True

    def release(self) -> None:
        self._close_pty()
        try:
            if os.path.islink(self.path):
                os.unlink(self.path)
        except OSError:
            pass
