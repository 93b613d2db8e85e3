"""check_and_send against the simulated modem: sending, receiving, reports, failures."""

from __future__ import annotations

import os
import signal
import time

import pytest
from support_dispatch import site

LONG_TEXT = ("Záloha serveru selhala. " * 17)[:400]  # UCS2, 400 chars -> 6 parts


@pytest.fixture(params=["sqlite", "mysql"])
def db_url(request, tmp_path):
    if request.param == "mysql":
        return request.getfixturevalue("mariadb").create_database()
    return f"sqlite://{tmp_path}/smss.db"


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_sends_the_queue_and_records_it(tmp_path, db_url):
    with site(tmp_path, db_url) as s:
        first = s.enqueue("+420608337726", "AHOJ")
        second = s.enqueue("+420777123456", "Příliš žluťoučký kůň")
        third = s.enqueue("+420777123456", LONG_TEXT, parts=6)
        result = s.run()
        assert result.returncode == 0, s.log()
        sent = s.sim.control.sent()
        by_number = {}
        for part in sent:
            by_number.setdefault((part["number"], part["concat"] and part["concat"]["reference"]),
                                 []).append(part)
        texts = ["".join(p["text"] for p in sorted(parts, key=lambda p: (p["concat"] or {})
                                                    .get("sequence", 0)))
                 for parts in by_number.values()]
        assert sorted(texts) == sorted(["AHOJ", "Příliš žluťoučký kůň", LONG_TEXT])
        assert s.sim.control.counts().get("AT+CMGS") == 8  # exactly one AT+CMGS per part
        assert s.rows("msg") == []
        rows = s.rows("sms", "id, phone, text, status, parts, attempts")
        assert rows == [
            (first, "+420608337726", "AHOJ", "sent", 1, 1),
            (second, "+420777123456", "Příliš žluťoučký kůň", "sent", 1, 1),
            (third, "+420777123456", LONG_TEXT, "sent", 6, 1),
        ]
        parts = s.rows("sms_part", "sms_id, part, reference", f"WHERE sms_id = {third}")
        assert [p[1] for p in parts] == [1, 2, 3, 4, 5, 6]
        assert [p[2] for p in parts] == [str(p["reference"]) for p in sent[2:]]


def test_nothing_to_do_exits_zero(tmp_path):
    with site(tmp_path) as s:
        result = s.run()
        assert result.returncode == 0
        assert s.sim.control.counts().get("AT+CMGS", 0) == 0


def test_received_messages_are_stored_then_deleted(tmp_path, db_url):
    with site(tmp_path, db_url) as s:
        s.sim.control.inject("+420777123456", "Odpověď: stav 42")
        cyrillic = "Привет, это длинное сообщение. " * 8
        s.sim.control.inject("+79991234567", cyrillic, order=[3, 1, 2, 4])
        assert len(s.sim.control.storage()) == 5
        assert s.run().returncode == 0, s.log()
        rows = s.rows("rcv", "phone, text, parts, error")
        assert sorted(rows) == sorted([("+420777123456", "Odpověď: stav 42", 1, None),
                                       ("+79991234567", cyrillic, 4, None)])
        assert s.sim.control.storage() == []


def test_undecodable_pdu_is_stored_raw_and_removed(tmp_path):
    with site(tmp_path) as s:
        garbage = "07912460305002000408D0E8329BFD0E0000621112"  # truncated SMS-DELIVER
        s.sim.control.inject_pdu(garbage)
        assert s.run().returncode == 0, s.log()
        [(raw, error)] = s.rows("rcv", "raw_pdu, error")
        assert raw == garbage and error.startswith("undecodable PDU")
        assert s.sim.control.storage() == []


def test_delivery_reports_mark_messages_delivered(tmp_path, db_url):
    with site(tmp_path, db_url, status_report_delay=0.05) as s:
        single = s.enqueue("+420608337726", "report me")
        multi = s.enqueue("+420608337726", "x" * 200, parts=2)
        assert s.run().returncode == 0
        # the reports are stored on the SIM as they come; a pass applies what is there
        wait_for(lambda: s.run().returncode == 0 and dict(
            s.rows("sms", "id, delivery")) == {single: "delivered", multi: "delivered"})
        assert s.sim.control.storage() == []


