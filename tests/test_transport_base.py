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
    rounds = []

    def tick():  # the third round wakes the waiter, as a kick from another thread would
        rounds.append(1)
        if len(rounds) == 3:
            wake.set()

    clock = iter(range(10**6)).__next__  # one second a look: the timeout ends it at round 500
    assert wait_until(1000, lambda: False, wake, tick=tick, clock=clock, step=0.001) is False
    assert len(rounds) == 3  # it ended at the wake, not at the timeout


def test_a_wake_from_another_thread_ends_a_long_wait():
    wake = threading.Event()
    threading.Timer(0.05, wake.set).start()
    ended = threading.Event()
    waiter = threading.Thread(target=lambda: (wait_until(3600.0, lambda: False, wake),
                                              ended.set()), daemon=True)
    waiter.start()
    assert ended.wait(60), "the wake-up was ignored: the wait went on"


def test_timeout_ends_the_wait_with_false():
    now = [0.0]

    def clock():  # a clock that moves one second per look
        now[0] += 1.0
        return now[0]

    assert wait_until(3.0, lambda: False, clock=clock, step=0.0) is False
    assert now[0] <= 6.0
