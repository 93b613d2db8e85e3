"""The windowed path stays durable while it batches its bookkeeping (``check_and_send.windowed``),
with real processes: ``check_and_send`` against node-smpp as the SMSC, on SQLite and MariaDB.

- Nothing is submitted before its "sending" mark is committed: the dispatcher's own
  transactions are held just before their commit (``HeldCommits``) while the SMSC
  records when each submit_sm arrives; none may be of a message whose mark is being held.
  A dispatcher that hands a message to the transport before its mark's commit returned
  fails this (it was tried).
- kill -9 at random moments of a windowed drain: right after each kill the test notes the
  messages marked "sending" and still claimed (the documented "maybe sent" window).  In the
  end every message is in ``sms`` once, sent; a message reached the SMSC more than once
  only if it was in that window at a kill, at most once more per such kill, and never more
  often than the attempts counted for it.
- The database failing in the middle of a batch: the outcomes of what went out are
  journaled, and the next pass records them without sending anything again.
"""

from __future__ import annotations

import collections
import random
import re
import signal
import sqlite3
import threading
import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Set, Tuple

import pymysql
import pytest
from support_dispatch import Site
from support_smsc import Smsc, require_node

from check_and_send.dispatcher import Dispatcher, Settings
from smss.smpp.settings import SmppSettings
from smss.store import migrations, queue
from smss.store.database import DatabaseUrl, connect
from smss.transports.smpp import SmppTransport

PHONE = "+420608337726"


@pytest.fixture(scope="module")
def smsc_process() -> Iterator[Smsc]:
    require_node()
    smsc = Smsc(timeout=60)
    yield smsc
    smsc.close()


@pytest.fixture
def smsc(smsc_process: Smsc) -> Smsc:
    smsc_process.reset()
    return smsc_process


def smpp_site(tmp_path, smsc: Smsc, db_url: str, **smpp) -> Site:
    values = {"url": smsc.url, "spool": f"{tmp_path}/smpp-inbox", "response_timeout": "10",
              "reconnect_delay": "0.1", "window": "10", "registered_delivery": "no"}
    values.update(smpp)
    return Site(tmp_path, db_url, None, {
        "dispatcher": {"transport": "smpp", "poll_interval": "60", "loglevel": "INFO",
                       "max_attempts": "20"},
        "smpp": values})


def enqueue(site: Site, count: int) -> Dict[str, int]:
    """``count`` messages "m<N>"; returns text -> id."""
    conn = site.connect()
    try:
        texts = [f"m{n}" for n in range(count)]
        with conn.transaction():
            ids = queue.insert(conn, [queue.NewMessage(PHONE, text) for text in texts])
    finally:
        conn.close()
    return dict(zip(texts, ids))


def taken_submits(smsc: Smsc) -> List[dict]:
    return [e for e in smsc.events("submit_sm") if e["status"] == 0]


class WriteLock:
    """Holds the database's write lock for a while, so no transaction can commit, and
    reads what is committed meanwhile (on a connection of its own)."""

    def __init__(self, db_url: str) -> None:
        self.url = DatabaseUrl.parse(db_url)
        if self.url.dialect == "sqlite":
            self.raw = sqlite3.connect(self.url.path, isolation_level=None, timeout=30,
                                       check_same_thread=False)
        else:
            self.raw = pymysql.connect(unix_socket=self.url.unix_socket, user=self.url.user,
                                       password=self.url.password, database=self.url.database,
                                       autocommit=True)

    def take(self) -> Set[int]:
        """Lock; returns the messages whose mark is committed (marked, or already in sms)."""
        if self.url.dialect == "sqlite":
            self.raw.execute("BEGIN IMMEDIATE")
            rows = self.raw.execute("SELECT id FROM msg WHERE send_started_at IS NOT NULL"
                                    " UNION SELECT id FROM sms").fetchall()
        else:
            with self.raw.cursor() as cursor:
                cursor.execute("FLUSH TABLES WITH READ LOCK")
                cursor.execute("SELECT id FROM msg WHERE send_started_at IS NOT NULL"
                               " UNION SELECT id FROM sms")
                rows = cursor.fetchall()
        return {int(row[0]) for row in rows}

    def release(self) -> None:
        if self.url.dialect == "sqlite":
            self.raw.execute("ROLLBACK")
        else:
            with self.raw.cursor() as cursor:
                cursor.execute("UNLOCK TABLES")

    def close(self) -> None:
        self.raw.close()


