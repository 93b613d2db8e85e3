"""The README's quick start, word for word, the way a newcomer runs it: a plain
(non-editable) `python3 -m pip install .` into a fresh virtual environment, then
`smss demo` from inside the source checkout, then the README's `nc` line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import REPO
from support_tools import missing, program


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.mark.slow
def test_readme_quick_start_from_a_fresh_install(tmp_path):
    program("nc", "netcat-openbsd")
    program("git", "git")
    if listening(2021) or listening(2022):
        missing("ports 2021/2022 are taken on this machine: the quick start needs them")
    source = tmp_path / "smss"
    subprocess.run(["git", "clone", "-q", REPO, str(source)], check=True, timeout=120)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = dict(os.environ, PATH=f"{venv}/bin:{os.environ['PATH']}")
    env.pop("SMSS_CONFIG", None)
    env.pop("PYTHONPATH", None)
    install = subprocess.run("python3 -m pip install -q . 2>&1", shell=True, cwd=source,
                             env=env, capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stdout[-3000:]
    demo = subprocess.Popen(["smss", "demo"], cwd=source, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not listening(2021):
            assert demo.poll() is None and time.monotonic() < deadline, "smss demo did not start"
            time.sleep(0.2)
        replies = subprocess.run(
            "printf '#420608337726;AHOJ#420777123456;Příliš žluťoučký kůň' | nc -N 127.0.0.1 2021",
            shell=True, capture_output=True, text=True, timeout=30).stdout.split()
        assert replies[0::2] == ["OK", "OK"]
        deadline = time.monotonic() + 30
        while True:
            status = subprocess.run(["smss", "-c", "smss-demo/smss.conf", "status"], cwd=source,
                                    env=env, capture_output=True, text=True, timeout=30).stdout
            if "sent: 2 sent" in status or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert "sent: 2 sent" in status, status
    finally:
        demo.send_signal(signal.SIGINT)
        output = demo.communicate(timeout=60)[0]
    assert demo.returncode == 0, output
