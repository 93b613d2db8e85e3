"""A modem that restarts while ``check_and_send --loop`` is idle is initialised again, so
delivery reports keep coming: its start-up lines (each maker's, see ``smss.sim.boot``) or,
for a modem that prints none, the periodic check of AT+CNMI? tell the loop.

The simulated modem discards status reports while AT+CNMI's <ds> is 0 (27.005 3.4.1
leaves it to the modem; ``status_report_ds0 = discard``), as the modem of the issue did:
without initialising again, no report after the restart would ever arrive.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from support_dispatch import site

STYLES = ["sim800", "sim7600", "ec25", "cinterion", "huawei", "silent"]


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s")


def delivered(s):
    return len(s.rows("sms", "id", "WHERE delivery = 'delivered'"))


def send_and_deliver(s, loop, count, total):
    for i in range(count):
        s.enqueue("+420608337726", f"alert {total - count + i}")
    os.kill(loop.pid, signal.SIGUSR1)
    wait_for(lambda: delivered(s) == total, what=f"{total} delivered")


def running_loop(s):
    loop = s.start("--loop")
    wait_for(lambda: "modem on" in s.log() and "ready" in s.log(), what="the modem open")
    return loop


def stop(loop):
    if loop.poll() is None:
        loop.send_signal(signal.SIGTERM)
        try:
            assert loop.wait(timeout=30) == 0
        finally:
            if loop.poll() is None:
                loop.kill()
                loop.wait()


def cnmi(s):
    return s.sim.control.status()["settings"]["cnmi"]


@pytest.mark.parametrize("style", STYLES)
def test_a_modem_restarted_while_the_loop_waits_is_initialised_again(tmp_path, style):
    # the start-up lines alone must tell; a silent modem is found by the settings check
    health = "1" if style == "silent" else "0"
    settings = {"dispatcher": {"poll_interval": "60"}, "modem": {"health_interval": health}}
    with site(tmp_path, settings=settings, boot_style=style,
              status_report_ds0="discard") as s:
        loop = running_loop(s)
        try:
            send_and_deliver(s, loop, 3, 3)
            s.sim.control.reboot()
            assert cnmi(s) == [0, 0, 0, 0, 0]
            wait_for(lambda: cnmi(s)[3] == 2, what="AT+CNMI set again")
            send_and_deliver(s, loop, 3, 6)
            assert s.sim.control.counts().get("ATZ") == 2  # opened once, initialised again
            assert "restarted" in s.log()
            assert "re-opening" not in s.log()
        finally:
            stop(loop)


def test_a_restart_with_a_pin_enters_the_pin_once_more(tmp_path):
    settings = {"dispatcher": {"poll_interval": "60"},
                "modem": {"pin": "1234", "health_interval": "0"}}
    with site(tmp_path, settings=settings, pin="1234", boot_style="sim800",
              status_report_ds0="discard") as s:
        loop = running_loop(s)
        try:
            send_and_deliver(s, loop, 2, 2)
            s.sim.control.reboot()
            wait_for(lambda: s.sim.control.status()["sim"]["state"] == "READY" and
                     cnmi(s)[3] == 2, what="the PIN entered and AT+CNMI set again")
            send_and_deliver(s, loop, 2, 4)
            assert s.sim.control.status()["sim"]["pin_tries"] == 3
            entered = [entry for entry in s.sim.control.lines(2000)
                       if entry["line"].upper().startswith("AT+CPIN=")]
            assert len(entered) == 2  # at the start and after the restart, never more
            # the SIM getting ready after the PIN is not taken for another restart
            assert s.sim.control.counts().get("ATZ") == 2
            assert s.log().count("restarted (") == 1
        finally:
            stop(loop)


def test_huaweis_periodic_boot_line_is_not_a_restart(tmp_path):
    """``^BOOT:...`` repeats while a Huawei modem runs (ModemManager's Huawei plugin
    ignores it): it must not make the loop initialise the modem again."""
    with site(tmp_path, settings={"dispatcher": {"poll_interval": "60"}}) as s:
        loop = running_loop(s)
        try:
            for _ in range(3):
                s.sim.control.urc("^BOOT:20131,0,0,0,72")
            send_and_deliver(s, loop, 2, 2)
            assert s.sim.control.counts().get("ATZ") == 1
            assert "restarted" not in s.log()
        finally:
            stop(loop)
