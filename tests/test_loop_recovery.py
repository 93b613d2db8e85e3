"""``check_and_send --loop`` through outages: its own claims come back, a database outage
leaves the modem open, and the re-open backoff of an unreachable device is bounded and
starts over once the device opened again.  Lanes of one process never take each
other's live claims.

The outage tests stop a private MariaDB of their own (the session one is shared).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections import Counter

import pytest
from support_dispatch import Loop, site
from support_mariadb import MariaDB
from support_sim import running_simulator

from check_and_send.dispatcher import Dispatcher, Settings
from smss import transports
from smss.config import parse_text
from smss.store import migrations, queue
from smss.store.database import connect

POLL = {"dispatcher": {"poll_interval": "60"}}


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s")


def sent_texts(s):
    return Counter(part["text"] for part in s.sim.control.sent())


@pytest.fixture(scope="module")
def own_mariadb(tmp_path_factory):
    """A MariaDB server these tests may stop and start."""
    try:
        server = MariaDB(str(tmp_path_factory.mktemp("recovery-mariadb")))
    except RuntimeError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def outage_db(own_mariadb):
    url = own_mariadb.create_database()
    yield url
    if own_mariadb.process is None:
        own_mariadb.start()


def test_loop_recovers_its_own_claims_after_a_database_outage(tmp_path, own_mariadb,
                                                               outage_db):
    """The database dies while the loop sends a batch: the claims it could not release
    are its own, and it must take them back once the database returns."""
    with site(tmp_path, outage_db, settings=POLL, latency=2.0) as s:
        ids = [s.enqueue("+420608337726", f"claimed {i}") for i in range(3)]
        loop = Loop(s)
        try:
            loop.kick()
            wait_for(lambda: s.rows("msg", "id", "WHERE send_started_at IS NOT NULL"),
                     what="the first send started")
            own_mariadb.stop(kill=True)  # its +CMGS answer is 2 s away
            wait_for(lambda: re.search(r"could not release \d+ claim\(s\)", s.log()),
                     what="the pass ending with claims it could not release")
            own_mariadb.start()
            wait_for(lambda: s.rows("msg") == [], timeout=60,
                     what="every message sent after the outage")
            assert s.rows("sms", "id, status, attempts") == [(i, "sent", 1) for i in ids]
            assert sent_texts(s) == Counter({f"claimed {i}": 1 for i in range(3)})
            assert "may have been sent" not in s.log()  # only claimed, never started
            assert loop.process.poll() is None
        finally:
            assert loop.stop() == 0


def test_a_database_outage_leaves_the_modem_open(tmp_path, own_mariadb, outage_db):
    with site(tmp_path, outage_db, settings=POLL) as s:
        loop = Loop(s)
        try:
            wait_for(lambda: "ready" in s.log(), what="the modem open")
            s.enqueue("+420608337726", "before the outage")
            loop.kick()
            wait_for(lambda: sent_texts(s) == Counter({"before the outage": 1}), what="sent")
            own_mariadb.stop(kill=True)
            loop.kick()
            wait_for(lambda: "reconnecting to the database in" in s.log(),
                     what="the loop noticing the outage")
            time.sleep(4)  # several reconnect attempts
            own_mariadb.start()
            s.enqueue("+420608337726", "after the outage")
            loop.kick()
            wait_for(lambda: sent_texts(s)["after the outage"] == 1, timeout=60,
                     what="sent after the outage")
            counts = s.sim.control.counts()
            assert counts.get("ATZ") == 1, counts  # the modem was never closed
            pauses = [float(x) for x in re.findall(r"reconnecting to the database in "
                                                   r"([\d.]+)s", s.log())]
            assert pauses and max(pauses) <= 5, pauses  # a bounded pause of seconds
            assert "re-opening" not in s.log()
        finally:
            assert loop.stop() == 0


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again: connecting is refused


def reopen_pauses(log):
    return [float(x) for x in re.findall(r"re-opening \S+ in ([\d.]+)s", log)]


def test_reopen_backoff_never_exceeds_its_maximum(tmp_path):
    settings = {"dispatcher": {"poll_interval": "60", "reopen_max_delay": "2"}}
    with site(tmp_path, settings=settings, modem=False) as s:
        s.write_config(modem={"device": f"socket://127.0.0.1:{closed_port()}",
                              "command_timeout": "1"})
        loop = Loop(s)
        try:
            wait_for(lambda: len(reopen_pauses(s.log())) >= 5, timeout=60,
                     what="five failed opens")
            assert reopen_pauses(s.log())[:5] == [1, 2, 2, 2, 2]
        finally:
            assert loop.stop() == 0


def test_reopen_backoff_starts_over_once_the_device_opened(tmp_path):
    """The link drops at every read of the SIM three times over: each time the modem had
    opened again, so each pause is the first one."""
    with site(tmp_path, settings=POLL) as s:
        s.sim.control.set_fault("drop", at="command", command="+CMGL", count=3)
        loop = Loop(s)
        try:
            wait_for(lambda: len(reopen_pauses(s.log())) >= 3, timeout=60,
                     what="three drops")
            wait_for(lambda: s.sim.control.counts().get("ATZ", 0) >= 4, what="opened again")
            assert reopen_pauses(s.log())[:3] == [1, 1, 1]
            s.enqueue("+420608337726", "after the drops")
            loop.kick()
            wait_for(lambda: sent_texts(s) == Counter({"after the drops": 1}), what="sent")
        finally:
            assert loop.stop() == 0


def test_a_lane_recovers_its_own_abandoned_claims_and_never_a_live_lane_s(tmp_path):
    """Two lanes of one process (one Dispatcher per transport, as check_and_send.lanes
    builds them), each with its own connection as lanes in threads will have: while gsm2
    is in the middle of sending, gsm1's pass must leave gsm2's claims alone, and take
    back the claims gsm1 itself left behind (a release that failed)."""
    db_url = f"sqlite://{tmp_path}/smss.db"
    with running_simulator(pty=False) as first, \
            running_simulator(pty=False, latency=1.5) as second:
        common = ("command_timeout = 3\nsend_timeout = 10\nregister_timeout = 3\n")
        config = parse_text(
            f"[database]\nurl = {db_url}\n"
            f"[dispatcher]\nlockfile = {tmp_path}/cas.lock\nstate_dir = {tmp_path}\n"
            f"retry_delay = 0\n"
            f"[transport:gsm1]\ntype = modem\ndevice = {first.url}\n"
            f"pin_guard_file = {tmp_path}/pins1\n{common}"
            f"[transport:gsm2]\ntype = modem\ndevice = {second.url}\n"
            f"pin_guard_file = {tmp_path}/pins2\n{common}")
        setup = connect(db_url)
        migrations.prepare(setup)

        def lane(name):
            seen = config.for_transport(name)
            dispatcher = Dispatcher(connect(db_url), transports.from_config(seen),
                                    Settings.from_config(seen, name))
            dispatcher.claim_routes = [name]
            return dispatcher

        gsm1, gsm2 = lane("gsm1"), lane("gsm2")
        assert gsm1.owner != gsm2.owner
        with setup.transaction():
            left = queue.insert(setup, [queue.NewMessage("+420608337726", f"left {i}",
                                                         route="gsm1") for i in range(2)])
        assert [m.id for m in queue.claim(setup, gsm1.owner, 10, ["gsm1"])] == left
        with setup.transaction():
            slow = queue.insert(setup, [queue.NewMessage("+420608337726", f"slow {i}",
                                                         route="gsm2") for i in range(3)])
        reports = []
        sending = threading.Thread(target=lambda: reports.append(gsm2.run_pass()))
        sending.start()
        try:
            wait_for(lambda: [row for row in queue.claims(setup) if row[1].started],
                     what="gsm2 sending")
            report = gsm1.run_pass()
            claims = dict(queue.claims(setup))
            assert report.recovered == 2  # its own, left behind
            assert {i: claims[i].owner for i in slow if i in claims} == {
                i: gsm2.owner for i in slow if i in claims}
            assert claims, "gsm2 finished before gsm1's pass looked"
        finally:
            sending.join(timeout=60)
            for dispatcher in (gsm1, gsm2):
                dispatcher.close()
                dispatcher.conn.close()
        assert reports and reports[0].ok and reports[0].sent == 3
        assert sorted(t["text"] for t in first.control.sent()) == ["left 0", "left 1"]
        assert sorted(t["text"] for t in second.control.sent()) == [f"slow {i}" for i in range(3)]
        rows = setup.read().query("SELECT id, attempts FROM sms ORDER BY id")
        assert [tuple(r) for r in rows] == [(i, 1) for i in left + slow]
        setup.close()
