"""``smss demo``: the whole gateway on one machine with nothing to set up.

Writes a configuration into a folder (SQLite queue, server on 127.0.0.1),
starts the bundled modem simulator on a pseudo-terminal, the dispatcher
(``check_and_send --loop``) and the server, and stops them all on Ctrl-C,
SIGTERM or SIGHUP (a closed terminal).
Everything it starts is an ordinary smss program with that configuration, so
what works here works the same way with a real modem.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import List

CONFIG = """\
# Written by `smss demo`.  The same file drives a real installation: point
# [modem] device at the modem (/dev/ttyUSB0, socket://router:port) and
# [database] url at MariaDB, and drop the demo's paths.
[server]
listen = 127.0.0.1
port = {port}
pidfile = {folder}/smss.pid

[database]
url = sqlite://{folder}/smss.db

[modem]
device = {folder}/ttyUSB0
pin_guard_file = {folder}/rejected-pins

[dispatcher]
lockfile = {folder}/check_and_send.lock
state_dir = {folder}
poll_interval = 5
"""


WELCOME = """
smss demo in {folder}
  modem simulator on {pty} (control channel 127.0.0.1:{control_port})
  dispatcher: check_and_send --loop
  server: 127.0.0.1:{port}, queue sqlite://{folder}/smss.db

Try, in another terminal:
  printf '#420608337726;AHOJ#420777123456;Příliš žluťoučký kůň' | nc -N 127.0.0.1 {port}
  smss -c {config} status

Ctrl-C stops everything.
"""


def _wait_for(path: str, process: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the modem simulator did not create {path}")
        time.sleep(0.05)


class _Stop(Exception):
    """SIGTERM or SIGHUP: stop like Ctrl-C."""


def _stop(signum, frame):
    raise _Stop(signum)


def main(folder: str, port: int, control_port: int) -> int:
    folder = os.path.abspath(folder)
    os.makedirs(folder, exist_ok=True)
    config = os.path.join(folder, "smss.conf")
    with open(config, "w", encoding="utf-8") as handle:
        handle.write(CONFIG.format(folder=folder, port=port))
    env = dict(os.environ, SMSS_CONFIG=config)
    python = sys.executable
    # children run in the demo folder: `python -m` puts the working directory first on
    # sys.path, and a source checkout there would shadow the installed package
    children: List[subprocess.Popen] = []
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop)
    try:
        pty = os.path.join(folder, "ttyUSB0")
        simulator = subprocess.Popen(
            [python, "-m", "smss.sim.cli", "--no-tcp", "--pty", pty,
             "--control", str(control_port)], env=env, cwd=folder)
        children.append(simulator)
        _wait_for(pty, simulator)
        children.append(subprocess.Popen([python, "-m", "check_and_send.cli", "-c", config,
                                          "--loop"], env=env, cwd=folder))
        print(WELCOME.format(folder=folder, pty=pty, control_port=control_port, port=port,
                             config=config), flush=True)
        server = subprocess.Popen([python, "-m", "smss.cli", "-c", config, "run"], env=env,
                                  cwd=folder)
        children.append(server)
        return server.wait()
    except (KeyboardInterrupt, _Stop):
        return 0
    finally:
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)  # a second signal must not cut this short
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
