"""``smss demo``: stopped with SIGTERM (or Ctrl-C), it stops everything it started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from smss.pidlock import pid_alive


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def children(pid: int):
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as handle:
            found += [int(child) for child in handle.read().split()]
    return found


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_demo_stops_everything_it_started(tmp_path, stop_signal):
    port, control = free_port(), free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "smss.cli", "demo", "--dir", str(tmp_path / "demo"),
         "--port", str(port), "--control-port", str(control)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(tmp_path))
    started = []
    try:
        deadline = time.monotonic() + 60
        while not (listening(port) and len(children(demo.pid)) == 3):
            assert demo.poll() is None and time.monotonic() < deadline, "demo did not start"
            time.sleep(0.1)
        started = children(demo.pid)  # the simulator, the dispatcher, the server
        demo.send_signal(stop_signal)
        assert demo.wait(timeout=60) == 0
        deadline = time.monotonic() + 30
        while [pid for pid in started if pid_alive(pid)] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [pid for pid in started if pid_alive(pid)] == []
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        for pid in started:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
