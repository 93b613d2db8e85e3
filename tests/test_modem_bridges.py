"""The one link code path through network bridges in front of a serial modem:

- raw TCP as a cellular router exposes its modem (Conel ER75i): Debian's ``socat``
  listens on TCP and forwards to the simulator's pty; the driver uses ``socket://``;
- RFC 2217 (telnet COM port control): pyserial's own server side
  (``serial.rfc2217.PortManager``) in front of the simulator's pty; ``rfc2217://``.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time

import pytest
import serial
import serial.rfc2217
from support_sim import running_simulator
from support_tools import program

from smss.modem.session import ModemSession, ModemSettings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def exercise(url: str, sim) -> None:
    settings = ModemSettings(device=url, command_timeout=5.0, send_timeout=10.0,
                             read_timeout=0.05)
    with ModemSession(settings) as modem:
        result = modem.send("+420608337726", "pres most " * 20)
        assert result.parts == 2
        sim.control.inject("+420777123456", "zpět přes most")
        deadline = time.monotonic() + 10
        texts = []
        while not texts and time.monotonic() < deadline:
            texts = [m.decoded.text for m in modem.list_stored() if hasattr(m.decoded, "text")]
        assert texts == ["zpět přes most"]
        assert modem.status().registered
    assert "".join(s["text"] for s in sim.control.sent()) == "pres most " * 20


def test_raw_tcp_bridge_like_a_cellular_router():
    program("socat", "socat")
    with running_simulator(tcp=False) as sim:
        port = free_port()
        bridge = subprocess.Popen(
            ["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr",
             f"FILE:{sim.pty_path},raw,echo=0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            wait_for_port_or_exit(bridge, port)
            exercise(f"socket://127.0.0.1:{port}", sim)
        finally:
            bridge.terminate()
            bridge.wait(10)
            bridge.stderr.close()


def wait_for_port_or_exit(process: subprocess.Popen, port: int) -> None:
    """socat accepts one connection; probing would use it up, so watch the listen queue."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("socat exited: " + process.stderr.read().decode())
        with open("/proc/net/tcp") as table:
            if any(f":{port:04X} 00000000:0000 0A" in line for line in table):
                return
        time.sleep(0.05)
    raise RuntimeError("socat did not listen")


class _PtyPort(serial.Serial):
    """A pty has no modem status lines (TIOCMGET fails): report a modem that is there."""

    cts = dsr = cd = True
    ri = False

    def _update_dtr_state(self) -> None:
        pass

    def _update_rts_state(self) -> None:
        pass


class Rfc2217Server:
    """One client, one serial port, pyserial's PortManager in between."""

    def __init__(self, device: str) -> None:
        self.port = _PtyPort(device, timeout=0.05)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()[1]
        self.alive = True
        self.threads = [threading.Thread(target=self._serve, daemon=True)]
        self.threads[0].start()

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while self.alive:
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            manager = serial.rfc2217.PortManager(self.port, _SocketWriter(conn))
            reader = threading.Thread(target=self._to_client, args=(conn, manager), daemon=True)
            reader.start()
            self.threads.append(reader)
            try:
                conn.settimeout(0.2)
                while self.alive:
                    try:
                        data = conn.recv(4096)
                    except socket.timeout:
                        continue
                    if not data:
                        break
                    self.port.write(b"".join(manager.filter(data)))
            except OSError:
                pass
            finally:
                conn.close()

    def _to_client(self, conn: socket.socket, manager) -> None:
        while self.alive:
            try:
                data = self.port.read(self.port.in_waiting or 1)
                if data:
                    conn.sendall(b"".join(manager.escape(data)))
            except OSError:
                return

    def close(self) -> None:
        self.alive = False
        self.listener.close()
        for thread in self.threads:
            thread.join(5)
        self.port.close()


class _SocketWriter:
    """What PortManager writes its telnet answers to."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn

    def write(self, data: bytes) -> None:
        self.conn.sendall(data)


@pytest.mark.filterwarnings("ignore:set(Daemon|Name):DeprecationWarning")  # pyserial's own
def test_rfc2217_port_server():
    with running_simulator(tcp=False) as sim:
        server = Rfc2217Server(sim.pty_path)
        try:
            exercise(f"rfc2217://127.0.0.1:{server.address}", sim)
        finally:
            server.close()
