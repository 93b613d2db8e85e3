"""TCP transport: the modem reachable as ``socket://HOST:PORT`` (like a Conel ER75i
router exposing its GSM module), one session per accepted connection.

Owns: the listening socket, the accept thread and the per-connection links.
A drop fault closes the connection; the listener keeps accepting.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import List, Optional, Tuple

from smss.sim.link import StreamLink

log = logging.getLogger(__name__)


class TcpLink(StreamLink):
    def __init__(self, modem, sock: socket.socket, peer: Tuple) -> None:
        super().__init__(modem, f"tcp:{peer[0]}:{peer[1]}")
        self.sock = sock
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def fileno(self) -> int:
        return self.sock.fileno()

    def read_some(self) -> bytes:
        return self.sock.recv(4096)

    def write_some(self, data: bytes) -> int:
        return self.sock.send(data)

    def link_closed(self, reason: str) -> bool:
        return False

    def release(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class TcpServer:
    """Listens on ``host:port`` (port 0: any free port); ``url`` is the pyserial URL."""

    def __init__(self, modem, host: str = "127.0.0.1", port: int = 0) -> None:
        self.modem = modem
        self._listener = socket.create_server((host, port), reuse_port=False)
        self._listener.settimeout(0.5)
        self.host, self.port = self._listener.getsockname()[:2]
        self.links: List[TcpLink] = []
        self._stopping = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._accept_loop, name="sim-tcp-accept",
                                        daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, peer = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                if not self._stopping.is_set():
                    log.exception("accept failed")
                break
            link = TcpLink(self.modem, sock, peer)
            log.info("%s: connected", link.label)
            self.links = [existing for existing in self.links if existing.running] + [link]
            link.start()

    def stop(self) -> None:
        self._stopping.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        except OSError:
            pass
        self._listener.close()
        if self._thread is not None:
            self._thread.join(5)
        for link in self.links:
            link.stop()
