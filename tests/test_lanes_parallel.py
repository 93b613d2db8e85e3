"""One dispatcher process drives every transport at the same time (check_and_send.lanes).

Each test runs the real ``check_and_send`` against simulated modems, one simulator
per ``[transport:NAME]``.  The simulators tell when each AT+CMGS body arrived
(``timestamp``) and when it was answered (``answered``); two modems' sends that
overlap in time show the lanes run in parallel, whatever the durations.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from contextlib import ExitStack, contextmanager

import pytest
from support_dispatch import Loop, Site
from support_sim import running_simulator
from support_wait import wait_for

from smss.store import queue

LOCK_SECONDS = 1  # innodb_lock_wait_timeout in one test


class ModemsSite(Site):
    """A queue database, one simulated modem per ``[transport:gsmN]``, and check_and_send."""

    def __init__(self, folder, db_url, sims, dispatcher=None, transports=None,
                 database=None) -> None:
        self.sims = sims
        self.names = [f"gsm{n}" for n in range(1, len(sims) + 1)]
        self.dispatcher = dispatcher or {}
        self.transports = transports or {}
        self.database = database or {}
        super().__init__(folder, db_url, None, {})

    def write_config(self, **overrides) -> None:
        dispatcher = {"lockfile": f"{self.folder}/check_and_send.lock",
                      "state_dir": f"{self.folder}/state", "logfile": self.log_path,
                      "loglevel": "DEBUG", "retry_delay": "0", "poll_interval": "60",
                      **self.dispatcher}
        sections = {"database": {"url": self.db_url, **self.database}, "dispatcher": dispatcher}
        for name, sim in zip(self.names, self.sims):
            sections[f"transport:{name}"] = {
                "type": "modem", "device": sim.url, "pin_guard_file": f"{self.folder}/pins-{name}",
                "command_timeout": "3", "send_timeout": "10", "register_timeout": "3",
                **self.transports.get(name, {})}
        with open(self.config_path, "w", encoding="utf-8") as handle:
            for section, values in sections.items():
                handle.write(f"[{section}]\n")
                for key, value in values.items():
                    handle.write(f"{key} = {value}\n")

    def enqueue_routed(self, text: str, route=None, phone="+420608337726") -> int:
        conn = self.connect()
        try:
            with conn.transaction():
                return queue.insert(conn, [queue.NewMessage(phone, text, route=route)])[0]
        finally:
            conn.close()

    def sent(self, name):
        return self.sims[self.names.index(name)].control.sent()

    def texts(self, name):
        return Counter(record["text"] for record in self.sent(name))


@contextmanager
def modems(tmp_path, db_url=None, count=2, latency=0, **site_options):
    db_url = db_url or f"sqlite://{tmp_path}/smss.db"
    with ExitStack() as stack:
        sims = [stack.enter_context(running_simulator(pty=False, latency=latency, seed=n))
                for n in range(count)]
        yield ModemsSite(tmp_path, db_url, sims, **site_options)


def overlapping(first, second):
    """Pairs of sends, one per modem, that were in the network at the same moment."""
    return [(a["text"], b["text"]) for a in first for b in second
            if a["timestamp"] < b["answered"] and b["timestamp"] < a["answered"]]


@pytest.mark.parametrize("mode", ["one-shot", "loop"])
def test_two_modems_send_at_the_same_time(tmp_path, database_url, mode):
    texts = [f"parallel {i}" for i in range(6)]
    with modems(tmp_path, database_url, latency=1.0) as s:
        ids = {s.enqueue_routed(text): text for text in texts}
        if mode == "one-shot":
            result = s.run()
            assert result.returncode == 0, s.log()
        else:
            loop = Loop(s)
            try:
                wait_for(lambda: not s.rows("msg"), what="the queue empty")
            finally:
                assert loop.stop() == 0
        first, second = s.sent("gsm1"), s.sent("gsm2")
        assert s.texts("gsm1") + s.texts("gsm2") == Counter(texts)  # each once, none twice
        assert first and second, "one modem sent everything"
        assert overlapping(first, second), (first, second)
        rows = s.rows("sms", "id, status, transport, attempts")
        assert sorted(r[0] for r in rows) == sorted(ids)
        for message_id, status, transport, attempts in rows:
            assert (status, attempts) == ("sent", 1)
            assert s.texts(transport)[ids[message_id]] == 1, (message_id, transport)
        assert "may have been sent" not in s.log()
        states = dict(s.rows("transport_status", "name, state"))
        assert states == {"gsm1": "ok", "gsm2": "ok"}  # each lane reports its own state


def test_a_hung_modem_never_holds_the_others_back(tmp_path):
    """gsm2 stops answering in the middle of an AT+CMGS (its own timeouts far away): gsm1
    sends what comes meanwhile; gsm2's pass_timeout gives gsm2 up alone (its message
    released, counted as maybe sent), and gsm2 sends it once it answers again."""
    with modems(tmp_path, dispatcher={"pass_timeout": "20"},
                transports={"gsm2": {"send_timeout": "300"}}) as s:
        hung_sim = s.sims[1]
        hung_sim.control.set_fault("hang", at="body")
        stuck = s.enqueue_routed("stuck in gsm2", route="gsm2")
        loop = Loop(s)
        try:
            wait_for(lambda: hung_sim.control.status()["hung"], what="gsm2 hanging")
            others = [s.enqueue_routed(f"through gsm1 {i}", route="gsm1") for i in range(3)]
            loop.kick()
            wait_for(lambda: not s.rows("msg", "id", f"WHERE id IN ({','.join(map(str, others))})"),
                     what="gsm1 sending while gsm2 hangs")
            assert "without progress" not in s.log()  # gsm2 still hung: nobody waited for it
            assert s.texts("gsm1") == Counter(f"through gsm1 {i}" for i in range(3))

            wait_for(lambda: "gsm2: pass ran longer than 20s without progress" in s.log(),
                     what="the watchdog giving gsm2 up")
            wait_for(lambda: s.rows("msg", "id, attempts, claimed_by")
                     == [(stuck, 1, None)], what="gsm2's claim released")
            hung_sim.control.clear_fault("hang")
            wait_for(lambda: s.rows("sms", "id, transport", f"WHERE id = {stuck}")
                     == [(stuck, "gsm2")], what="gsm2 sending again")
        finally:
            assert loop.stop() == 0
        assert not os.path.exists(f"{tmp_path}/check_and_send.lock")
        assert "gsm1: pass ran longer" not in s.log()


def test_failover_while_a_lane_is_down_and_back(tmp_path):
    """--loop with gsm2 down (no network): what prefers gsm2 goes through gsm1 at once,
    what is pinned to gsm2 waits; once gsm2 is back both go through gsm2 again."""
    with modems(tmp_path) as s:
        s.sims[1].control.set_fault("no_network", stat=0)
        loop = Loop(s)
        try:
            wait_for(lambda: "re-opening gsm2" in s.log(), what="gsm2 down")
            preferred = s.enqueue_routed("prefers gsm2", route="~gsm2")
            pinned = s.enqueue_routed("pinned to gsm2", route="gsm2")
            loop.kick()
            wait_for(lambda: s.texts("gsm1") == Counter(["prefers gsm2"]),
                     what="gsm1 taking over")
            assert [r[0] for r in s.rows("msg", "id")] == [pinned]
            states = dict(s.rows("transport_status", "name, state"))
            assert states["gsm1"] == "ok" and states["gsm2"] != "ok"
            s.sims[1].control.clear_fault("no_network")
            wait_for(lambda: s.texts("gsm2") == Counter(["pinned to gsm2"]),
                     what="gsm2 back, sending its pinned message")
            wait_for(lambda: dict(s.rows("transport_status", "name, state"))["gsm2"] == "ok",
                     what="gsm2 reported up")
            again = s.enqueue_routed("prefers gsm2 again", route="~gsm2")
            loop.kick()
            wait_for(lambda: s.texts("gsm2")["prefers gsm2 again"] == 1, what="gsm2 preferred")
        finally:
            assert loop.stop() == 0
        assert dict(s.rows("sms", "id, transport")) == {
            preferred: "gsm1", pinned: "gsm2", again: "gsm2"}


def test_a_kick_wakes_only_the_lane_that_has_work(tmp_path):
    with modems(tmp_path) as s:
        loop = Loop(s)
        try:
            wait_for(lambda: all(s.sims[n].control.counts().get("AT+CMGL") for n in (0, 1)),
                     what="both lanes' first pass")
            idle_reads = s.sims[1].control.counts()["AT+CMGL"]
            message = s.enqueue_routed("for gsm1 only", route="gsm1")
            loop.kick()
            wait_for(lambda: s.rows("sms", "id") == [(message,)], what="gsm1 sending")
            wait_for(lambda: s.sims[0].control.counts()["AT+CMGL"] > 1, what="gsm1's pass ended")
        finally:
            assert loop.stop() == 0
        assert s.sims[1].control.counts()["AT+CMGL"] == idle_reads  # gsm2 did not pass


def test_sigterm_ends_every_lane_after_its_current_message(tmp_path):
    """Both lanes in the middle of an AT+CMGS: each finishes that message and stops; the
    rest stays queued, unclaimed, no attempt counted, nothing "may have been sent"."""
    with modems(tmp_path, latency=1.5) as s:
        ids = [s.enqueue_routed(f"stopping {i}") for i in range(8)]
        process = s.start()
        wait_for(lambda: len(s.rows("msg", "id", "WHERE send_started_at IS NOT NULL")) == 2,
                 what="both lanes sending")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, s.log()
        sent_rows = s.rows("sms", "id")
        assert len(sent_rows) >= 2
        assert len(s.sent("gsm1")) + len(s.sent("gsm2")) == len(sent_rows)
        assert s.rows("msg", "id, attempts, claimed_by, send_started_at") == [
            (i, 0, None, None) for i in ids if (i,) not in sent_rows]
        assert not os.path.exists(f"{tmp_path}/check_and_send.lock")
        assert "may have been sent" not in s.log()


def test_a_journaled_outcome_keeps_its_claim_so_no_other_lane_resends_it(tmp_path, mariadb):
    """Both lanes sending; one lane's send is confirmed but its commit fails (the test
    holds the row lock past innodb_lock_wait_timeout): the outcome goes to the journal.
    The message must stay claimed until the journal is applied: released, the other
    lane would claim it at its next message and send it a second time."""
    url = mariadb.create_database()
    texts = [f"busy {i}" for i in range(12)]
    with modems(tmp_path, url, latency=0.3) as s:
        admin = s.connect()
        [(old_timeout,)] = admin.read().query("SELECT @@GLOBAL.innodb_lock_wait_timeout")
        admin.read().execute(f"SET GLOBAL innodb_lock_wait_timeout = {LOCK_SECONDS}").close()
        journal = f"{tmp_path}/state/check_and_send.lock.journal"
        try:
            for text in texts:
                s.enqueue_routed(text)
            loop = Loop(s)
            try:
                while not os.path.exists(journal):
                    assert s.rows("msg"), "the queue ran dry before a send could be caught"
                    candidates = s.rows("msg", "id", "WHERE send_started_at IS NOT NULL")
                    if not candidates:
                        time.sleep(0.02)
                        continue
                    with admin.transaction():  # that one row's lock, by its primary key
                        if admin.query("SELECT id FROM msg WHERE id = ? AND send_started_at"
                                       " IS NOT NULL FOR UPDATE", (candidates[0][0],)):
                            wait_for(lambda: os.path.exists(journal), what="an outcome journaled")
                wait_for(lambda: not s.rows("msg"), what="the queue empty")
                wait_for(lambda: not os.path.exists(journal), what="the journal applied")
            finally:
                assert loop.stop() == 0
        finally:
            admin.read().execute(f"SET GLOBAL innodb_lock_wait_timeout = {old_timeout}").close()
            admin.close()
        assert "kept in" in s.log()
        assert s.texts("gsm1") + s.texts("gsm2") == Counter(texts)  # none twice
        assert s.rows("sms", "attempts") == [(1,)] * len(texts)


def test_lanes_expiring_at_the_same_time_expire_each_message_once(tmp_path, database_url):
    """Every lane's pass starts by expiring old messages; two lanes doing that at once
    must not both move one message to ``sms`` (nor fail on the second row)."""
    with modems(tmp_path, database_url, dispatcher={"expire_after": "60"}) as s:
        conn = s.connect()
        with conn.transaction():
            old = queue.insert(conn, [queue.NewMessage("+420608337726", f"stale {i}")
                                      for i in range(300)])
            conn.execute("UPDATE msg SET created_at = '2020-01-01 00:00:00.000000'").close()
        conn.close()
        fresh = s.enqueue_routed("fresh")
        result = s.run()
        assert result.returncode == 0, s.log()
        assert s.rows("sms", "id, status") == [(i, "expired") for i in old] + [(fresh, "sent")]
        assert s.texts("gsm1") + s.texts("gsm2") == Counter(["fresh"])
        assert "Traceback" not in s.log()


def test_a_one_shot_run_is_not_held_back_by_a_hung_modem(tmp_path):
    """gsm2 hangs in an AT+CMGS of the message that prefers it: gsm1 sends the rest
    meanwhile, then, once gsm2's pass_timeout gave gsm2 up, also that message (maybe
    sent: its attempt counted).  The run reports the failure (exit 1), nothing claimed."""
    with modems(tmp_path, dispatcher={"pass_timeout": "5"},
                transports={"gsm2": {"send_timeout": "300"}}) as s:
        s.sims[1].control.set_fault("hang", at="body")
        held = s.enqueue_routed("prefers gsm2", route="~gsm2")  # gsm2's first claim
        others = [s.enqueue_routed(f"one shot {i}") for i in range(3)]
        result = s.run()
        assert result.returncode == 1, s.log()
        assert "gsm2: pass ran longer than 5s without progress" in s.log()
        assert s.texts("gsm1") == Counter(["prefers gsm2"] + [f"one shot {i}" for i in range(3)])
        assert s.texts("gsm2") == Counter()
        assert dict(s.rows("sms", "id, attempts")) == {held: 2, **{i: 1 for i in others}}
        assert s.rows("msg") == []
        assert not os.path.exists(f"{tmp_path}/check_and_send.lock")
