"""Group commit: one writer thread stores many connections' records per transaction.

Connections hand validated messages to ``Committer.submit`` and await the id.
The writer thread takes everything that is waiting, inserts it in one
transaction, and only after the commit answers every waiter with its id (or
with ``StorageUnavailable`` when the transaction failed: then nothing of that
batch was acknowledged).  While one transaction commits, the next batch
gathers, so the rate follows the database's commit rate times the batch size.

What waits is bounded (``smss.spooler.backlog``): at ``max_pending_records``
records or ``max_pending_bytes`` bytes, ``submit`` waits for room, so a
client's records stay unread in its socket instead of in this process's memory.

When an attempt fails, the records that queued up during it fail with it, so
a stalled database answers everybody within its timeouts instead of one batch
after another.  A COMMIT the database never confirmed (``CommitInDoubt``) is
settled before anyone is answered: a new connection ends the abandoned session
and looks for the batch's rows.  Only when even that gets no answer are the
clients told ``StorageInDoubt`` (ERR 504); the outcome is looked up again
after the next commit and logged.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

from smss.spooler.backlog import Backlog
from smss.store import queue as msg_table
from smss.store import sent
from smss.store.database import (
    UNAVAILABLE_ERRORS,
    CommitInDoubt,
    Connection,
    DatabaseSettings,
    Session,
)

log = logging.getLogger(__name__)

MAX_BATCH = 2000


class StorageUnavailable(Exception):
    """The records could not be committed; the client was not told OK."""


class StorageInDoubt(StorageUnavailable):
    """The database did not confirm the commit and could not be asked: maybe stored."""


def record_size(message: msg_table.NewMessage) -> int:
    """What a record counts against ``max_pending_bytes``."""
    return len(message.phone) + len(message.text.encode("utf-8", "surrogatepass"))


_Item = Tuple[msg_table.NewMessage, asyncio.Future, asyncio.AbstractEventLoop, int]


@dataclass(frozen=True)
class _Doubt:
    """A batch answered ERR 504: whose session held it, and which rows to look for."""

    session: Session
    ids: Tuple[int, ...]
    first: msg_table.NewMessage


class Committer:
    def __init__(
        self,
        database: DatabaseSettings,
        on_commit: Optional[Callable[[int], None]] = None,
        max_pending_records: int = 10000,
        max_pending_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self._database = database
        self._on_commit = on_commit
        self._inbox: "queue.SimpleQueue[Optional[_Item]]" = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="committer", daemon=True)
        self._conn: Optional[Connection] = None
        self._doubts: List[_Doubt] = []
        self._stopping = False
        self.backlog = Backlog(max_pending_records, max_pending_bytes)
        self.committed = 0
        self.last_commit_error: Optional[str] = None

    @classmethod
    def from_config(cls, config, on_commit: Optional[Callable[[int], None]] = None
                    ) -> "Committer":
        return cls(DatabaseSettings.from_config(config), on_commit,
                   config.get("server", "max_pending_records"),
                   config.get("server", "max_pending_bytes"))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Commit what was submitted, then end the thread."""
        self._inbox.put(None)
        self._thread.join()
        self._drop_connection()

    def notify_commit(self, count: int) -> None:
        """Messages were committed outside the group commit (a request whose messages go
        into one transaction with rows of its own, ``Sender.store_together``): tell
        ``on_commit`` all the same, so the dispatcher is kicked."""
        if self._on_commit is not None and count:
            self._on_commit(count)

    async def submit(self, message: msg_table.NewMessage,
                     on_wait: Optional[Callable[[int, int], None]] = None
                     ) -> "asyncio.Future[int]":
        """Queue ``message`` (waiting for room first when the backlog is full); the
        future gets its id once committed."""
        size = record_size(message)
        await self.backlog.admit(size, on_wait)
        return self._queue(message, size)

    def submit_nowait(self, message: msg_table.NewMessage) -> "Optional[asyncio.Future[int]]":
        """``submit`` when there is room right now; None when it would have to wait."""
        size = record_size(message)
        if not self.backlog.try_admit(size):
            return None
        return self._queue(message, size)

    def _queue(self, message: msg_table.NewMessage, size: int) -> "asyncio.Future[int]":
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._inbox.put((message, future, future.get_loop(), size))
        return future

    # -- writer thread

    def _run(self) -> None:
        while not self._stopping:
            first = self._inbox.get()
            if first is None:
                break
            batch: List[_Item] = [first]
            self._gather(batch, MAX_BATCH)
            self._commit(batch)

    def _gather(self, batch: List[_Item], limit: Optional[int]) -> None:
        """Add what is waiting (up to ``limit`` items); note a request to stop."""
        while limit is None or len(batch) < limit:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            if item is None:
                self._stopping = True
                return
            batch.append(item)

    def _commit(self, batch: List[_Item]) -> None:
        """Store the batch and answer it."""
        messages = [item[0] for item in batch]
        ids: List[int] = []
        try:
            if self._conn is None:
                self._conn = self._database.connect()
            with self._conn.transaction():
                ids = msg_table.insert(self._conn, messages)
        except CommitInDoubt as exc:
            log.error("the database did not confirm the commit of %d record(s): %s",
                      len(batch), exc)
            self._drop_connection()
            stored = self.settle(exc.session, ids, messages[0])
            if stored is None:
                self._doubts.append(_Doubt(exc.session, tuple(ids), messages[0]))
                self._fail(batch, StorageInDoubt(str(exc)), unavailable=True)
                return
            if not stored:
                self._fail(batch, StorageUnavailable(str(exc)), unavailable=True)
                return
            log.info("records %d-%d were stored after all", ids[0], ids[-1])
        except Exception as exc:  # noqa: BLE001 - every waiter must get an answer
            unavailable = isinstance(exc, UNAVAILABLE_ERRORS)
            if unavailable:
                log.error("could not store %d record(s): %s", len(batch), exc)
            else:
                log.exception("could not store %d record(s)", len(batch))
            self._drop_connection()  # reconnect for the next batch
            self._fail(batch, StorageUnavailable(str(exc)), unavailable)
            return
        self.committed += len(batch)
        answers: dict = {}  # one wake-up of each event loop per batch, not one per record
        for (_, future, loop, _), message_id in zip(batch, ids):
            answers.setdefault(loop, []).append((future, message_id))
        for loop, pairs in answers.items():
            loop.call_soon_threadsafe(_succeed_all, pairs)
        self.backlog.release(len(batch), sum(item[3] for item in batch))
        if self._on_commit is not None:
            self._on_commit(len(batch))
        if self._doubts:
            self._recheck_doubts()

    def _fail(self, batch: List[_Item], error: StorageUnavailable, unavailable: bool) -> None:
        """Answer the batch with ``error``.  When the database is unavailable (it did not
        answer, or not in time), the records that queued up during the attempt fail with
        it, unattempted, before anyone is answered: a stalled database answers everybody
        within one timeout instead of one batch after another."""
        self.last_commit_error = str(error)
        rest: List[_Item] = []
        if unavailable:
            self._gather(rest, None)
        self._answer_failure(batch, error)
        if rest:
            self._answer_failure(rest, StorageUnavailable(str(error)))

    def _answer_failure(self, batch: Sequence[_Item], error: StorageUnavailable) -> None:
        failures: dict = {}
        for _, future, loop, _ in batch:
            failures.setdefault(loop, []).append(future)
        for loop, futures in failures.items():
            loop.call_soon_threadsafe(_fail_all, futures, error)
        self.backlog.release(len(batch), sum(item[3] for item in batch))

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- commits the database did not confirm

    def settle(self, session: Session, ids: Sequence[int],
               first: msg_table.NewMessage) -> Optional[bool]:
        """Whether a transaction whose COMMIT got no answer (``ids`` inserted, the first
        one ``first``) committed: end its session from a new connection, then look for
        its rows.  None when the database does not answer.  Any thread may call it
        (``Sender.store_together`` does)."""
        conn: Optional[Connection] = None
        try:
            conn = self._database.connect()
            return _stored(conn, session, ids, first, self._database.patience())
        except UNAVAILABLE_ERRORS as exc:
            log.error("cannot tell whether records %s were stored: %s", _span(ids), exc)
            return None
        finally:
            if conn is not None:
                conn.close()

    def _recheck_doubts(self) -> None:
        for doubt in list(self._doubts):
            stored = self.settle(doubt.session, doubt.ids, doubt.first)
            if stored is None:
                return  # still unknown: the next commit looks again
            self._doubts.remove(doubt)
            log.warning("record(s) %s answered ERR 504 %s stored", _span(doubt.ids),
                        "were" if stored else "were not")
            if stored and self._on_commit is not None:
                self._on_commit(len(doubt.ids))


def _stored(conn: Connection, session: Session, ids: Sequence[int],
            first: msg_table.NewMessage, timeout: float) -> bool:
    """Whether the batch whose first row is (ids[0], first) was committed by ``session``.
    A batch is one transaction: all its rows are there, or none."""
    if not ids:
        return False  # the INSERT itself did not finish: the COMMIT was never sent
    conn.end_session(session, timeout)
    return (msg_table.holds(conn, ids[0], first.phone, first.text)
            or sent.holds(conn, ids[0], first.phone, first.text))


def _span(ids: Sequence[int]) -> str:
    if not ids:
        return "(no ids)"
    return str(ids[0]) if len(ids) == 1 else f"{ids[0]}-{ids[-1]}"


def _succeed_all(pairs: List[Tuple[asyncio.Future, int]]) -> None:
    for future, message_id in pairs:
        if not future.done():
            future.set_result(message_id)


def _fail_all(futures: List[asyncio.Future], error: StorageUnavailable) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(type(error)(str(error)))
