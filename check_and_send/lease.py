"""The leases of one dispatcher's claims: when they were last renewed, when the next
renewal is due, and whether they may have run out (then the claims count as lost).

A claim lasts ``claim_lease`` seconds from its last renewal (``msg.claimed_at``, the
database's clock); a dispatcher renews what it holds every third of that while it works:
between its steps (the serial path), in the bookkeeper's rounds (the windowed path),
and, while a send blocks its thread, from a ``Keeper`` thread.  This side measures on
the monotonic clock from the moment before the renewing transaction began, so it never
believes a lease longer than the database does.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

log = logging.getLogger(__name__)


class Lease:
    """The lease timing of one dispatcher (or one windowed pipeline)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._renewed: Optional[float] = None  # the start of the last renewal (or claim)

    @property
    def period(self) -> float:
        """How often a holder renews."""
        return self.seconds / 3

    def begin(self) -> float:
        """The moment a renewing (or claiming) transaction begins; pass it to ``renewed``
        once it committed."""
        return self.clock()

    def renewed(self, began: float) -> None:
        self._renewed = began

    def age(self) -> float:
        return 0.0 if self._renewed is None else self.clock() - self._renewed

    def due(self) -> bool:
        return self._renewed is None or self.age() >= self.period

    def fresh(self) -> bool:
        """Safe to hand a claimed message to the transport: renewed within the last two
        thirds of the lease (a third is left for the message to reach the wire)."""
        return self._renewed is not None and self.age() < self.seconds - self.period

    def lost(self) -> bool:
        """Not renewed for a whole lease: another dispatcher may have taken them over."""
        return self._renewed is not None and self.age() >= self.seconds


class Keeper:
    """Renews a dispatcher's leases from a thread of its own while the dispatcher's
    thread is blocked in a send (a modem's AT+CMGS may take longer than a lease).
    ``renew`` must only use the connection inside ``Connection.transaction`` (which
    serialises it with the sending thread's progress records)."""

    def __init__(self, lease: Lease, renew: Callable[[], None]) -> None:
        self.lease = lease
        self.renew = renew
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="lease keeper")

    def __enter__(self) -> "Keeper":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(max(0.0, self.lease.period - self.lease.age())):
            try:
                self.renew()
            except Exception as exc:  # noqa: BLE001 - the send goes on; the lease may lapse
                log.warning("could not renew the claims' leases: %s", exc)
                self._done.wait(min(1.0, self.lease.period))
