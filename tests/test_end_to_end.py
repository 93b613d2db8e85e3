"""The whole gateway: nc -> smss run -> queue -> kicked check_and_send -> simulated network,
and the simulated network -> SIM -> rcv.  Also the README's `smss demo`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from support_sim import running_simulator
from support_tools import program

LONG = ("Zálohování serveru db01 selhalo, zkontrolujte disk. " * 8)[:400]
CYRILLIC = "Показания счётчика приняты, спасибо! " * 6


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def joined_texts(sent):
    """The simulator's sent parts, put back together per message."""
    messages = {}
    for part in sent:
        concat = part["concat"]
        key = (part["number"], concat["reference"]) if concat else (part["number"], part["seq"])
        messages.setdefault(key, []).append(part)
    return sorted(
        (number, "".join(p["text"] for p in sorted(parts, key=lambda p: (p["concat"] or {})
                                                   .get("sequence", 0))))
        for (number, _), parts in messages.items()
    )


def nc(port: int, payload: str) -> str:
    return subprocess.run([program("nc", "netcat-openbsd"), "-N", "127.0.0.1", str(port)],
                          input=payload.encode(), capture_output=True, timeout=30,
                          check=True).stdout.decode()


def test_mariadb_server_kicks_the_dispatcher_to_the_simulated_network(server_factory, mariadb,
                                                                      tmp_path):
    with running_simulator(pty_path=str(tmp_path / "ttyUSB0")) as sim:
        db_url = mariadb.create_database()
        server = server_factory(
            db_url,
            server={"kick_command": f"{sys.executable} -m check_and_send.cli"},
            modem={"device": sim.pty_path, "pin_guard_file": f"{tmp_path}/pins"},
            dispatcher={"lockfile": f"{tmp_path}/cas.lock", "logfile": f"{tmp_path}/cas.log"},
        )
        replies = nc(server.port, "#420608337726;AHOJ#+420 777 123 456;Příliš žluťoučký kůň\n"
                                  f"#00420777123456;{LONG}")
        assert [line.split()[0] for line in replies.splitlines()] == ["OK"] * 3
        wait_for(lambda: len(sim.control.sent()) == 1 + 1 + 6)
        assert joined_texts(sim.control.sent()) == sorted([
            ("+420608337726", "AHOJ"),
            ("+420777123456", "Příliš žluťoučký kůň"),
            ("+420777123456", LONG),
        ])
        from smss.store.database import connect

        conn = connect(db_url)
        rows = wait_for(lambda: len(conn.read().query("SELECT id FROM sms")) == 3 and
                        conn.read().query("SELECT phone, text, status, parts FROM sms ORDER BY id"))
        assert rows == [("+420608337726", "AHOJ", "sent", 1),
                        ("+420777123456", "Příliš žluťoučký kůň", "sent", 1),
                        ("+420777123456", LONG, "sent", 6)]
        assert conn.read().query("SELECT COUNT(*) FROM msg") == [(0,)]

        # inbound: a multipart Cyrillic SMS, parts stored out of order; the next kick reads it
        sim.control.inject("+79991234567", CYRILLIC, order=[2, 4, 1, 3])
        sim.control.inject("+420777123456", "Díky, vyřízeno")
        nc(server.port, "#420608337726;a kick that also reads the SIM")
        received = wait_for(lambda: len(conn.read().query("SELECT id FROM rcv")) == 2 and
                            conn.read().query("SELECT phone, text, parts FROM rcv ORDER BY phone"))
        assert received == [("+420777123456", "Díky, vyřízeno", 1),
                            ("+79991234567", CYRILLIC, 4)]
        assert wait_for(lambda: sim.control.storage() == [] or
                        all(item["kind"] == "status_report" for item in sim.control.storage()))
        conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_readme_demo_runs_the_whole_gateway(tmp_path):
    port, control = free_port(), free_port()
    folder = tmp_path / "smss-demo"
    demo = subprocess.Popen(
        [sys.executable, "-m", "smss.cli", "demo", "--dir", str(folder), "--port", str(port),
         "--control-port", str(control)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        def listening():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_for(listening)
        replies = nc(port, "#420608337726;AHOJ#420777123456;Příliš žluťoučký kůň")
        assert [line.split()[0] for line in replies.splitlines()] == ["OK", "OK"]
        from smss.sim.client import ControlClient

        client = ControlClient(f"127.0.0.1:{control}")
        wait_for(lambda: len(client.sent()) == 2)
        assert joined_texts(client.sent()) == [("+420608337726", "AHOJ"),
                                               ("+420777123456", "Příliš žluťoučký kůň")]
        client.inject("+420777123456", "Dobrý den")
        status = lambda: subprocess.run(  # noqa: E731
            [sys.executable, "-m", "smss.cli", "-c", str(folder / "smss.conf"), "status"],
            capture_output=True, text=True, timeout=30).stdout
        wait_for(lambda: "received: 1" in status())
        assert "sent: 2 sent" in status()
        client.close()
    finally:
        demo.send_signal(signal.SIGINT)
        output = demo.communicate(timeout=60)[0]
    assert demo.returncode == 0, output
    assert "check_and_send --loop stopped" in output
    assert not os.path.exists(folder / "smss.pid")
