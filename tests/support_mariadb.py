"""A private MariaDB server for tests and benchmarks: own data directory, own socket, no TCP.

Needs Debian's ``mariadb-server`` (``mariadbd`` and ``mariadb-install-db``);
no system server, root password or network is touched.  ``stop``/``start``
restart it on the same data (the chaos test does that mid-run); ``freeze`` and
``thaw`` stop and continue the process (SIGSTOP/SIGCONT): a database that stops
answering without closing anything, as a hung host or a full disk makes it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from typing import Iterator, Optional

import pymysql

USER = "smss"
PASSWORD = "smss-test"


def find(program: str) -> Optional[str]:
    return shutil.which(program) or next(
        (p for p in (f"/usr/sbin/{program}", f"/usr/bin/{program}") if os.path.exists(p)), None
    )


class MariaDB:
    def __init__(self, base: Optional[str] = None) -> None:
        self.mariadbd = find("mariadbd")
        self.install_db = find("mariadb-install-db")
        if not self.mariadbd or not self.install_db:
            raise RuntimeError("MariaDB is not installed (Debian package mariadb-server)")
        self.base = base or tempfile.mkdtemp(prefix="smss-mariadb-")
        self.datadir = os.path.join(self.base, "data")
        self.socket = os.path.join(self.base, "mysqld.sock")
        self.log = os.path.join(self.base, "mysqld.log")
        self.process: Optional[subprocess.Popen] = None
        self._databases = 0

    def _user_args(self) -> list:
        return ["--user=root"] if os.geteuid() == 0 else []

    def install(self) -> None:
        subprocess.run(
            [self.install_db, "--no-defaults", f"--datadir={self.datadir}",
             "--auth-root-authentication-method=normal", "--skip-test-db",
             *self._user_args()],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=180,
        )

    def start(self) -> None:
        if not os.path.isdir(os.path.join(self.datadir, "mysql")):
            self.install()
        log = open(self.log, "ab")
        self.process = subprocess.Popen(
            [self.mariadbd, "--no-defaults", f"--datadir={self.datadir}",
             f"--socket={self.socket}", "--skip-networking", f"--pid-file={self.base}/pid",
             "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=48M",
             "--max-connections=1000", "--skip-name-resolve", *self._user_args()],
            stdout=log, stderr=log,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mariadbd exited: see {self.log}")
            try:
                conn = pymysql.connect(unix_socket=self.socket, user="root", connect_timeout=2)
            except pymysql.err.OperationalError:
                time.sleep(0.2)
                continue
            with conn.cursor() as cursor:
                cursor.execute(f"CREATE USER IF NOT EXISTS '{USER}'@'localhost'"
                               f" IDENTIFIED BY '{PASSWORD}'")
                cursor.execute(f"GRANT ALL ON *.* TO '{USER}'@'localhost'")
            conn.close()
            return
        raise RuntimeError(f"mariadbd did not come up within 60 s: see {self.log}")

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)  # a frozen server cannot stop
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def freeze(self) -> None:
        """Stop the server process (SIGSTOP): connections stay open and nothing answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """Let a frozen server run on (SIGCONT)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Frozen for the block; thawed again whatever happens in it."""
        self.freeze()
        try:
            yield
        finally:
            self.thaw()

    def create_database(self, name: Optional[str] = None) -> str:
        """A new empty database; returns its smss URL."""
        self._databases += 1
        name = name or f"smss_test_{os.getpid()}_{self._databases}"
        conn = pymysql.connect(unix_socket=self.socket, user="root")
        with conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        conn.close()
        return self.url(name)

    def url(self, name: str) -> str:
        return f"mysql://{USER}:{PASSWORD}@localhost/{name}?unix_socket={self.socket}"

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
