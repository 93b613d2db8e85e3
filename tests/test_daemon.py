"""`smss start|stop|restart|status|migrate` as an operator runs them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import read_lines


def smss(config, *args, timeout=60):
    return subprocess.run([sys.executable, "-m", "smss.cli", "-c", str(config), *args],
                          capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def daemon_config(tmp_path):
    port = free_port()
    config = tmp_path / "smss.conf"
    config.write_text(
        "[server]\n"
        f"listen = 127.0.0.1\nport = {port}\n"
        f"pidfile = {tmp_path}/run/smss.pid\n"
        f"logfile = {tmp_path}/log/smss.log\n"
        "kick_command =\n"
        "[database]\n"
        f"url = sqlite://{tmp_path}/smss.db\n"
    )
    yield config, port, tmp_path
    smss(config, "stop")


def send(port, payload: bytes):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        return read_lines(sock)


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_start_status_stop(daemon_config):
    config, port, tmp = daemon_config
    assert smss(config, "status").returncode == 3
    started = smss(config, "start")
    assert started.returncode == 0, started.stderr
    pid = int((tmp / "run/smss.pid").read_text())
    assert send(port, b"#420608337726;from the daemon")[0].startswith("OK ")
    status = smss(config, "status")
    assert status.returncode == 0
    assert f"running (pid {pid})" in status.stdout
    assert "queue: 1 message(s): 1 due" in status.stdout
    assert "last accepted: 20" in status.stdout
    again = smss(config, "start")
    assert again.returncode == 0 and f"already running (pid {pid})" in again.stdout
    stopped = smss(config, "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not (tmp / "run/smss.pid").exists()
    log = (tmp / "log/smss.log").read_text()
    assert "daemon started" in log and "stopped; 1 record(s) accepted" in log


def test_stale_pid_file_does_not_block_start(daemon_config):
    config, port, tmp = daemon_config
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp / "run").mkdir()
    (tmp / "run/smss.pid").write_text(f"{dead.pid}\n")
    assert smss(config, "status").returncode == 3
    started = smss(config, "start")
    assert started.returncode == 0, started.stderr
    assert int((tmp / "run/smss.pid").read_text()) != dead.pid
    assert send(port, b"#420608337726;x")[0].startswith("OK ")


def test_pid_reused_by_another_program_is_stale(daemon_config):
    config, port, tmp = daemon_config
    (tmp / "run").mkdir()
    (tmp / "run/smss.pid").write_text(f"{os.getppid()}\n")  # alive, but not smss
    assert smss(config, "start").returncode == 0
    assert send(port, b"#420608337726;x")[0].startswith("OK ")


def test_sighup_reopens_the_log_file(daemon_config):
    config, port, tmp = daemon_config
    assert smss(config, "start").returncode == 0
    pid = int((tmp / "run/smss.pid").read_text())
    log = tmp / "log/smss.log"
    log.rename(tmp / "log/smss.log.1")  # what logrotate does
    os.kill(pid, signal.SIGHUP)
    wait_for(lambda: log.exists() and "log file reopened" in log.read_text())
    send(port, b"#bad;x")
    wait_for(lambda: "ERR 422" in log.read_text())


def test_restart_keeps_the_queue(daemon_config):
    config, port, tmp = daemon_config
    assert smss(config, "start").returncode == 0
    first = int((tmp / "run/smss.pid").read_text())
    assert send(port, b"#420608337726;before restart")[0].startswith("OK ")
    assert smss(config, "restart").returncode == 0
    second = int((tmp / "run/smss.pid").read_text())
    assert first != second
    assert send(port, b"#420608337726;after restart")[0].startswith("OK ")
    assert "queue: 2 message(s)" in smss(config, "status").stdout


def test_start_reports_a_busy_port_on_the_terminal(daemon_config):
    config, port, tmp = daemon_config
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen(1)
        result = smss(config, "start")
    assert result.returncode == 1
    assert "cannot start" in result.stderr and "in use" in result.stderr


def test_run_refuses_an_outdated_schema_and_migrate_fixes_it(daemon_config):
    config, port, tmp = daemon_config
    from smss.store import migrations

    latest = migrations.latest_version("sqlite")
    assert smss(config, "migrate").stdout.strip().endswith(f"schema is at version {latest}")
    import sqlite3

    db = sqlite3.connect(tmp / "smss.db")
    db.execute("DELETE FROM schema_version")
    db.commit()
    db.close()
    result = smss(config, "run", timeout=30)
    assert result.returncode == 1
    assert "run `smss migrate`" in (tmp / "log/smss.log").read_text()
    migrated = smss(config, "migrate")
    assert "applied 0001_initial.sql" in migrated.stdout


def test_bad_configuration_is_reported(tmp_path):
    config = tmp_path / "smss.conf"
    config.write_text("[server]\nport = twenty\n")
    result = smss(config, "status")
    assert result.returncode == 1 and "[server] port" in result.stderr
    config.write_text("[server]\nprot = 2021\n")
    result = smss(config, "status")
    assert result.returncode == 1 and "unknown key 'prot'" in result.stderr
