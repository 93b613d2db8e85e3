"""A multipart message is never partly sent twice: a retry sends only the parts not yet
confirmed, under the same concatenation reference, and the ``sms`` row lists every part's
reference so each part's delivery report still finds it.

Long texts are split as the modem transport always splits them; the simulated network
confirms each part with its own message reference (+CMGS: <mr>, 27.005 3.5.1).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest
from support_dispatch import site

from smss.transports.base import Progress

TEXT = ("Zaloha serveru db1 selhala, disk je plny. " * 8)[:400]  # GSM-7: 3 parts


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s")


def parts_sent(s):
    """(concatenation reference, part number, total) of every SMS the network took."""
    return [(p["concat"]["reference"], p["concat"]["sequence"], p["concat"]["total"])
            for p in s.sim.control.sent()]


def confirmed_parts(s):
    [(stored,)] = s.rows("msg", "progress")
    progress = Progress.decode(stored)
    return set(progress.confirmed) if progress else set()


def assert_sent_once_with_one_reference(s, message):
    sent = s.sim.control.sent()
    parts = parts_sent(s)
    assert sorted(p[1:] for p in parts) == [(1, 3), (2, 3), (3, 3)], parts
    assert len({p[0] for p in parts}) == 1, parts  # one concatenation reference
    by_part = {p["concat"]["sequence"]: str(p["reference"]) for p in sent}
    assert s.rows("sms", "id, status, parts, refs") == [
        (message, "sent", 3, ",".join(by_part[n] for n in (1, 2, 3)))]
    assert s.rows("sms_part", "part, reference", f"WHERE sms_id = {message}") == [
        (n, by_part[n]) for n in (1, 2, 3)]
    wait_for(lambda: s.run().returncode == 0 and s.rows(
        "sms", "delivery", f"WHERE id = {message}") == [("delivered",)],
        what="every part's delivery report applied")


@pytest.mark.parametrize("fault", [
    {"name": "cms_error", "code": 42, "count": 1, "skip": 1},  # part 2: congestion
    {"name": "cms_error", "code": 38, "count": 1, "skip": 2},  # part 3: out of order
    {"name": "drop", "at": "body", "count": 1, "skip": 1},  # the link falls in part 2
])
def test_a_retry_sends_only_the_parts_not_yet_confirmed(tmp_path, fault):
    with site(tmp_path) as s:
        message = s.enqueue("+420608337726", TEXT, parts=3)
        s.sim.control.set_fault(fault.pop("name"), **fault)
        s.run()
        if s.rows("msg"):  # the link fell: the next pass goes on
            assert s.run().returncode == 0, s.log()
        assert s.rows("msg") == []
        assert s.rows("sms", "attempts") == [(2,)]
        assert_sent_once_with_one_reference(s, message)


def test_a_permanent_failure_after_a_retry_keeps_the_references_of_what_went(tmp_path):
    """Part 2 deferred, then refused for good: the failed message lists part 1's
    reference, so that part's delivery report is still applied."""
    with site(tmp_path, settings={"dispatcher": {"retry_delay": "600"}}) as s:
        message = s.enqueue("+420608337726", TEXT, parts=3)
        s.sim.control.set_fault("cms_error", code=42, count=1, skip=1)
        assert s.run().returncode == 0, s.log()
        conn = s.connect()
        with conn.transaction():
            conn.execute("UPDATE msg SET next_attempt_at = created_at").close()
        conn.close()
        s.sim.control.set_fault("cms_error", code=21, count=1)  # transfer rejected
        assert s.run().returncode == 0, s.log()
        [first] = s.sim.control.sent()
        assert s.rows("sms", "id, status, attempts, refs") == [
            (message, "failed", 2, str(first["reference"]))]
        wait_for(lambda: s.run().returncode == 0 and s.rows(
            "sms_part", "part, delivery", f"WHERE sms_id = {message}") == [(1, "delivered")],
            what="part 1's report applied")


def test_a_pass_killed_in_the_middle_of_a_long_message_resends_only_the_part_in_flight(
        tmp_path):
    """kill -9 while part 2 is in the modem: part 1 never goes again; part 2 (the
    documented window: it may have gone) is sent again as the same part under the same
    reference, then part 3."""
    with site(tmp_path, latency=1.5) as s:
        message = s.enqueue("+420608337726", TEXT, parts=3)
        process = s.start()
        wait_for(lambda: len(s.sim.control.sent()) == 1, what="part 1 sent")
        wait_for(lambda: 1 in confirmed_parts(s), what="part 1 recorded with the message")
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        assert s.run().returncode == 0, s.log()
        parts = parts_sent(s)
        counts = Counter(p[1] for p in parts)
        assert counts[1] == 1 and counts[3] == 1 and counts[2] in (1, 2), parts
        assert len({p[0] for p in parts}) == 1, parts
        [(status, refs)] = s.rows("sms", "status, refs", f"WHERE id = {message}")
        assert status == "sent" and len(refs.split(",")) == 3
