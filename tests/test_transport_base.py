"""The shared waiting of transports (Transport.wait for check_and_send --loop)."""

from __future__ import annotations

import threading

from smss.transports.base import wait_until


def test_returns_true_when_something_arrives_and_ticks_meanwhile():
    rounds = []
    assert wait_until(5.0, lambda: len(rounds) >= 3, tick=lambda: rounds.append(1), step=0.001)
    assert len(rounds) == 3


def test_a_set_wake_event_ends_the_wait_with_false():
    wake = threading.Event()
    threading.Timer(0.05, wake.set).start()
    assert wait_until(30.0, lambda: False, wake) is False
    assert wake.is_set()


def test_timeout_ends_the_wait_with_false():
    now = [0.0]

    def clock():  # a clock that moves one second per look
        now[0] += 1.0
        return now[0]

    assert wait_until(3.0, lambda: False, clock=clock, step=0.0) is False
    assert now[0] <= 6.0