def test_multipart_is_delivered_only_when_every_part_is(tmp_path):
    with site(tmp_path, status_report_statuses=[]) as s:  # reports only when asked for
        message = s.enqueue("+420608337726", "y" * 200, parts=2)
        s.run()
        first, second = (part["reference"] for part in s.sim.control.sent())
        s.sim.control.report(first, "+420608337726", 0)  # delivered
        s.run()
        assert s.rows("sms", "delivery", f"WHERE id = {message}") == [("pending",)]
        s.sim.control.report(second, "+420608337726", 0x30)  # still trying (temporary)
        s.run()
        assert s.rows("sms", "delivery", f"WHERE id = {message}") == [("pending",)]
        s.sim.control.report(second, "+420608337726", 0)
        s.run()
        assert s.rows("sms", "delivery", f"WHERE id = {message}") == [("delivered",)]
        failed = s.enqueue("+420608337726", "z" * 200, parts=2)
        s.run()
        third, fourth = (part["reference"] for part in s.sim.control.sent()[2:])
        s.sim.control.report(third, "+420608337726", 0)
        s.sim.control.report(fourth, "+420608337726", 0x46)  # final failure
        s.run()
        assert s.rows("sms", "delivery", f"WHERE id = {failed}") == [("failed",)]
        assert s.rows("sms_part", "delivery", f"WHERE sms_id = {failed}") == [
            ("delivered",), ("failed",)]
        assert s.sim.control.storage() == []


def test_temporary_error_defers_with_backoff(tmp_path):
    with site(tmp_path, settings={"dispatcher": {"retry_delay": "600"}}) as s:
        message = s.enqueue("+420608337726", "try again")
        s.sim.control.set_fault("cms_error", code=42, count=1)  # congestion
        assert s.run().returncode == 0, s.log()
        [(attempts, error, claimed)] = s.rows("msg", "attempts, last_error, claimed_by")
        assert attempts == 1 and "42" in error and claimed is None
        s.run()  # not due yet: nothing happens
        assert s.sim.control.sent() == [] and len(s.rows("msg")) == 1
        conn = s.connect()  # make it due now
        with conn.transaction():
            conn.execute("UPDATE msg SET next_attempt_at = created_at").close()
        conn.close()
        assert s.run().returncode == 0
        assert s.rows("sms", "id, status, attempts") == [(message, "sent", 2)]


def test_permanent_error_fails_the_message_and_the_rest_go(tmp_path):
    with site(tmp_path) as s:
        bad = s.enqueue("+420608337726", "barred")
        good = s.enqueue("+420777123456", "fine")
        s.sim.control.set_fault("cms_error", code=8, count=1)  # operator barring
        assert s.run().returncode == 0
        rows = s.rows("sms", "id, status, error")
        assert rows[0][:2] == (bad, "failed") and "barring" in rows[0][2]
        assert rows[1][:2] == (good, "sent")


def test_max_attempts_then_failed(tmp_path):
    with site(tmp_path, settings={"dispatcher": {"max_attempts": "3"}}) as s:
        message = s.enqueue("+420608337726", "never")
        s.sim.control.set_fault("cms_error", code=38, count=10)
        for _ in range(3):
            s.run()
        assert s.rows("sms", "id, status, attempts") == [(message, "failed", 3)]


def test_link_drop_mid_pass_keeps_messages_queued(tmp_path):
    with site(tmp_path) as s:
        ids = [s.enqueue("+420608337726", f"m{i}") for i in range(3)]
        s.sim.control.set_fault("drop", at="body", count=1)  # before the first send completes
        result = s.run()
        assert result.returncode == 1
        assert s.rows("sms") == []
        # the first PDU was written when the link fell: it may have gone, so it counts;
        # the others were never tried
        assert s.rows("msg", "id, attempts") == [(ids[0], 1), (ids[1], 0), (ids[2], 0)]
        assert s.run().returncode == 0, s.log()
        assert [r[0] for r in s.rows("sms", "id")] == ids