class HeldCommits:
    """The dispatcher's real connection, with a hold just before a transaction commits:
    every third transaction that claimed messages (and so marked them "sending") waits
    ``HOLD`` seconds there, its statements done and its marks not yet committed, and
    notes (from, to, the ids it marked) in ms.  The only thing added to the real parts:
    a commit cannot be held from outside without holding the statements before it."""

    HOLD = 0.2

    def __init__(self, conn) -> None:
        self._conn = conn
        self.holds: List[Tuple[float, float, Set[int]]] = []
        self._claims = 0
        self._marked: Set[int] = set()  # claimed (and marked) in the open transaction

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def query(self, sql: str, params=()) -> list:
        rows = self._conn.query(sql, params)
        if "WHERE claimed_by IS NULL AND next_attempt_at <= ?" in sql:  # queue.claim_rows
            self._marked |= {int(row[0]) for row in rows}
        return rows

    @contextmanager
    def transaction(self):
        self._marked = set()
        with self._conn.transaction():
            yield self
            if self._marked:
                self._claims += 1
                if self._claims % 3 == 2:
                    start = time.time() * 1000
                    time.sleep(self.HOLD)
                    self.holds.append((start, time.time() * 1000, set(self._marked)))


def test_nothing_is_submitted_before_its_mark_is_committed(tmp_path, smsc: Smsc,
                                                           database_url: str):
    """The windowed path in this process (a real database, node-smpp over TCP): while a
    transaction that marked messages is held before its commit, the SMSC must get no
    submit_sm of those messages, though it goes on getting those marked before."""
    count = 600
    conn = connect(database_url)
    migrations.prepare(conn)
    with conn.transaction():
        ids = queue.insert(conn, [queue.NewMessage(PHONE, f"m{n}") for n in range(count)])
    texts = {f"m{n}": message_id for n, message_id in enumerate(ids)}
    transport = SmppTransport(SmppSettings(
        host=smsc.host, port=smsc.port, system_id="smss", password="secret", window=10,
        spool=str(tmp_path / "inbox"), registered_delivery=False))
    settings = Settings(batch_size=20, journal=str(tmp_path / "journal"),
                        ledger=str(tmp_path / "ledger"))
    held = HeldCommits(conn)
    dispatcher = Dispatcher(held, transport, settings)
    smsc.set(respDelayMs=10)  # slower than the bookkeeper: marked messages wait their turn
    try:
        report = dispatcher.run_pass()
    finally:
        dispatcher.close()
        conn.close()
    assert report.ok and report.sent == count, report
    submits = smsc.wait_events("submit_sm", count)
    during = 0
    for start, end, fresh in held.holds:
        for event in submits:
            if start < event["t"] < end:
                during += 1
                assert texts[event["text"]] not in fresh, (event, start, end)
    assert held.holds, "no transaction with new marks was held: the test proves nothing"
    assert during > 0, "nothing was submitted during a hold: the test proves nothing"
    assert sorted(collections.Counter(e["text"] for e in submits).values()) == [1] * count


def claimed_and_marked(db_url: str) -> Set[int]:
    url = DatabaseUrl.parse(db_url)
    sql = "SELECT id FROM msg WHERE claimed_by IS NOT NULL AND send_started_at IS NOT NULL"
    if url.dialect == "sqlite":
        raw = sqlite3.connect(url.path, timeout=30)
        try:
            return {int(row[0]) for row in raw.execute(sql).fetchall()}
        finally:
            raw.close()
    raw = pymysql.connect(unix_socket=url.unix_socket, user=url.user, password=url.password,
                          database=url.database, autocommit=True)
    try:
        with raw.cursor() as cursor:
            cursor.execute(sql)
            return {int(row[0]) for row in cursor.fetchall()}
    finally:
        raw.close()


def test_kill_9_mid_batch_sends_each_message_once_or_in_the_window(tmp_path, smsc: Smsc,
                                                                   database_url: str):
    seed = random.randrange(1 << 30)
    chance = random.Random(seed)
    count = 4000
    site = smpp_site(tmp_path, smsc, database_url)
    ids = enqueue(site, count)
    smsc.set(respDelayMs=2)  # a little time in flight, so kills find submits there
    windows: List[Set[int]] = []  # claimed and marked right after each kill
    kills = 0
    while kills < 6 and len(site.rows("sms", "id")) < count:
        before = len(smsc.events("submit_sm"))
        loop = site.start("--loop")  # a pass at once: the queue is due
        deadline = time.monotonic() + 60
        while len(smsc.events("submit_sm")) == before:  # sending now
            assert time.monotonic() < deadline and loop.poll() is None, site.log()[-3000:]
            time.sleep(0.005)
        time.sleep(chance.uniform(0.0, 0.3))
        loop.send_signal(signal.SIGKILL)
        loop.wait(30)
        kills += 1
        windows.append(claimed_and_marked(site.db_url))
    assert kills >= 3, f"the queue drained before the kills (seed {seed})"
    assert any(windows), f"no kill found a message in flight (seed {seed})"
    done = site.run()  # the pass after the kills finishes the queue
    assert done.returncode == 0, site.log()[-3000:]
    rows = site.rows("sms", "id, status, attempts")
    assert len(rows) == count and {r[1] for r in rows} == {"sent"}, (seed, rows[:5])
    attempts = {r[0]: r[2] for r in rows}
    submits = collections.Counter(e["text"] for e in taken_submits(smsc))
    in_window = collections.Counter(i for window in windows for i in window)
    twice = 0
    for text, message_id in ids.items():
        times = submits[text]
        assert times >= 1, (seed, text)
        assert times <= 1 + in_window[message_id], (seed, text, times, in_window[message_id])
        assert times <= attempts[message_id], (seed, text, times, attempts[message_id])
        twice += times > 1
    # the window is what was in flight or awaiting its group commit at a kill: small
    assert all(len(window) <= 2000 for window in windows), [len(w) for w in windows]
    assert "may have been sent" in site.log()
    print(f"seed {seed}: {kills} kills, windows {[len(w) for w in windows]}, "
          f"{twice} sent twice")


