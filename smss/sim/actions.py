"""What the device asks its transport to do (pure data).

A session hands lists of these to its sink, in order; the transport writes the
bytes, sleeps for delays (simulated latency) and closes the link for ``Close``
(TCP connection closed, pty hung up).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Write:
    data: bytes


@dataclass(frozen=True)
class Delay:
    seconds: float


@dataclass(frozen=True)
class Close:
    reason: str = ""
