"""A temporary send error defers that message only: the pass goes on sending the others
and reading the SIM, and ``check_and_send --loop`` never re-opens the modem for it.

The errors come from the simulated network (``cms_error`` fault) after the PDU was
written, as a real network's RP-ERROR does (3GPP TS 24.011 7.3.4, 27.005 3.2.5).
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from support_dispatch import site


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s")


def stored(s, kind):
    return [item for item in s.sim.control.storage() if item["kind"] == kind]


@pytest.mark.parametrize("code", [38, 17, 27, 332])
def test_a_network_error_defers_that_message_and_the_pass_goes_on(tmp_path, code):
    """+CMS 38 network out of order, 17 network failure, 27 destination out of order,
    332 network timeout: that message waits ``retry_delay``; the others are sent and the
    SIM is read (a new SMS stored, a delivery report applied) in the same pass."""
    with site(tmp_path, settings={"dispatcher": {"retry_delay": "600"}}) as s:
        earlier = s.enqueue("+420608337726", "sent before")
        assert s.run().returncode == 0, s.log()
        wait_for(lambda: stored(s, "status_report"), what="its report on the SIM")
        ids = [s.enqueue("+420608337726", f"m{i}") for i in range(3)]
        s.sim.control.inject("+420777123456", "read me in the same pass")
        s.sim.control.set_fault("cms_error", code=code, count=1)
        s.sim.control.reset_counts()

        result = s.run()

        assert result.returncode == 0, s.log()
        [(deferred, attempts, error)] = s.rows("msg", "id, attempts, last_error")
        assert (deferred, attempts) == (ids[0], 1) and str(code) in error
        assert s.rows("sms", "id, status") == [(earlier, "sent"), (ids[1], "sent"),
                                               (ids[2], "sent")]
        assert s.rows("rcv", "text") == [("read me in the same pass",)]
        assert s.rows("sms", "delivery", f"WHERE id = {earlier}") == [("delivered",)]
        assert s.sim.control.counts().get("ATZ") == 1  # one initialisation, no re-open


def test_the_loop_keeps_sending_and_reading_through_network_out_of_order(tmp_path):
    """The issue's case: +CMS ERROR: 38 on 30 % of the sends.  The loop keeps the modem
    open (one initialisation), every message goes out after its retries, and every
    delivery report is applied."""
    settings = {"dispatcher": {"poll_interval": "60", "max_attempts": "20"}}
    with site(tmp_path, settings=settings, seed=3) as s:
        ids = [s.enqueue("+420608337726", f"alert {i}") for i in range(20)]
        s.sim.control.set_fault("cms_error", code=38, probability=0.3)
        loop = s.start("--loop")
        try:
            wait_for(lambda: len(s.rows("sms", "id", "WHERE delivery = 'delivered'")) == 20,
                     timeout=120, what="all 20 delivered")
            assert s.rows("msg") == []
            attempts = dict(s.rows("sms", "id, attempts"))
            assert sorted(attempts) == ids and max(attempts.values()) > 1  # 38 did happen
            assert s.sim.control.counts().get("ATZ") == 1, s.log()
            assert "re-opening" not in s.log()
            loop.send_signal(signal.SIGTERM)
            assert loop.wait(timeout=30) == 0
        finally:
            if loop.poll() is None:
                loop.kill()
                loop.wait()
        assert not os.path.exists(f"{tmp_path}/check_and_send.lock")
