"""``check_and_send --loop``: one open modem, passes on kicks and on +CMTI, a clean stop.

poll_interval is 60 s in every test, and every wait here is much shorter than
that: what arrives did not wait for the poll.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from datetime import timedelta

import pytest
from support_dispatch import site
from support_mariadb import MariaDB
from support_tools import missing

from smss.store.database import utcnow

POLL = {"dispatcher": {"poll_interval": "60"}}


def wait_for(predicate, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s")


def texts_sent(s):
    return [part["text"] for part in s.sim.control.sent()]


@pytest.fixture
def loop_site(tmp_path):
    """A site with ``check_and_send --loop`` running; stopped (and checked) afterwards."""
    with site(tmp_path, settings=POLL) as s:
        s.lock = f"{tmp_path}/check_and_send.lock"
        s.loop = s.start("--loop")
        wait_for(lambda: "--loop started" in s.log(), what="the loop starting")
        wait_for(lambda: "modem on" in s.log() and "ready" in s.log(), what="the modem open")
        try:
            yield s
        finally:
            if s.loop.poll() is None:
                s.loop.kill()
                s.loop.wait()


def stop(s, timeout=30):
    s.loop.send_signal(signal.SIGTERM)
    return s.loop.wait(timeout=timeout)


def test_loop_sends_on_kicks_with_one_initialisation(loop_site):
    s = loop_site
    s.enqueue("+420608337726", "first")
    os.kill(s.loop.pid, signal.SIGUSR1)  # as the server's kick does
    wait_for(lambda: texts_sent(s) == ["first"], what="first sent after SIGUSR1")

    s.enqueue("+420608337726", "second")
    kicked = s.run()  # a plain run finds the lock held: it pokes the holder, exits 0
    assert kicked.returncode == 0, kicked.stderr
    assert "asked it to look again" in s.log()
    wait_for(lambda: texts_sent(s) == ["first", "second"], what="second sent after a run")

    s.enqueue("+420608337726", "third")
    os.kill(s.loop.pid, signal.SIGUSR1)
    wait_for(lambda: len(texts_sent(s)) == 3, what="third sent")

    counts = s.sim.control.counts()
    assert counts.get("ATZ") == 1, counts  # initialised once, the modem stayed open
    assert counts.get("AT+CMGS") == 3
    assert s.loop.poll() is None
    assert stop(s) == 0
    assert not os.path.exists(s.lock)
    assert "check_and_send --loop stopped" in s.log()
    assert s.rows("msg") == [] and len(s.rows("sms")) == 3


def test_loop_receives_on_cmti_without_waiting_for_the_poll(loop_site):
    s = loop_site
    time.sleep(1)  # let the first pass finish: the loop is idle, waiting
    s.sim.control.inject("+420777123456", "read me now")
    rows = wait_for(lambda: s.rows("rcv", "phone, text"), what="the SMS in rcv")
    assert rows == [("+420777123456", "read me now")]
    wait_for(lambda: not [i for i in s.sim.control.storage() if i["kind"] == "deliver"],
             what="the SMS deleted from the SIM")
    assert s.sim.control.counts().get("ATZ") == 1
    assert stop(s) == 0


def test_loop_stops_on_sigterm_and_releases_the_lock(loop_site):
    s = loop_site
    assert os.path.exists(s.lock)
    assert stop(s) == 0
    assert not os.path.exists(s.lock)
    # the next dispatcher takes the lock at once
    s.enqueue("+420608337726", "after the loop")
    assert s.run().returncode == 0, s.log()
    assert texts_sent(s) == ["after the loop"]


def test_loop_reopens_the_modem_after_a_link_drop(loop_site):
    s = loop_site
    s.enqueue("+420608337726", "before the drop")
    os.kill(s.loop.pid, signal.SIGUSR1)
    wait_for(lambda: texts_sent(s) == ["before the drop"], what="first message sent")

    s.sim.control.set_fault("drop", at="now")
    wait_for(lambda: s.sim.control.counts().get("ATZ", 0) >= 2, timeout=20,
             what="the loop re-opening the modem on its own")
    s.sim.control.inject("+420777123456", "after the drop")
    wait_for(lambda: s.rows("rcv", "text") == [("after the drop",)], what="SMS received")

    s.enqueue("+420608337726", "after the drop too")
    os.kill(s.loop.pid, signal.SIGUSR1)
    wait_for(lambda: texts_sent(s) == ["before the drop", "after the drop too"],
             what="a message sent after the drop")
    assert s.loop.poll() is None
    assert stop(s) == 0
    assert s.rows("msg") == []


def test_sigterm_while_waiting_for_the_rate_limit_stops_at_once(tmp_path):
    settings = {"dispatcher": {"poll_interval": "60"},
                "modem": {"name": "limited", "rate_limit": "1"}}
    with site(tmp_path, settings=settings) as s:
        conn = s.connect()
        with conn.transaction():
            moment = utcnow() - timedelta(seconds=5)  # the window stays full for 55 s
            conn.execute("INSERT INTO sms (id, phone, text, status, sent_at, parts, client,"
                         " created_at, attempts, transport, refs) VALUES"
                         " (900001, '+420608337726', 'earlier', 'sent', ?, 1, '', ?, 1,"
                         " 'limited', '')", (moment, moment)).close()
        conn.close()
        message = s.enqueue("+420608337726", "waits for its slot")
        loop = s.start("--loop")
        try:
            wait_for(lambda: "rate limit:" in s.log(), what="the loop waiting for a slot")
            loop.send_signal(signal.SIGTERM)
            assert loop.wait(timeout=15) == 0  # not after the 55 s wait
        finally:
            if loop.poll() is None:
                loop.kill()
                loop.wait()
        assert not os.path.exists(f"{tmp_path}/check_and_send.lock")
        assert s.rows("msg", "id, attempts, claimed_by") == [(message, 0, None)]
        assert s.sim.control.sent() == []


def test_sigterm_during_a_send_finishes_that_message_and_keeps_the_rest(tmp_path):
    """A pass told to stop (shutdown, systemctl stop) ends after the message in the modem,
    so no message is left "may have been sent"."""
    with site(tmp_path, latency=1.5) as s:
        ids = [s.enqueue("+420608337726", f"terminated {i}") for i in range(3)]
        process = s.start()
        wait_for(lambda: s.rows("msg", "id", "WHERE send_started_at IS NOT NULL"),
                 what="the first send started")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, s.log()
        assert s.rows("sms", "id, attempts") == [(ids[0], 1)]
        assert s.rows("msg", "id, attempts, claimed_by") == [(i, 0, None) for i in ids[1:]]
        assert s.run().returncode == 0, s.log()
        assert "may have been sent" not in s.log()
        assert Counter(texts_sent(s)) == Counter(f"terminated {i}" for i in range(3))


def db_failures(log):
    """The dispatcher's own attempts (not the outbox worker's lines in the same log)."""
    log = "\n".join(line for line in log.splitlines() if "smss.events.worker" not in line)
    return log.count("database unavailable") + log.count("cannot open mysql")


@pytest.fixture(scope="module")
def own_mariadb(tmp_path_factory):
    """A MariaDB server this file may stop and start."""
    try:
        server = MariaDB(str(tmp_path_factory.mktemp("loop-mariadb")))
    except RuntimeError as exc:
        missing(str(exc))
    server.start()
    yield server
    server.cleanup()


def test_loop_outlives_a_database_outage(tmp_path, own_mariadb):
    url = own_mariadb.create_database()
    try:
        with site(tmp_path, url, settings=POLL) as s:
            loop = s.start("--loop")
            try:
                wait_for(lambda: "--loop started" in s.log(), what="the loop starting")
                s.enqueue("+420608337726", "before the outage")
                os.kill(loop.pid, signal.SIGUSR1)
                wait_for(lambda: texts_sent(s) == ["before the outage"], what="first sent")

                own_mariadb.stop(kill=True)
                os.kill(loop.pid, signal.SIGUSR1)  # a pass now finds the database gone
                wait_for(lambda: db_failures(s.log()), what="the failed pass")
                s.sim.control.inject("+420777123456", "during the outage")
                time.sleep(3)  # failing attempts meanwhile back off: 1 s, 2 s, ...
                assert db_failures(s.log()) <= 4, s.log()  # not a busy loop
                own_mariadb.start()

                s.enqueue("+420608337726", "after the outage")
                os.kill(loop.pid, signal.SIGUSR1)
                wait_for(lambda: texts_sent(s) == ["before the outage", "after the outage"],
                         timeout=30, what="sent after the outage")
                wait_for(lambda: s.rows("rcv", "text") == [("during the outage",)],
                         what="the SMS from the outage stored")
                assert loop.poll() is None
                loop.send_signal(signal.SIGTERM)
                assert loop.wait(timeout=30) == 0
            finally:
                if loop.poll() is None:
                    loop.kill()
                    loop.wait()
    finally:
        if own_mariadb.process is None:
            own_mariadb.start()
