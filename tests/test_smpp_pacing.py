"""The SMPP pacer (pure, on a clock of our own): the throughput limit, one pause per throttle
episode, the pause doubling only while throttling repeats after sending resumed, and the
rate learned by additive increase and multiplicative decrease."""

from __future__ import annotations

import pytest

from smss.smpp import pacing
from smss.smpp.pacing import Pacer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_throughput_spaces_submits_evenly(clock):
    pacer = Pacer(4.0, 1.0, clock)
    assert pacer.delay() <= 0
    for _ in range(3):
        pacer.sent()
    assert pacer.delay() == pytest.approx(0.75)
    clock.now += 0.75
    assert pacer.delay() == pytest.approx(0)


def test_no_limit_no_delay(clock):
    pacer = Pacer(0, 1.0, clock)
    for _ in range(100):
        pacer.sent()
    assert pacer.delay() <= 0 and pacer.limit() is None


def test_answers_in_flight_when_the_pause_began_belong_to_its_episode(clock):
    pacer = Pacer(0, 1.0, clock)
    epochs = [pacer.sent() for _ in range(10)]
    for epoch in epochs[:5]:
        pacer.taken(epoch)
    assert pacer.throttled(epochs[5]) == 1.0
    assert [pacer.throttled(epoch) for epoch in epochs[6:]] == [None] * 4
    assert pacer.pauses == 1 and pacer.delay() == pytest.approx(1.0)
    # learned: 80 % of the 5 a second the SMSC took
    assert pacer.rate == pytest.approx(5 * pacing.DECREASE)


def test_the_pause_doubles_only_when_nothing_was_taken_since_it(clock):
    pacer = Pacer(0, 0.5, clock)
    assert pacer.throttled(pacer.sent()) == 0.5
    clock.now += 0.5
    assert pacer.throttled(pacer.sent()) == 1.0  # refused again at once: doubled
    clock.now += 1.0
    assert pacer.throttled(pacer.sent()) == 2.0
    clock.now += 2.0
    epoch = pacer.sent()
    pacer.taken(epoch)
    assert pacer.throttled(pacer.sent()) == 0.5  # the SMSC took one: back to the start


def test_the_pause_stops_growing(clock):
    pacer = Pacer(0, 1.0, clock)
    lengths = []
    for _ in range(12):
        lengths.append(pacer.throttled(pacer.sent()))
        clock.now += lengths[-1]
    assert max(lengths) == pacing.MAX_PAUSE == lengths[-1]


def test_the_rate_grows_back_by_one_a_second_of_answers(clock):
    pacer = Pacer(0, 1.0, clock)
    for _ in range(5):
        pacer.taken(pacer.sent())
    pacer.throttled(pacer.sent())
    assert pacer.rate == pytest.approx(4.0)
    clock.now += 1.0
    for _ in range(4):  # a second's worth at 4 a second
        clock.now += 0.25
        pacer.taken(pacer.sent())
    assert 4.9 < pacer.rate < 5.1
    assert pacer.limit() == pacer.rate


def test_the_configured_throughput_stays_the_ceiling(clock):
    pacer = Pacer(2.0, 1.0, clock)
    for _ in range(10):
        pacer.taken(pacer.sent())
        clock.now += 0.5
    pacer.throttled(pacer.sent())
    assert pacer.limit() == 2.0 * pacing.DECREASE
    pacer.rate = 50.0
    assert pacer.limit() == 2.0


def test_a_smsc_that_takes_nothing_leaves_the_rate_alone_and_the_pause_grows(clock):
    pacer = Pacer(0, 1.0, clock)
    assert pacer.throttled(pacer.sent()) == 1.0 and pacer.rate is None
    clock.now += 1.0
    pacer.rate = 3.0
    assert pacer.throttled(pacer.sent()) == 2.0
    assert pacer.rate == pytest.approx(3.0 * pacing.DECREASE)


def test_the_rate_never_drops_below_the_minimum(clock):
    pacer = Pacer(0, 0.01, clock)
    pacer.rate = 1.0
    for _ in range(20):
        pacer.throttled(pacer.sent())
        clock.now += pacer.pause
    assert pacer.rate == pacing.MIN_RATE
