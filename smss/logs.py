"""Logging set-up for the commands (never called by library code).

``setup`` sends records to stderr or to a file; ``reopen`` is what SIGHUP
calls after logrotate moved the file away.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Optional

FORMAT = "%(asctime)s %(name)s[%(process)d] %(levelname)s %(message)s"


class ReopenableFileHandler(logging.FileHandler):
    def reopen(self) -> None:
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.close()
            self.stream = self._open()
        finally:
            self.release()


def setup(logfile: str = "", level: str = "INFO") -> logging.Handler:
    """Log to ``logfile`` (created with its directory) or to stderr; returns the handler."""
    handler: logging.Handler
    if logfile:
        os.makedirs(os.path.dirname(os.path.abspath(logfile)), exist_ok=True)
        handler = ReopenableFileHandler(logfile, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    return handler


def reopen(handler: Optional[logging.Handler]) -> None:
    if isinstance(handler, ReopenableFileHandler):
        handler.reopen()
        logging.getLogger(__name__).info("log file reopened")
