"""check_and_send with ``[dispatcher] transport = smpp`` against node-smpp as the SMSC: one-shot
passes (sent rows carry the submit_sm_resp ids, receipts mark them delivered, mobile-originated
messages land in rcv, a drop mid-batch is bound over) and ``--loop`` (one bind, kicks, incoming
messages wake it, a dropped connection costs nothing, an SMSC that drops every 8th PDU or takes
5 submits a second gets every message once, SIGTERM unbinds and is honoured during a throttle
pause and while binds are refused)."""

from __future__ import annotations

import collections
import os
import re
import signal
import time
from typing import Iterator

import pytest
from support_dispatch import Site
from support_smsc import Smsc, mo, require_node, ucs2

from smss.smpp import pdu as p

PHONE = "+420608337726"
LONG = "Dlouhá zpráva: " + "ěščřžýáíé " * 16  # 175 characters: 3 UCS2 parts


@pytest.fixture(scope="module")
def smsc_process() -> Iterator[Smsc]:
    require_node()
    smsc = Smsc()
    yield smsc
    smsc.close()


@pytest.fixture
def smsc(smsc_process: Smsc) -> Smsc:
    smsc_process.reset()
    return smsc_process


def smpp_site(tmp_path, smsc: Smsc, db_url=None, **smpp) -> Site:
    values = {"url": smsc.url, "spool": f"{tmp_path}/smpp-inbox", "response_timeout": "10",
              "reconnect_delay": "0.1"}
    values.update(smpp)
    return Site(tmp_path, db_url or f"sqlite://{tmp_path}/smss.db", None, {
        "dispatcher": {"transport": "smpp", "poll_interval": "60"}, "smpp": values})


