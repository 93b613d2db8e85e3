"""Test helpers around the modem simulator (``smss-modem-sim``), for any test that
needs a modem: start one, talk AT to it, steer it through its control channel.

    from support_sim import running_simulator

    with running_simulator(pin=None, latency=0, capacity=30) as sim:
        sim.url            # "socket://127.0.0.1:PORT"  (pyserial serial_for_url)
        sim.pty_path       # "/tmp/.../ttyUSB0"          (a real pseudo-terminal)
        sim.control        # smss.sim.client.ControlClient
        sim.control.inject("+420777123456", "Ahoj")
        sim.control.set_fault("cms_error", code=38, count=1)
        sim.control.sent()  # what went out, decoded

``running_simulator(..., subprocess=True)`` runs the real ``smss-modem-sim``
program instead of threads in this process (``sim.simulator`` is then None).
Other keyword arguments are ``SimConfig`` fields (e.g. ``first_index=0``,
``ussd_encoding="ucs2"``, ``status_report_delay=0.2``).

``AtClient`` is a minimal AT terminal for tests of the simulator itself.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import socket
import subprocess as _subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional

from smss.sim.client import ControlClient
from smss.sim.runtime import Simulator
from smss.sim.settings import SimConfig

FINAL = re.compile(rb"\r\n(OK|ERROR|\+CM[ES] ERROR: [^\r]*)\r\n")


@dataclass
class SimHandle:
    url: Optional[str]
    pty_path: Optional[str]
    control_address: str
    control: ControlClient
    simulator: Optional[Simulator] = None  # in-process only
    process: Optional[_subprocess.Popen] = None  # subprocess only

    @property
    def modem(self):
        """The in-process ``device.Modem`` (None for a subprocess)."""
        return self.simulator.modem if self.simulator else None


@contextmanager
def running_simulator(pin: Optional[str] = None, latency: Any = 0, capacity: int = 30,
                      pty_path: Optional[str] = None, *, pty: bool = True, tcp: bool = True,
                      subprocess: bool = False, **config: Any) -> Iterator[SimHandle]:
    """A running simulator; ``pty_path`` None picks a path in a temporary directory
    (``pty=False``: no pty at all)."""
    tmpdir = tempfile.mkdtemp(prefix="smss-sim-")
    path = (pty_path or os.path.join(tmpdir, "ttyUSB0")) if pty else None
    try:
        if subprocess:
            with _subprocess_simulator(pin, latency, capacity, path, tcp, config) as handle:
                yield handle
        else:
            sim_config = SimConfig(pin=pin, latency=latency, capacity=capacity, **config)
            simulator = Simulator(sim_config, tcp_port=0 if tcp else None, pty_path=path)
            with simulator:
                control = simulator.client()
                try:
                    yield SimHandle(simulator.url, simulator.pty_path,
                                    simulator.control_address, control, simulator=simulator)
                finally:
                    control.close()
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


@contextmanager
def _subprocess_simulator(pin, latency, capacity, path, tcp, config) -> Iterator[SimHandle]:
    command = [sys.executable, "-m", "smss.sim.cli", "--capacity", str(capacity),
               "--latency", str(latency)]
    if pin is not None:
        command += ["--pin", pin]
    if path:
        command += ["--pty", path]
    if not tcp:
        command.append("--no-tcp")
    for key, value in config.items():
        command += ["--set", f"{key}={json.dumps(value)}"]
    process = _subprocess.Popen(command, stdout=_subprocess.PIPE, stderr=_subprocess.PIPE)
    try:
        ready, _, _ = select.select([process.stdout], [], [], 30)
        if not ready:
            raise RuntimeError("smss-modem-sim did not start within 30 s")
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("smss-modem-sim failed: " + process.stderr.read().decode())
        where = json.loads(line)
        control = ControlClient(where["control"])
        try:
            yield SimHandle(where["url"], where["pty"], where["control"], control,
                            process=process)
        finally:
            control.close()
    finally:
        process.terminate()
        try:
            process.wait(10)
        except _subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            stream.close()


class AtClient:
    """A tiny AT terminal over TCP (``socket://host:port``) or a pty path."""

    def __init__(self, where: str, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.buffer = b""
        self.sock: Optional[socket.socket] = None
        self.fd: Optional[int] = None
        if where.startswith("socket://"):
            host, port = where[len("socket://"):].rsplit(":", 1)
            self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        else:
            import tty

            self.fd = os.open(where, os.O_RDWR | os.O_NOCTTY)
            tty.setraw(self.fd)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        if self.fd is not None:
            os.close(self.fd)

    def __enter__(self) -> "AtClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def write(self, data: bytes) -> None:
        if self.sock is not None:
            self.sock.sendall(data)
        else:
            os.write(self.fd, data)

    def _read_some(self, timeout: float) -> bytes:
        """Bytes, or b"" at end of stream; raises TimeoutError when nothing comes."""
        handle = self.sock if self.sock is not None else self.fd
        ready, _, _ = select.select([handle], [], [], timeout)
        if not ready:
            raise TimeoutError(f"no data within {timeout}s; buffer {self.buffer!r}")
        if self.sock is not None:
            return self.sock.recv(4096)
        try:
            return os.read(self.fd, 4096)
        except OSError:
            return b""  # EIO: the pty was hung up

    def read_until(self, pattern: bytes, timeout: Optional[float] = None) -> bytes:
        """Everything up to and including the first match of the regex ``pattern``."""
        deadline = time.monotonic() + (timeout or self.timeout)
        regex = re.compile(pattern)
        while True:
            match = regex.search(self.buffer)
            if match:
                data, self.buffer = self.buffer[: match.end()], self.buffer[match.end():]
                return data
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{pattern!r} not seen; buffer {self.buffer!r}")
            chunk = self._read_some(remaining)
            if not chunk:
                raise ConnectionError(f"link closed; buffer {self.buffer!r}")
            self.buffer += chunk

    def read_to_end(self, timeout: Optional[float] = None) -> bytes:
        """Everything until the link closes (TCP close or pty hangup)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            chunk = self._read_some(max(deadline - time.monotonic(), 0.01))
            if not chunk:
                data, self.buffer = self.buffer, b""
                return data
            self.buffer += chunk

    def command(self, line: str, timeout: Optional[float] = None) -> bytes:
        """Send ``line`` + CR; the raw answer up to and including the final result."""
        self.write(line.encode("latin-1") + b"\r")
        return self.read_until(FINAL.pattern, timeout)

    def lines(self, line: str, timeout: Optional[float] = None) -> List[str]:
        """Like ``command``, as the non-empty lines (echo included when echo is on)."""
        raw = self.command(line, timeout)
        parts = (part.rstrip("\r") for part in raw.decode("latin-1").split("\r\n"))
        return [part for part in parts if part.strip()]


class ManualTime:
    """A clock and a scheduler that tests drive by hand (for ``device.Modem``)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.pending: List[tuple] = []

    def clock(self) -> float:
        return self.now

    def schedule(self, delay: float, fn) -> None:
        self.pending.append((self.now + delay, len(self.pending), fn))

    def advance(self, seconds: float) -> None:
        """Move the clock on and run what became due, in order."""
        target = self.now + seconds
        while True:
            due = sorted(p for p in self.pending if p[0] <= target)
            if not due:
                break
            first = due[0]
            self.pending.remove(first)
            self.now = max(self.now, first[0])
            first[2]()
        self.now = target

    def run_all(self) -> None:
        while self.pending:
            self.advance(max(p[0] for p in self.pending) - self.now)


class ModemHarness:
    """A ``device.Modem`` with one session, no threads and no sockets: ``feed`` bytes
    and get back what the modem wrote; ``closed`` says whether it dropped the link."""

    def __init__(self, **config: Any) -> None:
        from datetime import datetime, timezone

        from smss.sim.actions import Close, Delay, Write
        from smss.sim.device import Modem

        self._types = (Write, Delay, Close)
        self.time = ManualTime()
        self.wallclock = datetime(2024, 5, 17, 12, 30, 0, tzinfo=timezone.utc)
        self.modem = Modem(SimConfig(**config), clock=self.time.clock,
                           scheduler=self.time.schedule, wallclock=lambda: self.wallclock)
        self.actions: list = []
        self.session = self.modem.open_session(self.actions.extend, "harness")

    def feed(self, data: bytes) -> bytes:
        """Feed ``data``; the bytes written since the last call."""
        self.session.feed(data)
        return self.take()

    def take(self) -> bytes:
        write = self._types[0]
        out = b"".join(a.data for a in self.actions if isinstance(a, write))
        self.actions[:] = [a for a in self.actions if not isinstance(a, write)]
        return out

    def delays(self) -> List[float]:
        return [a.seconds for a in self.actions if isinstance(a, self._types[1])]

    @property
    def closed(self) -> bool:
        return any(isinstance(a, self._types[2]) for a in self.actions)

    def at(self, line: str) -> str:
        """One command line (with CR); the answer as text."""
        return self.feed(line.encode("latin-1") + b"\r").decode("latin-1")
