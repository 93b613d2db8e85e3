"""Waiting in tests for a condition, never for a fixed time: ``wait_for``."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 60.0, what: str = "condition",
             interval: float = 0.05) -> T:
    """The first truthy value of ``predicate()``, polled every ``interval``; an
    AssertionError naming ``what`` once ``timeout`` seconds passed without one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout}s")