def test_drop_after_the_send_counts_an_attempt(tmp_path):
    with site(tmp_path) as s:
        message = s.enqueue("+420608337726", "maybe sent")
        s.sim.control.set_fault("drop", at="after_send", count=1)
        assert s.run().returncode == 1
        [(attempts, error)] = s.rows("msg", "attempts, last_error")
        assert attempts == 1 and error
        assert len(s.sim.control.sent()) == 1  # it did go out; the retry is the known window
        assert s.run().returncode == 0
        assert s.rows("sms", "id, attempts") == [(message, 2)]


def test_hung_modem_times_out_and_loses_nothing(tmp_path):
    with site(tmp_path) as s:
        ids = [s.enqueue("+420608337726", f"m{i}") for i in range(2)]
        s.sim.control.set_fault("hang", at="body")
        result = s.run()
        assert result.returncode == 1
        assert not os.path.exists(f"{tmp_path}/check_and_send.lock")
        assert [r[0] for r in s.rows("msg", "id")] == ids
        assert all(r[0] is None for r in s.rows("msg", "claimed_by"))
        s.sim.control.clear_fault("hang")
        assert s.run().returncode == 0, s.log()
        assert [r[0] for r in s.rows("sms", "id")] == ids


def test_pass_timeout_releases_the_lock(tmp_path):
    with site(tmp_path, settings={"dispatcher": {"pass_timeout": "2"},
                                  "modem": {"send_timeout": "30"}}) as s:
        message = s.enqueue("+420608337726", "slow")
        s.sim.control.set_fault("hang", at="body")
        result = s.run()
        assert result.returncode == 1 and "pass ran longer than 2s" in s.log()
        assert not os.path.exists(f"{tmp_path}/check_and_send.lock")
        [(mid, attempts, claimed)] = s.rows("msg", "id, attempts, claimed_by")
        assert (mid, claimed) == (message, None) and attempts == 1  # may have gone: counted


def test_sim_full_is_emptied_by_reading(tmp_path):
    with site(tmp_path, capacity=3) as s:
        for i in range(3):
            s.sim.control.inject("+420777123456", f"in {i}")
        waiting = s.sim.control.inject("+420777123456", "waits in the network")
        assert len(s.sim.control.storage()) == 3
        assert s.run().returncode == 0, s.log()
        wait_for(lambda: len(s.rows("rcv")) == 4 or (s.run() and False), timeout=30)
        assert sorted(r[0] for r in s.rows("rcv", "text")) == [
            "in 0", "in 1", "in 2", "waits in the network"]
        assert waiting is not None


def test_pin_is_entered_from_the_config(tmp_path):
    with site(tmp_path, settings={"modem": {"pin": "1234"}}, pin="1234") as s:
        s.enqueue("+420608337726", "after PIN")
        assert s.run().returncode == 0, s.log()
        assert len(s.sim.control.sent()) == 1


def test_pin_required_but_not_configured_keeps_messages(tmp_path):
    with site(tmp_path, pin="1234") as s:
        message = s.enqueue("+420608337726", "waits for a person")
        result = s.run()
        assert result.returncode == 3
        assert s.rows("msg", "id, attempts, claimed_by") == [(message, 0, None)]
        assert "PIN" in s.log()


def test_wrong_pin_is_never_sent_twice(tmp_path):
    with site(tmp_path, settings={"modem": {"pin": "0000",
                                            "pin_guard_file": f"{tmp_path}/pin-guard"}},
              pin="1234") as s:
        s.enqueue("+420608337726", "x")
        assert s.run().returncode == 3
        assert s.run().returncode == 3
        assert s.sim.control.status()["sim"]["pin_tries"] == 2  # one try used, not two


def test_no_network_keeps_messages(tmp_path):
    with site(tmp_path) as s:
        message = s.enqueue("+420608337726", "no signal")
        s.sim.control.set_fault("no_network", stat=2)
        assert s.run().returncode == 1
        assert s.rows("msg", "id, attempts") == [(message, 0)]
        s.sim.control.clear_fault("no_network")
        assert s.run().returncode == 0
        assert s.rows("sms", "id, status") == [(message, "sent")]


