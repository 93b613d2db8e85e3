"""What the device asks its transport to do (pure data).

A session hands lists of these to its sink, in order; the transport writes the
bytes, sleeps for delays (simulated latency), closes the link for ``Close``
(TCP connection closed, pty hung up) and runs a ``Call`` when its output gets
there (the modem's bookkeeping of when it answered).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Write:
    data: bytes


@dataclass(frozen=True)
class Delay:
    seconds: float


@dataclass(frozen=True)
class Close:
    reason: str = ""


@dataclass(frozen=True)
class Call:
    """Run ``function`` once everything queued before it was done (written, slept)."""

    function: Callable[[], None]
