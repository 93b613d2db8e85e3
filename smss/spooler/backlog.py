"""The bound on records waiting for the committer: how many, and how many bytes.

``Backlog.admit`` returns at once while there is room and otherwise waits,
first come, first served; ``release`` (the committer's writer thread, once a
batch is answered) hands the room freed to the waiters in order.  One record
always fits an empty backlog, however long it is.  Waiters may sit on several
event loops.  Reaching the limit is logged at most once a minute.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Deque, List, Optional

log = logging.getLogger(__name__)

LIMIT_REPORT_INTERVAL = 60.0  # seconds between two "pending limit reached" warnings


@dataclass(eq=False)
class _Waiter:
    size: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future


class Backlog:
    """Records submitted and not yet answered, bounded in number and in bytes."""

    def __init__(self, max_records: int, max_bytes: int) -> None:
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.records = 0
        self.bytes = 0
        self._lock = threading.Lock()
        self._waiters: Deque[_Waiter] = deque()
        self._full_since: Optional[float] = None  # when the waiting began
        self._reported = False  # the current wait was logged
        self._last_report = -LIMIT_REPORT_INTERVAL
        self._unreported = 0  # waits begun since the last warning

    def _fits(self, size: int) -> bool:
        return self.records == 0 or (self.records < self.max_records
                                     and self.bytes + size <= self.max_bytes)

    def try_admit(self, size: int) -> bool:
        """Count a record of ``size`` bytes in if there is room now (nobody waits)."""
        with self._lock:
            if self._waiters or not self._fits(size):
                return False
            self.records += 1
            self.bytes += size
            return True

    async def admit(self, size: int,
                    on_wait: Optional[Callable[[int, int], None]] = None) -> None:
        """Count a record of ``size`` bytes in; wait for room first when it is full
        (``on_wait(records, bytes)`` is told once, before the wait)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if not self._waiters and self._fits(size):
                self.records += 1
                self.bytes += size
                return
            waiter = _Waiter(size, loop, loop.create_future())
            self._waiters.append(waiter)
            report = 0
            if self._full_since is None:
                now = self._full_since = time.monotonic()
                self._unreported += 1
                if now - self._last_report >= LIMIT_REPORT_INTERVAL:
                    report, self._unreported = self._unreported, 0
                    self._last_report, self._reported = now, True
            records, size_now = self.records, self.bytes
        if report:
            log.warning("pending limit reached: %d records (%d bytes) wait for the database;"
                        " reading from clients paused (%d time(s) since the last report)",
                        records, size_now, report)
        if on_wait is not None:
            on_wait(records, size_now)
        try:
            await waiter.future
        except asyncio.CancelledError:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                    self._note_room()
                    raise
            if waiter.future.done() and not waiter.future.cancelled():
                self.release(1, size)  # granted just as it was cancelled
            raise

    def release(self, records: int, size: int) -> None:
        """``records`` records of ``size`` bytes in all were answered (any thread)."""
        granted: List[_Waiter] = []
        with self._lock:
            self.records -= records
            self.bytes -= size
            while self._waiters and self._fits(self._waiters[0].size):
                waiter = self._waiters.popleft()
                self.records += 1
                self.bytes += waiter.size
                granted.append(waiter)
            self._note_room()
        for waiter in granted:
            waiter.loop.call_soon_threadsafe(self._grant, waiter)

    def _note_room(self) -> None:
        """(Under the lock.)  Nobody waits any more: say so if the wait was reported."""
        if not self._waiters and self._full_since is not None:
            if self._reported:
                log.info("pending records under the limit again after %.1f s",
                         time.monotonic() - self._full_since)
            self._full_since, self._reported = None, False

    def _grant(self, waiter: _Waiter) -> None:
        if waiter.future.cancelled():
            self.release(1, waiter.size)  # its connection went away meanwhile
        else:
            waiter.future.set_result(None)
