"""What the benchmarks share: servers in subprocesses, databases, /proc readings, the machine.

``Spooler`` runs a listening program (the real ``smss run``, or the naive
reference) in a subprocess on 127.0.0.1 with a port the kernel chose, and
reads the port from its "listening on HOST:PORT" log line.  ``Backend`` hands
out empty, migrated databases on SQLite or on a private MariaDB server
(``tests/support_mariadb.py``).
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
for folder in (REPO, os.path.join(REPO, "tests")):
    if folder not in sys.path:
        sys.path.insert(0, folder)

from smss.store import migrations  # noqa: E402
from smss.store.database import DatabaseUrl, connect  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_LISTENING = re.compile(r"listening on (\S+):(\d+)")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def status_field(pid: int, name: str) -> int:
    """A kB figure from /proc/PID/status (VmRSS, VmHWM, ...), in kB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise KeyError(name)


class Spooler:
    """A server subprocess listening on 127.0.0.1:<kernel-chosen port>."""

    def __init__(self, name: str, argv: List[str], log_path: str, cwd: str) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.cwd = cwd
        self.process: Optional[subprocess.Popen] = None
        self.port = 0

    def start(self, timeout: float = 60.0) -> "Spooler":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=log, cwd=self.cwd)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.process.returncode}:\n{self.log()}")
            match = _LISTENING.search(self.log())
            if match:
                self.port = int(match.group(2))
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not start within {timeout:.0f} s:\n{self.log()}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def smss_server(folder: str, db_url: str, settings: Optional[Dict[str, Dict[str, str]]] = None,
                ) -> Spooler:
    """The real `smss run` with its default limits, logging at INFO, no dispatcher kick."""
    os.makedirs(folder, exist_ok=True)
    sections: Dict[str, Dict[str, str]] = {
        "server": {"listen": "127.0.0.1", "port": "0", "kick_command": "",
                   "pidfile": os.path.join(folder, "smss.pid")},
        "database": {"url": db_url},
    }
    for name, values in (settings or {}).items():
        sections.setdefault(name, {}).update(values)
    config = os.path.join(folder, "smss.conf")
    with open(config, "w", encoding="utf-8") as handle:
        for name, values in sections.items():
            handle.write(f"[{name}]\n")
            handle.writelines(f"{key} = {value}\n" for key, value in values.items())
    argv = [sys.executable, "-m", "smss.cli", "-c", config, "run"]
    return Spooler("smss", argv, os.path.join(folder, "server.log"), REPO)


def naive_server(folder: str, db_url: str) -> Spooler:
    os.makedirs(folder, exist_ok=True)
    argv = [sys.executable, os.path.join(BENCH, "naive_spooler.py"), "--db", db_url]
    return Spooler("naive", argv, os.path.join(folder, "naive.log"), REPO)


class Backend:
    """Empty migrated databases on one backend: ``sqlite`` or ``mariadb``."""

    def __init__(self, name: str, folder: str, mysql_url: str = "") -> None:
        self.name = name
        self.folder = folder
        self._mysql_url = mysql_url  # an existing server to use instead of a private one
        self._mariadb = None
        self._count = 0
        self.version = ""
        self.pid: Optional[int] = None  # the database server's process, when there is one

    def start(self) -> "Backend":
        if self.name == "sqlite":
            import sqlite3

            self.version = f"SQLite {sqlite3.sqlite_version}"
            return self
        if not self._mysql_url:
            from support_mariadb import MariaDB

            self._mariadb = MariaDB(os.path.join(self.folder, "mariadb"))
            self._mariadb.start()
            self.pid = self._mariadb.process.pid
        conn = connect(self._base_url("mysql"))
        self.version = str(conn.query_one("SELECT VERSION()")[0])
        conn.close()
        return self

    def _base_url(self, database: str) -> str:
        if self._mariadb is not None:
            return self._mariadb.url(database)
        return re.sub(r"(mysql://[^/]*/)[^?]*", lambda m: m.group(1) + database, self._mysql_url)

    def new_database(self, label: str) -> str:
        """A new empty database with the smss schema; returns its URL."""
        self._count += 1
        name = f"smss_bench_{os.getpid()}_{self._count}_{label}"
        if self.name == "sqlite":
            url = f"sqlite://{os.path.join(self.folder, name + '.db')}"
        else:
            admin = connect(self._base_url("mysql"))
            admin.execute(f"DROP DATABASE IF EXISTS `{name}`").close()
            admin.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4").close()
            admin.close()
            url = self._base_url(name)
        conn = connect(url)
        try:
            migrations.prepare(conn)
        finally:
            conn.close()
        return url

    def empty(self, url: str) -> None:
        """Remove every queued row (between runs, so each starts from an empty table)."""
        conn = connect(url)
        try:
            if self.name == "sqlite":
                with conn.transaction():
                    conn.execute("DELETE FROM msg").close()
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
            else:
                conn.execute("TRUNCATE TABLE msg").close()
        finally:
            conn.close()

    def drop(self, url: str) -> None:
        if self.name != "sqlite":
            conn = connect(self._base_url("mysql"))
            conn.execute(f"DROP DATABASE IF EXISTS `{DatabaseUrl.parse(url).database}`").close()
            conn.close()

    def stop(self) -> None:
        if self._mariadb is not None:
            self._mariadb.cleanup()
            self._mariadb = None


def mariadb_available() -> bool:
    from support_mariadb import find

    return bool(find("mariadbd") and find("mariadb-install-db"))


def machine() -> Dict[str, str]:
    """The figures docs/performance.md quotes about where a benchmark ran."""
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="ascii") as handle:
        total_kb = int(handle.readline().split()[1])
    return {
        "cpus": str(os.cpu_count()),
        "cpu_model": model,
        "memory": f"{total_kb / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def temp_folder(prefix: str) -> str:
    return tempfile.mkdtemp(prefix=prefix)


def remove(folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)
