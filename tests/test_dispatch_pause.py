"""A transport paused by an operator: real `check_and_send` passes through the modem
simulator send nothing through it, still receive, do not run pass after pass for
the messages left waiting, and `smss status` says so; with several transports the
others take over what only prefers the paused one."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from support_dispatch import site
from test_routing import run_pass, texts, transports_of, two_modems  # noqa: F401 - fixture

from smss.store import transports
from smss.store.database import connect


def _pause(db_url: str, name: str, actor: str = "web:alice") -> None:
    conn = connect(db_url)
    try:
        with conn.transaction():
            assert transports.pause(conn, name, actor)
    finally:
        conn.close()


def _resume(db_url: str, name: str) -> None:
    conn = connect(db_url)
    try:
        with conn.transaction():
            assert transports.resume(conn, name)
    finally:
        conn.close()


def _name(db_url: str) -> str:
    conn = connect(db_url)
    try:
        [status] = transports.all_status(conn)
        return status.name
    finally:
        conn.close()


def test_a_paused_modem_sends_nothing_but_still_receives(tmp_path):
    with site(tmp_path) as s:
        s.enqueue("+420608337726", "before the pause")
        assert s.run().returncode == 0, s.log()
        assert texts(s.sim) == ["before the pause"]
        name = _name(s.db_url)
        _pause(s.db_url, name)
        s.sim.control.reset_counts()
        s.enqueue("+420608337726", "while paused")
        s.sim.control.inject("+420777123456", "Ahoj, jak se máš?")
        result = s.run()
        assert result.returncode == 0, s.log()
        assert texts(s.sim) == ["before the pause"]  # nothing more went out
        assert [row[0] for row in s.rows("msg", "text")] == ["while paused"]
        assert [row[0] for row in s.rows("rcv", "text")] == ["Ahoj, jak se máš?"]
        assert f"{name} is paused (by web:alice): sending nothing through it" in s.log()
        # A pass that received runs once more (something may have come meanwhile); then
        # it stops instead of running pass after pass for the message left waiting.
        listings = sum(count for command, count in s.sim.control.counts().items()
                       if "CMGL" in command)
        assert listings == 2, s.sim.control.counts()

        status = subprocess.run([sys.executable, "-m", "smss.cli", "-c", s.config_path,
                                 "status"], capture_output=True, text=True, timeout=60)
        assert f"transport {name}: ok" in status.stdout
        assert "paused by web:alice since" in status.stdout
        assert "sends nothing through it (it still receives)" in status.stdout

        _resume(s.db_url, name)
        assert s.run().returncode == 0, s.log()
        assert texts(s.sim) == ["before the pause", "while paused"]
        assert f"{name} is no longer paused" not in s.log()  # a new process: nothing to say
        status = subprocess.run([sys.executable, "-m", "smss.cli", "-c", s.config_path,
                                 "status"], capture_output=True, text=True, timeout=60)
        assert "paused" not in status.stdout


def test_the_loop_waits_instead_of_spinning_while_paused(tmp_path):
    with site(tmp_path, settings={"dispatcher": {"poll_interval": "30"}}) as s:
        s.enqueue("+420608337726", "first")
        assert s.run().returncode == 0, s.log()
        _pause(s.db_url, _name(s.db_url))
        s.enqueue("+420608337726", "waits")
        s.sim.control.reset_counts()
        loop = s.start("--loop")
        try:
            deadline = time.monotonic() + 60
            while "is paused" not in s.log():
                assert time.monotonic() < deadline, s.log()
                assert loop.poll() is None
                time.sleep(0.1)
            # Several seconds of a paused transport with a due message: the loop waits
            # for a kick or its poll interval (30 s), it does not list the SIM again.
            time.sleep(3)
            listings = sum(count for command, count in s.sim.control.counts().items()
                           if "CMGL" in command)
            assert listings <= 2, s.sim.control.counts()
            assert texts(s.sim) == ["first"]
        finally:
            loop.terminate()
            loop.wait(30)


def test_other_transports_take_over_what_prefers_a_paused_one(two_modems):  # noqa: F811
    server, first, second = two_modems
    server.send(b"#608337726;warm up\n")
    assert run_pass(server).returncode == 0  # both transports report once
    warm_up_by_second = texts(second)  # (whichever transport was free first sent it)
    _pause(server.db_url, "gsm2")
    server.send(b"#777123456;prefers gsm2\n#608337726@gsm2;pinned to gsm2\n")
    result = run_pass(server)
    assert result.returncode == 0, result.stderr  # paused is not a failure
    assert sorted(texts(first) + texts(second)) == ["prefers gsm2", "warm up"]
    assert texts(second) == warm_up_by_second  # nothing through gsm2 while paused
    assert [row[2] for row in server.queued()] == ["pinned to gsm2"]  # waits for gsm2
    _resume(server.db_url, "gsm2")
    assert run_pass(server).returncode == 0
    assert texts(second) == sorted(warm_up_by_second + ["pinned to gsm2"])
    assert transports_of(server)["prefers gsm2"] == "gsm1"


@pytest.mark.parametrize("changes", [0, 1])
def test_samples_are_kept_at_changes_and_every_few_minutes_and_pruned(tmp_path, changes):
    from datetime import timedelta

    from smss.store import migrations
    from smss.store.database import utcnow

    conn = connect(f"sqlite://{tmp_path}/smss.db")
    try:
        migrations.prepare(conn)
        old = utcnow() - transports.KEEP_SAMPLES - timedelta(hours=1)
        with conn.transaction():
            conn.execute("INSERT INTO transport_sample (name, at, state) VALUES (?, ?, ?)",
                         ("gsm1", old, "ok")).close()
        transports.save(conn, "gsm1", "ok", signal_dbm=-70)
        transports.save(conn, "gsm1", "ok", signal_dbm=-71)  # same state, too soon: no sample
        if changes:
            conn.execute("UPDATE transport_sample SET at = ?",
                         (utcnow() - transports.SAMPLE_CHANGE_GAP,)).close()
            transports.save(conn, "gsm1", "down", error="modem not answering")
        rows = transports.samples(conn, "gsm1", utcnow() - timedelta(days=60))
        assert [(r.state, r.signal_dbm) for r in rows] == [("ok", -70)] + (
            [("down", None)] if changes else [])
        assert [r.error for r in transports.recent_errors(conn, "gsm1")] == (
            ["modem not answering"] if changes else [])
    finally:
        conn.close()
