"""Claims are leases ([dispatcher] claim_lease): a claim its dispatcher stopped renewing is
taken over by any dispatcher, on any host, whether its owner died or lost the database;
a dispatcher that keeps working renews what it holds (also during a send longer than a
lease) and is never taken over; a dispatcher never sends, nor records the outcome of, a
message whose claim another one took over (fencing).

Real MariaDB (the session server), the modem simulator, ``check_and_send`` processes.
"Another host" is an owner id naming another host, forced on an in-process dispatcher
(``Dispatcher.owner``) or written into ``msg.claimed_by``; a dispatcher cut off from the
database talks to it through a socat relay the test takes away.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
from collections import Counter

import pytest
from support_dispatch import Loop, Site, site
from support_tools import missing
from support_wait import wait_for

from check_and_send import windowed
from check_and_send.dispatcher import Dispatcher, Settings
from check_and_send.lease import Lease
from smss import transports
from smss.config import load
from smss.store import queue
from smss.store.database import connect

PHONE = "+420608337726"


def sent_texts(s):
    return Counter(part["text"] for part in s.sim.control.sent())


def need_socat() -> None:
    if shutil.which("socat") is None:
        missing("socat is not installed (Debian package socat)")


class Relay:
    """A socat relay to the MariaDB socket: ``cut`` takes it away with every connection
    through it (the database is gone for whoever uses it, not for the others)."""

    def __init__(self, path: str, target: str) -> None:
        self.path, self.target = path, target
        self.process = None

    def start(self) -> None:
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.process = subprocess.Popen(
            ["socat", f"UNIX-LISTEN:{self.path},fork", f"UNIX-CONNECT:{self.target}"],
            start_new_session=True)
        wait_for(lambda: os.path.exists(self.path), what="the relay listening")

    def cut(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)  # the relay and its connections
            self.process.wait()
            self.process = None


def in_process(s, owner: str) -> Dispatcher:
    """A dispatcher of ``s``'s configuration in this process, claiming as ``owner``."""
    config = load(s.config_path)
    dispatcher = Dispatcher(connect(s.db_url), transports.from_config(config),
                            Settings.from_config(config))
    dispatcher.owner = owner
    return dispatcher


