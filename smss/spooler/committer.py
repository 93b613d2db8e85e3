"""Group commit: one writer thread stores many connections' records per transaction.

Connections hand validated messages to ``Committer.submit`` and await the id.
The writer thread takes everything that is waiting, inserts it in one
transaction, and only after the commit answers every waiter with its id (or
with ``StorageUnavailable`` when the transaction failed: then nothing of that
batch was acknowledged).  While one transaction commits, the next batch
gathers, so the rate follows the database's commit rate times the batch size.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Callable, List, Optional, Tuple

from smss.store import queue as msg_table
from smss.store.database import UNAVAILABLE_ERRORS, Connection, connect

log = logging.getLogger(__name__)

MAX_BATCH = 2000


class StorageUnavailable(Exception):
    """The records could not be committed; the client was not told OK."""


_Waiter = Tuple[msg_table.NewMessage, asyncio.Future, asyncio.AbstractEventLoop]


class Committer:
    def __init__(
        self,
        database_url: str,
        connect_timeout: float = 10.0,
        on_commit: Optional[Callable[[int], None]] = None,
        tls: str = "auto",
        tls_ca: str = "",
    ) -> None:
        self._url = database_url
        self._connect_timeout = connect_timeout
        self._tls = (tls, tls_ca)
        self._on_commit = on_commit
        self._inbox: "queue.SimpleQueue[Optional[_Waiter]]" = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="committer", daemon=True)
        self._conn: Optional[Connection] = None
        self.committed = 0
        self.last_commit_error: Optional[str] = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Commit what was submitted, then end the thread."""
        self._inbox.put(None)
        self._thread.join()
        if self._conn is not None:
            self._conn.close()

    def notify_commit(self, count: int) -> None:
        """Messages were committed outside the group commit (a request whose messages go
        into one transaction with rows of its own, ``Sender.store_together``): tell
        ``on_commit`` all the same, so the dispatcher is kicked."""
        if self._on_commit is not None and count:
            self._on_commit(count)

    def submit(self, message: msg_table.NewMessage) -> "asyncio.Future[int]":
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._inbox.put((message, future, loop))
        return future

    # -- writer thread

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._inbox.get()
            if first is None:
                break
            batch: List[_Waiter] = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._commit(batch)

    def _commit(self, batch: List[_Waiter]) -> None:
        try:
            if self._conn is None:
                self._conn = connect(self._url, self._connect_timeout, *self._tls)
            with self._conn.transaction():
                ids = msg_table.insert(self._conn, [message for message, _, _ in batch])
        except Exception as exc:  # noqa: BLE001 - every waiter must get an answer
            self.last_commit_error = str(exc)
            if isinstance(exc, UNAVAILABLE_ERRORS):
                log.error("could not store %d record(s): %s", len(batch), exc)
            else:
                log.exception("could not store %d record(s)", len(batch))
            if self._conn is not None:
                self._conn.close()
                self._conn = None  # reconnect for the next batch
            failures: dict = {}
            for _, future, loop in batch:
                failures.setdefault(loop, []).append(future)
            for loop, futures in failures.items():
                loop.call_soon_threadsafe(_fail_all, futures, str(exc))
            return
        self.committed += len(batch)
        answers: dict = {}  # one wake-up of each event loop per batch, not one per record
        for (_, future, loop), message_id in zip(batch, ids):
            answers.setdefault(loop, []).append((future, message_id))
        for loop, pairs in answers.items():
            loop.call_soon_threadsafe(_succeed_all, pairs)
        if self._on_commit is not None:
            self._on_commit(len(batch))


def _succeed_all(pairs: List[Tuple[asyncio.Future, int]]) -> None:
    for future, message_id in pairs:
        if not future.done():
            future.set_result(message_id)


def _fail_all(futures: List[asyncio.Future], reason: str) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(StorageUnavailable(reason))