def test_database_failing_mid_batch_journals_the_outcomes(tmp_path, smsc: Smsc):
    """SQLite locked by another writer for longer than the dispatcher waits (its busy
    timeout, [database] connect_timeout): the round's transaction fails, the outcomes of
    what the SMSC took are journaled, and nothing more is submitted; the next pass applies
    the journal first and sends only what had not gone."""
    count = 2000
    site = smpp_site(tmp_path, smsc, f"sqlite://{tmp_path}/smss.db")
    site.write_config(database={"connect_timeout": "1"})
    ids = enqueue(site, count)
    smsc.set(respDelayMs=1)
    lock = WriteLock(site.db_url)
    holding = threading.Event()

    def lock_soon():
        deadline = time.monotonic() + 60
        while not smsc.events("submit_sm") and time.monotonic() < deadline:
            time.sleep(0.005)
        lock.take()
        holding.set()
        time.sleep(3)  # longer than the busy timeout
        lock.release()

    locker = threading.Thread(target=lock_soon)
    locker.start()
    first = site.run()
    locker.join()
    lock.close()
    assert holding.is_set()
    assert first.returncode == 1, site.log()[-3000:]
    assert "database unavailable" in site.log()
    journal = site.log()
    assert re.search(r"outcomes of messages [\d, ]+ are kept in", journal), journal[-3000:]
    second = site.run()
    assert second.returncode == 0, site.log()[-3000:]
    assert "applied journaled outcome" in site.log()
    rows = site.rows("sms", "id, status")
    assert len(rows) == count and {r[1] for r in rows} == {"sent"}
    submits = collections.Counter(e["text"] for e in taken_submits(smsc))
    assert set(submits) == set(ids)
    assert sorted(submits.values()) == [1] * count, [t for t, n in submits.items() if n > 1]


def test_a_pause_while_the_queue_drains_stops_the_claims(tmp_path, smsc: Smsc):
    """An operator pauses the SMPP transport in the middle of a windowed drain: the
    bookkeeper claims nothing more (it looks every PAUSE_CHECK_EVERY), what was already
    marked goes out, the rest stays queued unclaimed; after the resume the next pass
    sends the rest, each message once."""
    from smss.store import transports

    count = 2000
    site = smpp_site(tmp_path, smsc, f"sqlite://{tmp_path}/smss.db")
    ids = enqueue(site, count)
    smsc.set(respDelayMs=50)  # window 10: about 200 a second, a drain of some 10 s
    name = f"smpp:smss@{smsc.host}:{smsc.port}"  # the transport's name ([smpp] name unset)

    def pause_soon():
        deadline = time.monotonic() + 60
        while not smsc.events("submit_sm") and time.monotonic() < deadline:
            time.sleep(0.005)
        conn = site.connect()
        try:
            with conn.transaction():
                transports.pause(conn, name, "web:alice")
        finally:
            conn.close()

    pauser = threading.Thread(target=pause_soon)
    pauser.start()
    first = site.run()
    pauser.join()
    assert first.returncode == 0, site.log()[-3000:]
    assert "is paused (by web:alice)" in site.log()
    sent_first = len(site.rows("sms", "id"))
    left = site.rows("msg", "id, claimed_by, send_started_at")
    assert 0 < sent_first < count and len(left) == count - sent_first
    assert all(claimed is None and started is None for _, claimed, started in left), left[:5]
    conn = site.connect()
    try:
        with conn.transaction():
            transports.resume(conn, name)
    finally:
        conn.close()
    assert site.run().returncode == 0, site.log()[-3000:]
    assert len(site.rows("sms", "id")) == count and not site.rows("msg", "id")
    submits = collections.Counter(e["text"] for e in taken_submits(smsc))
    assert set(submits) == set(ids) and set(submits.values()) == {1}
