"""Shared fixtures: databases on both backends, and a real `smss run` server process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from typing import Dict, Iterator, List, Optional, Tuple

import pytest
from support_mariadb import MariaDB
from support_tools import missing

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    """One private MariaDB server for the whole run (skipped only if not installed)."""
    try:
        server = MariaDB()
    except RuntimeError as exc:
        missing(str(exc))
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def galera():
    """One private 3-node Galera cluster on 127.0.0.1 for the whole run (tests/support_galera);
    a test that harms a node heals it before it ends (``support_galera.Cluster.heal``)."""
    from support_galera import Cluster
    from support_galera import missing as galera_missing

    problem = galera_missing()
    if problem is not None:
        missing(problem)
    cluster = Cluster(3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture(params=["sqlite", "mysql"])
def database_url(request, tmp_path) -> str:
    """An empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/smss.db"
    return request.getfixturevalue("mariadb").create_database()


class ServerProcess:
    """`smss run` in a subprocess, listening on 127.0.0.1 on a port the kernel chose."""

    def __init__(self, tmp_path, db_url: str, settings: Dict[str, Dict[str, str]]) -> None:
        self.tmp_path = tmp_path
        self.db_url = db_url
        self.config_path = str(tmp_path / "smss.conf")
        self.pidfile = str(tmp_path / "smss.pid")
        self.log_path = str(tmp_path / "server.log")
        sections: Dict[str, Dict[str, str]] = {
            "server": {"listen": "127.0.0.1", "port": "0", "pidfile": self.pidfile,
                       "kick_command": "", "loglevel": "DEBUG"},
            "database": {"url": db_url},
            "dispatcher": {"state_dir": str(tmp_path / "state")},  # never /var/lib/smss
        }
        for name, values in settings.items():
            sections.setdefault(name, {}).update(values)
        with open(self.config_path, "w", encoding="utf-8") as handle:
            for name, values in sections.items():
                handle.write(f"[{name}]\n")
                for key, value in values.items():
                    handle.write(f"{key} = {value}\n")
        self.host = "127.0.0.1"
        self.port = 0
        self.process: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 30.0) -> None:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "smss.cli", "-c", self.config_path, "run"],
            stdout=log, stderr=log, cwd=str(self.tmp_path),
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"smss run exited {self.process.returncode}:\n{self.log()}")
            for line in self.log().splitlines():
                if "listening on" in line and self.process.pid and f"[{self.process.pid}]" in line:
                    self.port = int(line.split("listening on ")[1].split(",")[0].rsplit(":", 1)[1])
                    return
            time.sleep(0.05)
        raise RuntimeError(f"smss run did not start:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            status = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        self.process = None
        return status

    def log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""

    def connect(self, timeout: float = 10.0) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=timeout)

    def send(self, payload: bytes, timeout: float = 10.0) -> List[str]:
        """Send, half-close, and read every reply line until the server closes."""
        with self.connect(timeout) as sock:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            return read_lines(sock)

    def queued(self) -> List[Tuple[int, str, str]]:
        from smss.store.database import connect

        conn = connect(self.db_url)
        try:
            return [(int(r[0]), r[1], r[2]) for r in
                    conn.read().query("SELECT id, phone, text FROM msg ORDER BY id")]
        finally:
            conn.close()


def read_lines(sock: socket.socket) -> List[str]:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8").splitlines()


@pytest.fixture
def server_factory(tmp_path):
    """Start `smss run` with extra settings: ``server_factory(server={"idle_timeout": "1"})``."""
    started: List[ServerProcess] = []

    def make(db_url: Optional[str] = None, **settings: Dict[str, str]) -> ServerProcess:
        folder = tmp_path / f"server{len(started)}"
        folder.mkdir()
        server = ServerProcess(folder, db_url or f"sqlite://{folder}/smss.db", settings)
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def smss_server(server_factory) -> ServerProcess:
    """A running server on SQLite with default limits (loopback allowed)."""
    return server_factory()


def config_text(text: str) -> str:
    return textwrap.dedent(text).lstrip()
