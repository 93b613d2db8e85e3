"""Remembering PINs the SIM rejected, so a wrong PIN is never sent twice.

Three wrong PINs lock a SIM into PUK.  A dispatcher started by cron every
minute would burn them in three minutes, so a rejection is written to a file
(a salted SHA-256 of the PIN, mode 0600) that the next process reads.  A
different PIN in the configuration is tried (once); the same one never again
until the operator deletes the file.  Without a file the memory lasts as long
as the process.
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Set

log = logging.getLogger(__name__)

_IN_PROCESS: Set[str] = set()


def _digest(pin: str) -> str:
    return hashlib.sha256(b"smss-rejected-pin:" + pin.encode("utf-8")).hexdigest()


class PinGuard:
    """``is_rejected(pin)`` / ``record(pin)``; ``path`` empty: this process only."""

    def __init__(self, path: str = "") -> None:
        self.path = path

    def _stored(self) -> Set[str]:
        if not self.path:
            return set()
        try:
            with open(self.path, encoding="ascii") as handle:
                return {line.strip() for line in handle if line.strip()}
        except FileNotFoundError:
            return set()
        except (OSError, UnicodeDecodeError) as exc:
            log.error("cannot read the rejected-PIN file %s: %s", self.path, exc)
            return set()

    def is_rejected(self, pin: str) -> bool:
        digest = _digest(pin)
        return digest in _IN_PROCESS or digest in self._stored()

    def record(self, pin: str) -> None:
        digest = _digest(pin)
        _IN_PROCESS.add(digest)
        if not self.path:
            return
        try:
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, mode=0o700, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="ascii") as handle:
                handle.write(digest + "\n")
        except OSError as exc:
            log.critical(
                "cannot record the rejected PIN in %s (%s): another process may try it again",
                self.path,
                exc,
            )

    def forget(self, pin: str) -> None:
        """Allow ``pin`` again (for tests and for an operator tool)."""
        digest = _digest(pin)
        _IN_PROCESS.discard(digest)
        stored = self._stored()
        if digest in stored and self.path:
            stored.discard(digest)
            with open(self.path, "w", encoding="ascii") as handle:
                handle.writelines(line + "\n" for line in sorted(stored))
