"""What one pass of a dispatcher tells its caller: ``PassReport`` (counts, why it ended
early, transports found paused) and ``DatabaseDown``, which ends a pass the database
failed (its outcomes are journaled)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

#: PassReport.problem_kind of a pass the database stopped (the transport is fine)
DATABASE = "database"


class DatabaseDown(Exception):
    """The database failed mid-pass; the pass stops (outcomes are journaled)."""


@dataclass
class PassReport:
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    expired: int = 0
    received: int = 0
    reports: int = 0
    recovered: int = 0
    problem: Optional[str] = None  # why the pass ended early (transport down, PIN ...)
    problem_kind: Optional[str] = None
    new_rcv_ids: List[int] = field(default_factory=list)
    paused: List[str] = field(default_factory=list)  # transports an operator paused

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def stalled(self) -> bool:
        """Nothing moved while a transport is paused: messages still due may be waiting
        for it, so another pass right away would do nothing either."""
        return bool(self.paused) and not (self.sent or self.failed or self.deferred
                                          or self.expired)
