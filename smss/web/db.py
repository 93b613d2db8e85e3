"""A small pool of database connections for the web application's worker threads.

Page and API handlers run in a thread pool; each borrows a connection for the
length of one request and gives it back.  A connection comes back clean: what
the request left open (a read snapshot, which holds metadata locks on MySQL
and would make an ALTER TABLE wait) is rolled back first.  A connection that
raised a database error, or cannot be rolled back, is closed instead of
returned, so the next request opens a fresh one (after a MariaDB restart, for
instance).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator, List

from smss.store.database import UNAVAILABLE_ERRORS, Connection, DatabaseSettings


class Pool:
    def __init__(self, database: DatabaseSettings, keep: int = 8) -> None:
        self.database = database
        self.keep = keep
        self._idle: List[Connection] = []
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self.database.connect()
        try:
            yield conn
        except UNAVAILABLE_ERRORS:
            conn.close()
            raise
        except BaseException:
            self._give_back(conn)
            raise
        self._give_back(conn)

    def _give_back(self, conn: Connection) -> None:
        try:
            conn.release()
        except UNAVAILABLE_ERRORS:
            conn.close()
            return
        with self._lock:
            if len(self._idle) < self.keep:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
