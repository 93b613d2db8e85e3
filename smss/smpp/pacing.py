"""When the next submit_sm may go: the configured throughput, and what ESME_RTHROTTLED taught.

Owns three things, pure (the clock is the caller's):

- ``throughput``: the configured submit_sm per second, spaced evenly;
- the pause after a throttled answer.  A throttle *episode* is one pause: answers to
  submit_sm that were already in flight when the pause began belong to it and neither
  pause again nor lengthen it (Kannel, gw/smsc/smsc_smpp.c, stops sending for one second
  after ESME_RTHROTTLED and goes on).  The pause is ``throttle_delay``; it doubles, up to
  ``MAX_PAUSE``, only when the first answers after sending resumed are throttled again
  (nothing was taken in between);
- the rate the SMSC takes, learned by additive increase and multiplicative decrease: an
  episode sets the rate to ``DECREASE`` times what the SMSC took in the last
  ``MEASURE`` seconds (or times the rate before, whichever is lower); every answer
  ``ESME_ROK`` after that adds ``INCREASE`` per second's worth of answers, until the
  SMSC throttles again.  So a window that overruns an SMSC's per-second limit settles
  just under it instead of bursting into a pause every second.

Each submit_sm is stamped with the episode (``epoch``) it went out in; its answer is
reported with that stamp.
"""

from __future__ import annotations

import collections
from typing import Callable, Deque, Optional

MAX_PAUSE = 30.0  # seconds: the longest pause, however often the SMSC refuses
MIN_RATE = 0.5  # submit_sm per second: the least a throttling SMSC is offered
DECREASE = 0.8  # the learned rate after an episode, as a share of what the SMSC took
INCREASE = 1.0  # submit_sm per second added over each second of answers taken
MEASURE = 1.0  # seconds over which what the SMSC took is counted (SMSC limits are per second)


class Pacer:
    def __init__(self, throughput: float, throttle_delay: float,
                 clock: Callable[[], float]) -> None:
        self.throughput = throughput  # configured submit_sm per second; 0: no limit
        self.throttle_delay = throttle_delay
        self._clock = clock
        self.rate: Optional[float] = None  # learned from throttling; None: nothing learned
        self.epoch = 0  # throttle episodes so far
        self.pause = 0.0  # the latest pause, seconds
        self.paused_until = 0.0
        self.pauses = 0  # pauses taken (one per episode)
        self._taken_since_pause = True  # the first episode pauses throttle_delay
        self._next_at = 0.0
        self._taken: Deque[float] = collections.deque()  # when answers ESME_ROK came

    def limit(self) -> Optional[float]:
        """submit_sm per second now allowed (None: no limit)."""
        limits = [r for r in (self.throughput if self.throughput > 0 else None, self.rate)
                  if r is not None]
        return min(limits) if limits else None

    def delay(self) -> float:
        """Seconds until the next submit_sm may go (0 or less: now)."""
        return max(self._next_at, self.paused_until) - self._clock()

    def sent(self) -> int:
        """A submit_sm goes now; returns its epoch (report its answer with it)."""
        limit = self.limit()
        if limit is not None:
            self._next_at = max(self._clock(), self._next_at) + 1.0 / limit
        return self.epoch

    def taken(self, epoch: int) -> None:
        """A submit_sm of ``epoch`` was answered ESME_ROK."""
        now = self._clock()
        self._taken.append(now)
        self._forget(now)
        if epoch != self.epoch:
            return  # went out before the latest pause: says nothing about the rate since
        self._taken_since_pause = True
        if self.rate is not None:
            self.rate += INCREASE / self.rate

    def throttled(self, epoch: int) -> Optional[float]:
        """A submit_sm of ``epoch`` was answered ESME_RTHROTTLED: the pause that begins
        now (seconds), or None when the pause of its episode already began."""
        if epoch != self.epoch:
            return None
        now = self._clock()
        self._forget(now)
        if self._taken_since_pause:
            pause = self.throttle_delay
        else:
            pause = min(self.pause * 2, max(MAX_PAUSE, self.throttle_delay))
        took = len(self._taken) / MEASURE if self._taken else None
        known = [r for r in (self.rate, took) if r is not None]
        if known:
            self.rate = max(MIN_RATE, min(known) * DECREASE)
        self.epoch += 1
        self.pauses += 1
        self.pause = pause
        self.paused_until = now + pause
        self._taken_since_pause = False
        return pause

    def _forget(self, now: float) -> None:
        while self._taken and now - self._taken[0] > MEASURE:
            self._taken.popleft()
