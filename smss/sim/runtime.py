"""Lifecycle of a running simulator: one modem, its transports and its control channel.

Owns: the timer threads behind the modem's scheduler, starting and stopping
the TCP server, the pty and the control server together, and the addresses a
user needs (``url``, ``pty_path``, ``control_address``).  Usable in-process::

    with Simulator(SimConfig(pin="1234"), pty_path="/tmp/x/ttyUSB0") as sim:
        print(sim.url, sim.pty_path, sim.control_address)
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, Optional, Set

from smss.sim.client import ControlClient
from smss.sim.control import ControlServer
from smss.sim.device import Modem
from smss.sim.ptyport import PtyPort
from smss.sim.settings import SimConfig
from smss.sim.tcp import TcpServer

log = logging.getLogger(__name__)


class TimerScheduler:
    """``schedule(delay, fn)`` on daemon timer threads; ``cancel_all`` on stop."""

    def __init__(self) -> None:
        self._timers: Set[threading.Timer] = set()
        self._lock = threading.Lock()
        self._stopped = False

    def __call__(self, delay: float, fn: Callable[[], None]) -> None:
        def run() -> None:
            with self._lock:
                self._timers.discard(timer)
            try:
                fn()
            except Exception:  # noqa: BLE001 - keep the simulator alive, log the bug
                log.exception("scheduled modem event failed")

        timer = threading.Timer(max(delay, 0.0), run)
        timer.daemon = True
        with self._lock:
            if self._stopped:
                return
            self._timers.add(timer)
        timer.start()

    def cancel_all(self) -> None:
        with self._lock:
            self._stopped = True
            timers, self._timers = self._timers, set()
        for timer in timers:
            timer.cancel()


class Simulator:
    def __init__(self, config: Optional[SimConfig] = None, *, host: str = "127.0.0.1",
                 tcp_port: Optional[int] = 0, pty_path: Optional[str] = None,
                 control_port: Optional[int] = 0) -> None:
        """``tcp_port``/``control_port`` None: no TCP / no control channel; 0: any free
        port.  ``pty_path`` None: no pty."""
        self.scheduler = TimerScheduler()
        self.modem = Modem(config, scheduler=self.scheduler)
        self.tcp = TcpServer(self.modem, host, tcp_port) if tcp_port is not None else None
        self.pty = PtyPort(self.modem, pty_path) if pty_path else None
        self.control_server = (
            ControlServer(self.modem, "127.0.0.1", control_port, info=self.info)
            if control_port is not None else None
        )
        self._started = False

    @property
    def url(self) -> Optional[str]:
        return self.tcp.url if self.tcp else None

    @property
    def pty_path(self) -> Optional[str]:
        return self.pty.path if self.pty else None

    @property
    def control_address(self) -> Optional[str]:
        return self.control_server.address if self.control_server else None

    def info(self) -> Dict[str, Any]:
        return {
            "url": self.url,
            "pty": self.pty_path,
            "pty_slave": self.pty.slave_name if self.pty else None,
            "pty_hangups": self.pty.hangups if self.pty else 0,
            "control": self.control_address,
        }

    def client(self) -> ControlClient:
        if self.control_address is None:
            raise RuntimeError("the simulator runs without a control channel")
        return ControlClient(self.control_address)

    def start(self) -> "Simulator":
        for part in (self.control_server, self.tcp, self.pty):
            if part is not None:
                part.start()
        self._started = True
        return self

    def stop(self) -> None:
        self.scheduler.cancel_all()
        for part in (self.pty, self.tcp, self.control_server):
            if part is not None:
                part.stop()
        self._started = False

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