def test_old_messages_expire(tmp_path):
    with site(tmp_path, settings={"dispatcher": {"expire_after": "60"}}) as s:
        old = s.enqueue("+420608337726", "yesterday's alert")
        fresh = s.enqueue("+420608337726", "now")
        conn = s.connect()
        with conn.transaction():
            conn.execute("UPDATE msg SET created_at = '2020-01-01 00:00:00.000000'"
                         f" WHERE id = {old}").close()
        conn.close()
        assert s.run().returncode == 0
        assert s.rows("sms", "id, status") == [(old, "expired"), (fresh, "sent")]
        assert [p["text"] for p in s.sim.control.sent()] == ["now"]


def test_live_lock_holder_is_poked_and_the_new_run_exits_zero(tmp_path):
    with site(tmp_path, latency=1.0) as s:
        for i in range(2):
            s.enqueue("+420608337726", f"slow {i}")
        holder = s.start()
        wait_for(lambda: os.path.exists(f"{tmp_path}/check_and_send.lock"))
        wait_for(lambda: "sent 1 " in s.log() or len(s.sim.control.sent()) >= 1)
        late = s.enqueue("+420608337726", "arrived during the pass")
        result = s.run()
        assert result.returncode == 0
        assert "asked it to look again" in s.log()
        assert holder.wait(timeout=60) == 0
        assert late in [r[0] for r in s.rows("sms", "id")]


def test_lock_of_a_killed_pass_is_free_and_claims_recovered(tmp_path):
    """kill -9 leaves the lock file with the dead PID in it; the kernel released the
    lock itself, so the next pass takes it at once (nothing to break)."""
    with site(tmp_path, latency=2.0) as s:
        ids = [s.enqueue("+420608337726", f"m{i}") for i in range(3)]
        holder = s.start()
        wait_for(lambda: s.rows("msg", "id", "WHERE send_started_at IS NOT NULL"))
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        with open(f"{tmp_path}/check_and_send.lock", encoding="ascii") as handle:
            assert handle.read().strip() == str(holder.pid)
        assert s.run().returncode == 0, s.log()
        assert sorted(r[0] for r in s.rows("sms", "id")) == ids
        assert "may have been sent" in s.log()
        assert not os.path.exists(f"{tmp_path}/check_and_send.lock")


def windowed_dispatcher(s, window: int):
    """The pass in this process, through the modem transport with a window (the path a
    windowed transport such as SMPP takes; the modem's send_many sends one by one)."""
    from check_and_send.dispatcher import Dispatcher, Settings
    from smss.config import load
    from smss.store.database import connect
    from smss.transports.modem import ModemTransport

    config = load(s.config_path)
    transport = ModemTransport.from_config(config)
    transport.window = window
    conn = connect(s.db_url)
    return conn, Dispatcher(conn, transport, Settings.from_config(config))


def test_windowed_sending_records_every_outcome(tmp_path):
    with site(tmp_path) as s:
        ids = [s.enqueue("+420608337726", f"w{i}") for i in range(7)]
        s.sim.control.set_fault("cms_error", code=8, count=1)  # the first one is barred
        conn, dispatcher = windowed_dispatcher(s, 3)
        try:
            report = dispatcher.run_pass()
        finally:
            dispatcher.close()
            conn.close()
        assert (report.sent, report.failed, report.problem) == (6, 1, None)
        assert s.rows("sms", "id, status") == [(ids[0], "failed")] + [(i, "sent") for i in ids[1:]]
        assert s.rows("msg") == []


def test_windowed_sending_keeps_the_rest_when_the_link_drops(tmp_path):
    with site(tmp_path) as s:
        ids = [s.enqueue("+420608337726", f"w{i}") for i in range(5)]
        s.sim.control.set_fault("drop", at="command", command="+CMGS", count=1)
        conn, dispatcher = windowed_dispatcher(s, 5)
        try:
            report = dispatcher.run_pass()
        finally:
            dispatcher.close()
            conn.close()
        assert report.problem_kind == "down" and report.sent == 0
        # the one in the modem when the link fell was not written: released, no attempt;
        # the ones never handed to the modem were released untouched
        assert s.rows("msg", "id, attempts, claimed_by, send_started_at") == [
            (i, 0, None, None) for i in ids]
