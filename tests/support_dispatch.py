"""A site for dispatcher tests: a database, a simulated modem, a config, and passes.

    with site(tmp_path, db_url, **sim_options) as s:
        s.enqueue("+420608337726", "text")
        s.run()                      # one `check_and_send` process; returns CompletedProcess
        s.rows("sms"), s.sim.control.sent()
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

from support_sim import running_simulator
from support_wait import wait_for

from smss.store import migrations
from smss.store import queue as msg_table
from smss.store.database import connect


class Site:
    def __init__(self, folder, db_url: str, sim, settings: Dict[str, Dict[str, str]]) -> None:
        self.folder = folder
        self.db_url = db_url
        self.sim = sim
        self.config_path = str(folder / "smss.conf")
        self.log_path = str(folder / "check_and_send.log")
        self.settings = settings
        self.write_config()
        conn = connect(db_url)
        migrations.prepare(conn)
        conn.close()

    def write_config(self, **overrides: Dict[str, str]) -> None:
        sections: Dict[str, Dict[str, str]] = {
            "server": {"listen": "127.0.0.1", "port": "0", "pidfile": f"{self.folder}/smss.pid",
                       "kick_command": ""},
            "database": {"url": self.db_url},
            "modem": {"device": self.sim.url if self.sim else "", "command_timeout": "3",
                      "pin_guard_file": f"{self.folder}/rejected-pins",
                      "send_timeout": "5", "register_timeout": "3"},
            "dispatcher": {"lockfile": f"{self.folder}/check_and_send.lock",
                           "state_dir": f"{self.folder}/state",
                           "logfile": self.log_path, "loglevel": "DEBUG",
                           "retry_delay": "0", "pass_timeout": "60"},
        }
        for source in (self.settings, overrides):
            for name, values in source.items():
                sections.setdefault(name, {}).update(values)
        self.settings = {name: dict(values) for name, values in sections.items()}
        with open(self.config_path, "w", encoding="utf-8") as handle:
            for name, values in sections.items():
                handle.write(f"[{name}]\n")
                for key, value in values.items():
                    handle.write(f"{key} = {value}\n")

    def connect(self):
        return connect(self.db_url)

    def enqueue(self, phone: str, text: str, parts: int = 1) -> int:
        conn = self.connect()
        try:
            with conn.transaction():
                return msg_table.insert(conn, [msg_table.NewMessage(phone, text, parts)])[0]
        finally:
            conn.close()

    def command(self, *args: str) -> List[str]:
        return [sys.executable, "-m", "check_and_send.cli", "-c", self.config_path, *args]

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*args), capture_output=True, text=True,
                              timeout=timeout, env=dict(os.environ, SMSS_CONFIG=self.config_path))

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(self.command(*args), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    def rows(self, table: str, columns: str = "*", where: str = "") -> List[tuple]:
        conn = self.connect()
        try:
            sql = f"SELECT {columns} FROM {table} {where} ORDER BY 1"  # noqa: S608 - test helper
            return [tuple(row) for row in conn.read().query(sql)]
        finally:
            conn.close()

    def log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""


@contextmanager
def site(folder, db_url: Optional[str] = None, settings: Optional[Dict] = None,
         modem: bool = True, **sim_options) -> Iterator[Site]:
    db_url = db_url or f"sqlite://{folder}/smss.db"
    if not modem:
        yield Site(folder, db_url, None, settings or {})
        return
    sim_options.setdefault("pty", False)
    with running_simulator(**sim_options) as sim:
        yield Site(folder, db_url, sim, settings or {})


class Loop:
    """``check_and_send --loop`` of a site, started and waited for until it says so."""

    def __init__(self, s: Site) -> None:
        self.s = s
        self.process = s.start("--loop")
        wait_for(lambda: "--loop started" in s.log(), what="the loop starting")

    def kick(self) -> None:
        os.kill(self.process.pid, signal.SIGUSR1)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then its exit status (killed, and the error raised, if it does not end
        within ``timeout``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=timeout)
            except Exception:
                self.process.kill()
                self.process.wait()
                raise
        return self.process.returncode
