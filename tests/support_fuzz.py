"""Shared by the fuzz tests (tests/test_fuzz_*.py) and bench/fuzz_atheris.py.

``EXAMPLES`` is how many inputs each hypothesis fuzz test tries: a few hundred
by default (seconds in CI); ``SMSS_FUZZ_EXAMPLES=100000`` for a long run.
``no_hang`` turns a parser that stops making progress into a test failure
instead of a stuck CI job.
"""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager
from typing import Iterator

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("SMSS_FUZZ_EXAMPLES", "300"))
HANG_SECONDS = 10.0  # far more than any single input needs: only a real hang gets here


def fuzz_settings(examples: int = EXAMPLES):
    return settings(max_examples=examples, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Hang(Exception):
    """A parser did not return within HANG_SECONDS."""


@contextmanager
def no_hang(seconds: float = HANG_SECONDS) -> Iterator[None]:
    """Fail with ``Hang`` when the block runs longer than ``seconds`` (main thread only)."""

    def expired(signum, frame):
        raise Hang(f"no result after {seconds} s: the parser hangs")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
