"""check_and_send when the database fails or the pass is killed: nothing lost, nothing
sent twice because of it, nothing deleted from the SIM that was not committed.

The outage tests stop a private MariaDB of their own (the session one is shared).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter

import pymysql
import pytest
from support_dispatch import site
from support_mariadb import MariaDB
from support_tools import missing

from check_and_send.ledger import DeleteLedger, fingerprint
from smss.store.database import utcnow
from smss.transports.base import InboundMessage


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s")


@pytest.fixture(scope="module")
def own_mariadb(tmp_path_factory):
    """A MariaDB server these tests may stop and start."""
    try:
        server = MariaDB(str(tmp_path_factory.mktemp("own-mariadb")))
    except RuntimeError as exc:
        missing(str(exc))
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def outage_db(own_mariadb):
    """A fresh database on the private server; the server is running again afterwards."""
    url = own_mariadb.create_database()
    yield url
    if own_mariadb.process is None:
        own_mariadb.start()


def sent_texts(s):
    return Counter(part["text"] for part in s.sim.control.sent())


def stored_texts(s):
    """Inbound SMS on the SIM (status reports of what was sent may come and go)."""
    return [item["decoded"]["text"] for item in s.sim.control.storage()
            if item["kind"] == "deliver"]


def journal_of(tmp_path):
    return tmp_path / "state" / "check_and_send.lock.journal"


def test_database_down_at_start_sends_and_deletes_nothing(tmp_path, own_mariadb, outage_db):
    with site(tmp_path, outage_db) as s:
        ids = [s.enqueue("+420608337726", f"queued {i}") for i in range(2)]
        s.sim.control.inject("+420777123456", "arrived before the outage")
        assert stored_texts(s) == ["arrived before the outage"]
        own_mariadb.stop()

        result = s.run()
        assert result.returncode == 1, s.log()
        assert "database" in s.log()
        assert s.sim.control.sent() == []
        assert stored_texts(s) == ["arrived before the outage"]  # never stored: still there
        assert not os.path.exists(f"{tmp_path}/check_and_send.lock")

        own_mariadb.start()
        assert s.run().returncode == 0, s.log()
        assert s.rows("sms", "id, status, attempts") == [(i, "sent", 1) for i in ids]
        assert sent_texts(s) == Counter({"queued 0": 1, "queued 1": 1})
        assert s.rows("rcv", "phone, text") == [("+420777123456", "arrived before the outage")]
        assert stored_texts(s) == []


def test_database_lost_during_a_send_is_journaled_and_never_resent(tmp_path, own_mariadb,
                                                                  outage_db):
    with site(tmp_path, outage_db, latency=2.0) as s:
        ids = [s.enqueue("+420608337726", f"outage {i}") for i in range(3)]
        holder = s.start()
        [(started,)] = wait_for(
            lambda: s.rows("msg", "id", "WHERE send_started_at IS NOT NULL"),
            what="first send started")
        assert started == ids[0]
        own_mariadb.stop(kill=True)  # the send is in flight: its +CMGS answer is 2 s away
        s.sim.control.inject("+420777123456", "arrived during the outage")

        assert holder.wait(timeout=60) == 1, s.log()
        log = s.log()
        assert f"outcome of message {ids[0]} kept in" in log
        journal = journal_of(tmp_path).read_text()
        assert f'"id": {ids[0]}' in journal and '"status": "sent"' in journal
        assert sent_texts(s) == Counter({"outage 0": 1})  # the pass stopped at the outage
        assert stored_texts(s) == ["arrived during the outage"]

        own_mariadb.start()
        assert s.run().returncode == 0, s.log()
        assert f"applied journaled outcome of message {ids[0]}" in s.log()
        assert not journal_of(tmp_path).exists()
        assert s.rows("msg") == []
        assert s.rows("sms", "id, status, attempts") == [(i, "sent", 1) for i in ids]
        assert sent_texts(s) == Counter({f"outage {i}": 1 for i in range(3)})
        assert s.rows("rcv", "text") == [("arrived during the outage",)]
        assert stored_texts(s) == []


def _database_name(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path.lstrip("/")


def test_inbound_stays_on_the_sim_until_its_row_is_committed(tmp_path, own_mariadb, outage_db):
    """The database dies while the pass is storing an inbound SMS: it stays on the SIM."""
    with site(tmp_path, outage_db) as s:
        s.sim.control.inject("+420777123456", "store me first")
        blocker = pymysql.connect(unix_socket=own_mariadb.socket, user="root",
                                  database=_database_name(outage_db), autocommit=True)
        try:
            with blocker.cursor() as cursor:
                cursor.execute("LOCK TABLES rcv WRITE")  # the pass's INSERT waits here
            holder = s.start()

            def inserting():
                with blocker.cursor() as cursor:
                    cursor.execute("SELECT info FROM information_schema.processlist"
                                   " WHERE user = 'smss' AND info LIKE 'INSERT INTO rcv%%'")
                    return cursor.fetchall()

            wait_for(inserting, what="the pass storing the SMS")
            own_mariadb.stop(kill=True)
        finally:
            try:
                blocker.close()
            except pymysql.err.Error:
                pass
        assert holder.wait(timeout=60) == 1, s.log()
        assert stored_texts(s) == ["store me first"]

        own_mariadb.start()
        assert s.rows("rcv") == []
        assert s.run().returncode == 0, s.log()
        assert s.rows("rcv", "phone, text") == [("+420777123456", "store me first")]
        assert stored_texts(s) == []


@pytest.fixture(params=["sqlite", "mysql"])
def db_url(request, tmp_path):
    if request.param == "mysql":
        return request.getfixturevalue("mariadb").create_database()
    return f"sqlite://{tmp_path}/smss.db"


def test_kill_9_at_random_moments_loses_nothing_and_duplicates_only_in_the_window(
        tmp_path, db_url):
    rng = random.Random(4)
    texts = [f"kill test {i}" for i in range(8)]
    with site(tmp_path, db_url, latency=0.6) as s:
        ids = {s.enqueue("+420608337726", text): text for text in texts}
        kills = 0
        in_flight: Counter = Counter()  # message id -> kills that caught its send started
        for _ in range(12):
            if not s.rows("msg"):
                break
            process = s.start()
            time.sleep(rng.uniform(0.3, 3.0))
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                kills += 1
            process.wait()
            for (message_id,) in s.rows("msg", "id", "WHERE send_started_at IS NOT NULL"):
                in_flight[message_id] += 1
            if kills >= 6:
                break
        assert kills >= 2 and in_flight, "no kill landed while a message was being sent"

        assert s.run().returncode == 0, s.log()
        assert s.rows("msg") == []
        rows = s.rows("sms", "id, text, status, attempts")
        assert sorted(r[0] for r in rows) == sorted(ids)
        assert {r[2] for r in rows} == {"sent"}

        counts = sent_texts(s)
        assert set(counts) == set(texts)  # every message reached the network
        duplicates = {message_id: counts[text] - 1 for message_id, text in ids.items()
                      if counts[text] > 1}
        assert sum(duplicates.values()) <= kills
        log = s.log()
        attempts = {r[0]: r[3] for r in rows}
        for message_id, extra in duplicates.items():
            # only a message whose send had started when a pass died, and never more
            # often than passes died in the middle of sending it
            assert extra <= in_flight[message_id], (message_id, duplicates, in_flight)
            assert (f"message {message_id}: dispatcher died while sending; "
                    "the message may have been sent") in log
            assert attempts[message_id] >= 1 + extra


def test_a_long_pass_that_keeps_sending_is_not_cut_off_mid_send(tmp_path):
    """pass_timeout catches a hung modem; a pass that sends one message after another
    for longer than that is working, and stopping it in an AT+CMGS would resend one."""
    with site(tmp_path, settings={"dispatcher": {"pass_timeout": "3"}}, latency=1.0) as s:
        ids = [s.enqueue("+420608337726", f"long pass {i}") for i in range(5)]
        result = s.run()
        assert result.returncode == 0, s.log()
        assert "may have been sent" not in s.log()
        assert sent_texts(s) == Counter({f"long pass {i}": 1 for i in range(5)})
        assert s.rows("sms", "id, attempts") == [(i, 1) for i in ids]


def test_an_sms_whose_delete_failed_is_not_stored_twice(tmp_path):
    """The link drops at AT+CMGD, after the rcv row was committed: the next pass finds
    the SMS on the SIM again and must delete it without a second rcv row (and without
    a second on_receive run)."""
    with site(tmp_path) as s:
        s.sim.control.inject("+420777123456", "delete me once")
        s.sim.control.inject("+420777123456", "delete me once")  # a real second SMS
        s.sim.control.set_fault("drop", at="command", command="+CMGD", count=1)
        s.run()
        assert s.rows("rcv", "text") == [("delete me once",)]
        assert stored_texts(s) == ["delete me once"] * 2  # the delete did not happen
        assert s.run().returncode == 0, s.log()
        assert s.rows("rcv", "text") == [("delete me once",)] * 2
        assert stored_texts(s) == []


def test_a_noted_sms_without_its_row_is_stored(tmp_path):
    """A pass died after noting an SMS in the delete ledger and before its commit:
    the note alone must not make the next pass delete it unstored."""
    with site(tmp_path) as s:
        s.sim.control.inject("+420777123456", "noted, never stored")
        [item] = s.sim.control.storage()
        message = InboundMessage(handles=(item["index"],), phone="+420777123456",
                                 text="noted, never stored")
        DeleteLedger(f"{tmp_path}/state/check_and_send.lock.deleting").note(
            fingerprint(f"modem:{s.sim.url}", message), utcnow())
        assert s.run().returncode == 0, s.log()
        assert s.rows("rcv", "text") == [("noted, never stored",)]
        assert stored_texts(s) == []
        assert not os.path.exists(f"{tmp_path}/state/check_and_send.lock.deleting")