def test_a_loop_cut_off_from_the_database_is_taken_over_once_its_lease_ran_out(
        tmp_path, mariadb):
    """A live ``--loop`` loses the database in the middle of a batch (its relay is cut:
    the process runs on and holds its claims).  Another dispatcher on the same database
    takes them over once the lease ran out and sends each; the message whose send had
    started counts an attempt (the documented "maybe sent" window) and goes out again.
    When the first loop gets its database back, it records nothing twice."""
    need_socat()
    url = mariadb.create_database()
    relay = Relay(str(tmp_path / "relay.sock"), mariadb.socket)
    relay.start()
    cut_off_url = url.replace(f"unix_socket={mariadb.socket}", f"unix_socket={relay.path}")
    lease = {"claim_lease": "3", "poll_interval": "60"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    try:
        with site(tmp_path / "a", cut_off_url, settings={"dispatcher": lease},
                  latency=2.0) as a, \
                site(tmp_path / "b", url, settings={
                    "dispatcher": dict(lease, poll_interval="0.5")}) as b:
            ids = [b.enqueue(PHONE, f"batch {i}") for i in range(3)]
            first = Loop(a)
            try:
                first.kick()
                wait_for(lambda: a.rows("msg", "id", "WHERE send_started_at IS NOT NULL"),
                         what="the first send started")
                relay.cut()  # its +CMGS answer is 2 s away
                wait_for(lambda: re.search(r"could not release \d+ claim\(s\)", a.log()),
                         what="the pass ending with claims it could not release")
                assert first.process.poll() is None
                second = Loop(b)
                try:
                    wait_for(lambda: b.rows("msg") == [], what="every message sent by the"
                             " second dispatcher")
                    assert b.rows("sms", "id, status, attempts") == [
                        (ids[0], "sent", 2), (ids[1], "sent", 1), (ids[2], "sent", 1)]
                    assert sent_texts(b) == Counter({f"batch {i}": 1 for i in range(3)})
                    assert sent_texts(a) == Counter({"batch 0": 1})  # maybe sent: it was
                    assert re.search(rf"message {ids[0]}: claim of \S+ taken over .*may have"
                                     " been sent", b.log())
                    assert "may have been sent" not in re.sub(
                        rf"message {ids[0]}: [^\n]*", "", b.log())
                finally:
                    assert second.stop() == 0
                journal = tmp_path / "a" / "state" / "check_and_send.lock.journal"
                assert journal.exists()  # the outcome of its send of batch 0
                relay.start()  # the first loop gets its database back
                first.kick()
                wait_for(lambda: not journal.exists(), what="the first loop replaying its"
                         " journal")
                assert b.rows("sms", "id, status, attempts") == [
                    (ids[0], "sent", 2), (ids[1], "sent", 1), (ids[2], "sent", 1)]
                assert sent_texts(a) == Counter({"batch 0": 1})
                assert first.process.poll() is None
            finally:
                assert first.stop() == 0
    finally:
        relay.cut()


def test_a_dispatcher_that_keeps_working_on_a_long_batch_is_never_taken_over(
        tmp_path, mariadb):
    """A dispatcher of another host sends a batch of three through a slow modem (4 s each,
    longer than the 3 s lease) while a ``--loop`` on this host looks for abandoned claims
    every half second: the leases are renewed, between the messages and during each send,
    so nothing is taken over and each message goes out once, through the slow modem."""
    url = mariadb.create_database()
    lease = {"claim_lease": "3", "claim_timeout": "3"}  # (claim_timeout: ignored now)
    (tmp_path / "slow").mkdir()
    (tmp_path / "watcher").mkdir()
    with site(tmp_path / "slow", url, settings={"dispatcher": lease}, latency=4.0) as slow, \
            site(tmp_path / "watcher", url, settings={
                "dispatcher": dict(lease, poll_interval="0.5")}) as watcher:
        ids = [slow.enqueue(PHONE, f"slow {i}") for i in range(3)]
        dispatcher = in_process(slow, "elsewhere.example:4242")
        loop = Loop(watcher)
        reports = []
        try:
            sending = threading.Thread(target=lambda: reports.append(dispatcher.run_pass()))
            sending.start()
            sending.join(timeout=120)
            assert not sending.is_alive()
        finally:
            dispatcher.close()
            dispatcher.conn.close()
            assert loop.stop() == 0
        assert reports and reports[0].ok and reports[0].sent == 3, reports
        assert slow.rows("sms", "id, status, attempts") == [(i, "sent", 1) for i in ids]
        assert sent_texts(slow) == Counter({f"slow {i}": 1 for i in range(3)})
        assert sent_texts(watcher) == Counter()
        assert not re.search(r"message \d+: (took over|claim of)", watcher.log())
        assert "claim_timeout is ignored" in watcher.log()


def test_a_claim_taken_over_under_a_dispatcher_s_feet_is_neither_sent_nor_recorded_by_it(
        tmp_path, mariadb):
    """While the dispatcher sends the first message of its batch, another dispatcher takes
    both claims over (what its recovery and claim leave in ``msg``).  The second message
    is not sent (its sending mark is conditional on the claim); the first one was already
    on its way (the "maybe sent" case): its outcome is not recorded over the other's
    claim, and nothing crashes."""
    url = mariadb.create_database()
    with site(tmp_path, url, latency=2.0) as s:
        ids = [s.enqueue(PHONE, f"fenced {i}") for i in range(2)]
        dispatcher = in_process(s, "here.example:1")
        reports = []
        sending = threading.Thread(target=lambda: reports.append(dispatcher.run_pass()))
        sending.start()
        try:
            wait_for(lambda: s.rows("msg", "id", "WHERE send_started_at IS NOT NULL"),
                     what="the first send started")
            conn = s.connect()
            with conn.transaction():  # its +CMGS answer is 2 s away
                conn.execute("UPDATE msg SET claimed_by = 'elsewhere.example:9',"
                             " claimed_at = UTC_TIMESTAMP(6), send_started_at = NULL").close()
            conn.close()
        finally:
            sending.join(timeout=60)
            dispatcher.close()
            dispatcher.conn.close()
        assert reports and reports[0].ok, reports
        assert sent_texts(s) == Counter({"fenced 0": 1})
        assert s.rows("msg", "id, attempts, claimed_by") == [
            (i, 0, "elsewhere.example:9") for i in ids]
        assert s.rows("sms") == []


def test_another_host_s_claim_is_taken_over_once_its_lease_ran_out_and_not_before(
        tmp_path, mariadb):
    """Claims of a host that is gone: the one renewed 31 s ago (by the database's clock)
    is taken over at the next pass, counting an attempt because its send had started;
    the one renewed just now is left alone."""
    url = mariadb.create_database()
    with site(tmp_path, url) as s:
        stale, fresh = (s.enqueue(PHONE, text) for text in ("stale", "fresh"))
        conn = s.connect()
        assert len(queue.claim(conn, "gone.example:77", 2)) == 2
        with conn.transaction():
            conn.execute("UPDATE msg SET claimed_at = UTC_TIMESTAMP(6) - INTERVAL 31 SECOND,"
                         " send_started_at = UTC_TIMESTAMP(6) WHERE id = ?", (stale,)).close()
        conn.close()
        dispatcher = in_process(s, "here.example:2")
        try:
            report = dispatcher.run_pass()
        finally:
            dispatcher.close()
            dispatcher.conn.close()
        assert report.ok and report.recovered == 1 and report.sent == 1, report
        assert s.rows("sms", "id, status, attempts") == [(stale, "sent", 2)]
        assert s.rows("msg", "id, attempts, claimed_by") == [(fresh, 0, "gone.example:77")]
        assert sent_texts(s) == Counter({"stale": 1})


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_renew_keeps_only_the_claims_still_held(backend, tmp_path, request):
    url = (request.getfixturevalue("mariadb").create_database() if backend == "mysql"
           else f"sqlite://{tmp_path}/smss.db")
    with site(tmp_path, url, modem=False) as s:
        ids = [s.enqueue(PHONE, f"m{i}") for i in range(3)]
        conn = s.connect()
        try:
            queue.claim(conn, "mine:1", 3)
            with conn.transaction():
                conn.execute("UPDATE msg SET claimed_by = 'theirs:2' WHERE id = ?",
                             (ids[1],)).close()
            with conn.transaction():
                assert queue.renew(conn, "mine:1", ids) == [ids[0], ids[2]]
                assert queue.owners(conn, ids + [999]) == {
                    ids[0]: "mine:1", ids[1]: "theirs:2", ids[2]: "mine:1"}
            assert not queue.mark_sending(conn, ids[1], "mine:1")
            assert queue.mark_sending(conn, ids[0], "mine:1")
            with conn.transaction():
                queue.release_rows(conn, ids, "mine:1")
            assert {i: c.owner for i, c in queue.claims(conn)} == {ids[1]: "theirs:2"}
        finally:
            conn.close()


def test_claim_lease_must_be_positive_and_claim_timeout_still_loads():
    from smss.config import ConfigError, parse_text

    assert parse_text("").get("dispatcher", "claim_lease") == 30
    assert parse_text("[dispatcher]\nclaim_timeout = 60\n").get("dispatcher",
                                                                 "claim_lease") == 30
    with pytest.raises(ConfigError, match="claim_lease: must be more than 0"):
        parse_text("[dispatcher]\nclaim_lease = 0\n")


def test_the_pipeline_drops_marked_messages_whose_claims_were_taken_over(tmp_path, mariadb):
    """The windowed path (SMPP, GoIP) marks messages ahead of the transport.  Once its
    leases are no longer fresh it hands none out until a round renewed them; that round
    finds two taken over by another dispatcher, which are never handed to the transport,
    and closing the pipeline leaves the other's claims alone."""
    url = mariadb.create_database()
    s = Site(tmp_path, url, None, {"dispatcher": {"transport": "smpp"},
                                    "smpp": {"url": "smpp://smss:pw@127.0.0.1:9"}})
    ids = [s.enqueue(PHONE, f"ahead {i}") for i in range(3)]
    dispatcher = in_process(s, "here.example:3")
    now = [0.0]
    pipeline = windowed.Pipeline(dispatcher, 3)
    pipeline.lease = Lease(3.0, clock=lambda: now[0])
    pipeline.lease.renewed(0.0)
    pipeline.start()
    try:
        wait_for(lambda: s.rows("msg", "id", "WHERE send_started_at IS NOT NULL")
                 == [(i,) for i in ids], what="three messages marked ahead")
        conn = s.connect()
        with conn.transaction():
            conn.execute("UPDATE msg SET claimed_by = 'elsewhere.example:9',"
                         " claimed_at = UTC_TIMESTAMP(6) WHERE id <> ?", (ids[0],)).close()
        conn.close()
        now[0] = 3.5  # not renewed for a whole lease (a stalled round, say): the feed
        # hands nothing out until the bookkeeper renewed, which finds two taken over
        handed = [message_id for message_id, _, _ in pipeline.feed()]
    finally:
        left = pipeline.close(transport_done=True)
        dispatcher.conn.close()
    assert handed == [ids[0]]
    assert left == [] and pipeline.error is None
    assert s.rows("msg", "id, claimed_by") == [
        (ids[0], None), (ids[1], "elsewhere.example:9"), (ids[2], "elsewhere.example:9")]