def wait_for(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s")


def run(s: Site):
    done = s.run()
    assert done.returncode == 0, (done.stderr, s.log())
    return done


def test_one_shot_passes_send_record_ids_and_apply_receipts(tmp_path, smsc, database_url):
    smsc.set(receipts="after", idFormat="hex0", receiptTextId="dec", receiptTlv=False)
    s = smpp_site(tmp_path, smsc, database_url)
    first = s.enqueue(PHONE, "Ahoj ze SMPP")
    second = s.enqueue("+420777123456", LONG, parts=3)
    run(s)
    submits = smsc.wait_events("submit_sm", 4)
    rows = s.rows("sms", "id, phone, status, transport, refs")
    name = f"smpp:smss@127.0.0.1:{smsc.port}"
    ids = [e["message_id"].lstrip("0").lower() for e in submits]
    assert rows == [(first, PHONE, "sent", name, ids[0]),
                    (second, "+420777123456", "sent", name, ",".join(ids[1:]))]
    assert [e["text"] for e in submits[:1]] == ["Ahoj ze SMPP"]
    assert "".join(e["text"] for e in submits[1:]) == LONG
    assert s.rows("msg") == []
    # receipts come right after each answer: this pass or the next one applies them
    wait_for(lambda: (run(s), s.rows("sms", "delivery"))[1] == [("delivered",), ("delivered",)],
             what="all receipts applied")
    assert [r[0] for r in s.rows("sms_part", "reference")] == ids
    assert {r[0] for r in s.rows("sms_part", "delivery")} == {"delivered"}
    assert "bind_transceiver" in {e["command"] for e in smsc.events("bind")}
    assert len(smsc.events("unbind")) == len(smsc.events("bind"))  # every pass unbound


def test_receipt_before_the_answer_still_finds_its_row(tmp_path, smsc):
    smsc.set(receipts="before", respDelayMs=300)
    s = smpp_site(tmp_path, smsc)
    s.enqueue(PHONE, "fast receipt")
    run(s)
    wait_for(lambda: (run(s), s.rows("sms", "delivery"))[1] == [("delivered",)],
             what="the early receipt applied")
    assert "delivery report for unknown reference" not in s.log()


def test_incoming_messages_are_stored(tmp_path, smsc):
    s = smpp_site(tmp_path, smsc)
    smsc.deliver([mo(ucs2("Přijatá zpráva z GoIP")),  # waits at the SMSC for our bind
                  mo(bytes([0x48, 0x6F, 0x6A]).hex(), data_coding=0, sender="420777123456")])
    expected = [(PHONE, "Přijatá zpráva z GoIP", f"smpp:smss@127.0.0.1:{smsc.port}", None),
                ("+420777123456", "Hoj", f"smpp:smss@127.0.0.1:{smsc.port}", None)]
    # the SMSC sends them once we are bound: this pass stores them, or (if they came
    # after it read its inbox) the spool keeps them for the next one
    wait_for(lambda: (run(s), s.rows("rcv", "phone, text, transport, error"))[1] == expected,
             what="both stored")
    assert not os.path.getsize(f"{tmp_path}/smpp-inbox")  # stored, so removed from the spool


def test_wrong_password_exits_3_and_keeps_the_queue(tmp_path, smsc):
    s = smpp_site(tmp_path, smsc, password="nope")
    s.enqueue(PHONE, "kept")
    done = s.run()
    assert done.returncode == 3
    assert len(s.rows("msg")) == 1 and s.rows("sms") == []
    assert "ESME_RINVPASWD" in s.log()


def test_a_drop_mid_batch_is_bound_over_and_the_pass_goes_on(tmp_path, smsc):
    smsc.set(respDelayMs=1500)
    s = smpp_site(tmp_path, smsc, window="2")
    ids = [s.enqueue(PHONE, f"batch {n}") for n in range(5)]
    pass_ = s.start()
    smsc.wait_event("submit_sm", count=2)
    smsc.command("drop")
    assert pass_.wait(60) == 0  # bound again at once: not a failed pass
    assert [row[0] for row in s.rows("sms", "id")] == ids and s.rows("msg") == []
    # the two in flight when the link went may have been sent: an attempt each, sent again
    attempts = dict(s.rows("sms", "id, attempts"))
    assert sorted(attempts.values()) == [1, 1, 1, 2, 2]
    texts = [e["text"] for e in smsc.wait_events("submit_sm", 7)]
    assert sorted(texts) == sorted([f"batch {n}" for n in range(5)] + texts[:2])
    assert len(smsc.wait_events("bind", 2)) >= 2


def test_a_drop_mid_batch_with_binds_refused_keeps_every_message(tmp_path, smsc):
    smsc.set(respDelayMs=5000)
    s = smpp_site(tmp_path, smsc, window="2")
    ids = [s.enqueue(PHONE, f"batch {n}") for n in range(5)]
    pass_ = s.start()
    smsc.wait_event("submit_sm", count=2)
    smsc.set(bindStatus=p.ESME_RSYSERR)  # the SMSC takes no session now
    smsc.command("drop")
    assert pass_.wait(60) == 1  # the transport went down: cron mails it
    rows = s.rows("msg", "id, attempts, last_error, claimed_by")
    assert [row[0] for row in rows] == ids and s.rows("sms") == []
    in_flight = [row for row in rows if row[1] == 1]
    assert len(in_flight) == 2 and all("may have been sent" in row[2] for row in in_flight)
    assert [row[1] for row in rows if row not in in_flight] == [0, 0, 0]
    assert all(row[3] is None for row in rows)  # no claim left behind
    smsc.set(respDelayMs=0, bindStatus=0)
    run(s)
    assert [row[0] for row in s.rows("sms", "id")] == ids and s.rows("msg") == []
    texts = [e["text"] for e in smsc.wait_events("submit_sm", 7)]
    assert sorted(texts) == sorted([f"batch {n}" for n in range(5)] + texts[:2])


def test_loop_an_smsc_dropping_every_eighth_pdu_gets_every_message_once(tmp_path, smsc):
    """The SMSC closes the connection instead of processing every 8th PDU (tests/smsc):
    all 20 messages reach it exactly once, every drop is bound over within the pass, and
    no drop-to-bind gap is longer than reconnect_max_delay (plus a margin for a loaded
    machine).  The time it takes is printed by bench/smpp.py --drops."""
    smsc.set(dropEvery=8)
    s = smpp_site(tmp_path, smsc, window="10", reconnect_delay="0.5",
                  reconnect_max_delay="2", registered_delivery="no")
    loop = s.start("--loop")
    try:
        wait_for(lambda: "bound (SMSC nodesmsc)" in s.log(), what="the bind")
        for n in range(20):
            s.enqueue(PHONE, f"message {n:02}")
        os.kill(loop.pid, signal.SIGUSR1)
        wait_for(lambda: len(s.rows("sms", "id", "WHERE status = 'sent'")) == 20, timeout=120,
                 what="20 sent")
        taken = collections.Counter(e["text"] for e in smsc.wait_events("submit_sm", 20)
                                    if e["status"] == 0)
        assert taken == {f"message {n:02}": 1 for n in range(20)}
        drops = smsc.events("drop")
        assert len(drops) >= 3
        binds = smsc.events("bind")
        for drop in drops:
            after = [b["t"] for b in binds if b["t"] >= drop["t"]]
            assert after, f"no bind after the drop at {drop['t']}"
            assert (min(after) - drop["t"]) / 1000 <= 2 + 1.5
        assert "stopping this pass" not in s.log()  # no pass failed for a drop
    finally:
        stop_loop(loop)


def test_loop_an_smsc_taking_five_a_second_gets_every_message_once(tmp_path, smsc):
    """The SMSC takes 5 submit_sm a second, throttles the rest, and answers a fifth of
    what it takes ESME_RSYSERR (retried by the dispatcher): every message is taken once,
    and each throttle pause is throttle_delay (one per episode, never doubled).  The time
    it takes is printed by bench/smpp.py --throttled."""
    smsc.set(rate=5, errorShare=0.2)
    s = smpp_site(tmp_path, smsc, window="10", registered_delivery="no")
    loop = s.start("--loop")
    try:
        wait_for(lambda: "bound (SMSC nodesmsc)" in s.log(), what="the bind")
        for n in range(20):
            s.enqueue(PHONE, f"message {n:02}")
        os.kill(loop.pid, signal.SIGUSR1)
        wait_for(lambda: len(s.rows("sms", "id", "WHERE status = 'sent'")) == 20, timeout=120,
                 what="20 sent")
        smsc.wait_event("submit_sm", lambda e: e["status"] == 0, count=20)
        taken = collections.Counter(e["text"] for e in smsc.events("submit_sm")
                                    if e["status"] == 0)
        assert taken == {f"message {n:02}": 1 for n in range(20)}
        pauses = re.findall(r"throttled by the SMSC; pausing ([\d.]+)s", s.log())
        assert pauses and set(pauses) == {"1.00"}
        refused = [e for e in smsc.events("submit_sm") if e["status"] == p.ESME_RSYSERR]
        assert refused and "ESME_RSYSERR" in s.log()
    finally:
        stop_loop(loop)


def test_sigterm_during_a_throttle_pause_stops_at_once_and_leaves_no_claim(tmp_path, smsc):
    smsc.set(throttle=1)
    s = smpp_site(tmp_path, smsc, window="1", throttle_delay="600")
    ids = [s.enqueue(PHONE, f"m{n}") for n in range(3)]
    loop = s.start("--loop")
    try:
        smsc.wait_event("submit_sm")  # refused: a 600 s pause begins
        wait_for(lambda: "pausing 600.00s" in s.log(), what="the pause")
        loop.send_signal(signal.SIGTERM)
        assert loop.wait(30) == 0  # within the pause: it did not wait it out
    finally:
        if loop.poll() is None:
            loop.kill()
            loop.wait()
    rows = s.rows("msg", "id, attempts, claimed_by, send_started_at")
    assert rows == [(n, 0, None, None) for n in ids]  # nothing was taken: no attempt, no claim
    assert len(smsc.events("submit_sm")) == 1
    smsc.wait_event("unbind")


def test_sigterm_during_a_throttle_pause_of_a_one_shot_pass_exits_0(tmp_path, smsc):
    smsc.set(throttle=1)
    s = smpp_site(tmp_path, smsc, window="1", throttle_delay="600")
    ids = [s.enqueue(PHONE, f"m{n}") for n in range(2)]
    pass_ = s.start()
    try:
        wait_for(lambda: "pausing 600.00s" in s.log(), what="the pause")
        pass_.send_signal(signal.SIGTERM)
        assert pass_.wait(30) == 0  # a stop, not a failure: cron mails nothing
    finally:
        if pass_.poll() is None:
            pass_.kill()
            pass_.wait()
    assert s.rows("msg", "id, attempts, claimed_by") == [(n, 0, None) for n in ids]


def test_sigterm_while_binds_are_refused_stops_at_once(tmp_path, smsc):
    smsc.set(bindStatus=p.ESME_RSYSERR)
    s = smpp_site(tmp_path, smsc, reconnect_delay="300", reconnect_max_delay="600")
    s.enqueue(PHONE, "waits")
    loop = s.start("--loop")
    try:
        smsc.wait_event("bind", count=2)  # refused, and refused again: now it waits
        wait_for(lambda: s.log().count("ESME_RSYSERR") >= 2, what="two refusals logged")
        loop.send_signal(signal.SIGTERM)
        assert loop.wait(30) == 0
    finally:
        if loop.poll() is None:
            loop.kill()
            loop.wait()
    assert s.rows("msg", "attempts, claimed_by") == [(0, None)]


def stop_loop(loop) -> None:
    if loop.poll() is None:
        loop.send_signal(signal.SIGTERM)
        try:
            loop.wait(30)
        finally:
            if loop.poll() is None:
                loop.kill()
                loop.wait()


def test_loop_keeps_one_bind_wakes_on_incoming_and_survives_a_drop(tmp_path, smsc):
    smsc.set(receipts="after")
    s = smpp_site(tmp_path, smsc)
    loop = s.start("--loop")
    try:
        wait_for(lambda: "bound (SMSC nodesmsc)" in s.log(), what="the bind")
        s.enqueue(PHONE, "first")
        os.kill(loop.pid, signal.SIGUSR1)
        wait_for(lambda: s.rows("sms", "delivery") == [("delivered",)], what="first delivered")

        smsc.deliver([mo(ucs2("odpověď"))])
        wait_for(lambda: s.rows("rcv", "text") == [("odpověď",)], what="incoming stored")

        smsc.command("drop")
        wait_for(lambda: "connection closed by the SMSC" in s.log(), what="the drop noticed")
        s.enqueue(PHONE, "second")
        os.kill(loop.pid, signal.SIGUSR1)
        wait_for(lambda: len(s.rows("sms")) == 2, what="second sent after the drop")
        assert [e["text"] for e in smsc.wait_events("submit_sm", 2)] == ["first", "second"]
        binds = smsc.wait_events("bind", 2)
        assert len(binds) == 2  # one bind, and one again after the drop

        loop.send_signal(signal.SIGTERM)
        assert loop.wait(30) == 0
        smsc.wait_event("unbind")
    finally:
        if loop.poll() is None:
            loop.kill()
            loop.wait()
    assert [e["text"] for e in smsc.events("submit_sm")] == ["first", "second"]  # no repeats
