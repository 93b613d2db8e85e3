"""Handing messages from the web form and the HTTP API to the queue.

The same path as a TCP record: ``smss.spooler.validate.check`` with the same rules,
the same record size limit (a message counts as the record ``#PHONE;TEXT``
would), then ``Committer.submit`` (which waits while the committer's backlog is
full); ``OK <id>`` only once the group commit's transaction committed, ``ERR
503`` when it failed, ``ERR 504`` when the database never confirmed it.  The committer's
``on_commit`` kicks the dispatcher, as it does for the TCP door.  Each message
is judged on its own: the good ones are stored even when others fail.

``store_together`` is the other way in, for a request whose messages must be
committed together with rows of its own (an Idempotency-Key's answer, a
Kannel dlr-url): one transaction on the caller's connection, outside the
group commit, and the dispatcher kicked the same way afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple

import pymysql

from smss import doors
from smss.spooler import validate
from smss.spooler.committer import Committer, StorageInDoubt, StorageUnavailable
from smss.spooler.protocol import (
    IN_DOUBT,
    TOO_LONG,
    UNAVAILABLE,
    Record,
    RecordError,
    format_record,
)
from smss.store import queue as msg_table
from smss.store.database import UNAVAILABLE_ERRORS, CommitInDoubt, Connection
from smss.store.queue import NewMessage

log = logging.getLogger(__name__)

CLIENT_WIDTH = 64  # msg.client is VARCHAR(64)
# What a failed transaction raises: unreachable, or refusing (disk full, a constraint ...)
_STORE_ERRORS = (*UNAVAILABLE_ERRORS, sqlite3.Error, pymysql.err.Error)


@dataclass(frozen=True)
class Result:
    """One message's answer, with the meaning of the TCP reply line."""

    id: Optional[int] = None
    code: Optional[int] = None
    error: Optional[str] = None
    phone: str = ""  # as given

    @property
    def ok(self) -> bool:
        return self.id is not None

    def reply(self) -> str:
        return f"OK {self.id}" if self.ok else f"ERR {self.code} {self.error}"


class Sender:
    def __init__(self, committer: Committer, rules: validate.Rules,
                 max_record_bytes: int = 8192) -> None:
        self.committer = committer
        self.rules = rules
        self.max_record_bytes = max_record_bytes

    def judge(self, phone: str, text: str) -> "validate.Message | RecordError":
        if len(format_record(phone, text)) > self.max_record_bytes:
            return RecordError(TOO_LONG, f"record longer than {self.max_record_bytes} bytes,"
                                         " skipped")
        return validate.check(Record(phone, text), self.rules)

    def kick(self) -> None:
        """Kick the dispatcher for messages queued another way (a retry, a resumed
        transport)."""
        self.committer.notify_commit(1)

    async def send(self, messages: Sequence[Tuple[str, str]], client: str) -> List[Result]:
        """Judge and store ``(phone, text)`` pairs; call on the event loop."""
        client = client[:CLIENT_WIDTH]
        pending: List["Result | asyncio.Future"] = []
        for phone, text in messages:
            verdict = self.judge(phone, text)
            if isinstance(verdict, RecordError):
                pending.append(Result(code=verdict.code, error=verdict.reason, phone=phone))
                continue
            pending.append(await self.committer.submit(
                NewMessage(verdict.phone, verdict.text, verdict.parts, client,
                           verdict.route)))
        results: List[Result] = []
        for (phone, _), item in zip(messages, pending):
            if isinstance(item, Result):
                results.append(item)
                continue
            try:
                results.append(Result(id=await item, phone=phone))
            except StorageInDoubt:
                results.append(Result(code=IN_DOUBT, error="storage did not confirm the commit,"
                                      " the message may be stored", phone=phone))
            except StorageUnavailable:
                results.append(Result(code=UNAVAILABLE, error="storage unavailable, not stored",
                                      phone=phone))
        stored = sum(1 for r in results if r.ok)
        door = client.partition(":")[0]
        doors.accepted(door, stored)
        for result in results:
            if not result.ok:
                doors.refused(door, result.code or UNAVAILABLE)
        log.info("%s: %d message(s) stored, %d refused", client, stored, len(results) - stored)
        return results

    def store_together(self, conn: Connection,
                       judged: Sequence[Tuple[str, "validate.Message | RecordError"]],
                       client: str,
                       extra: Optional[Callable[[Connection, List[Result]], Any]] = None
                       ) -> List[Result]:
        """Store the messages that passed ``judge`` (``(phone as given, verdict)`` pairs)
        in one transaction on ``conn`` with whatever ``extra(conn, results)`` writes; call
        from a worker thread.  ``StorageUnavailable`` when the transaction failed
        (nothing is stored then, ``extra``'s rows neither); a COMMIT the database did not
        confirm is settled first (``Committer.settle``), and ``StorageInDoubt`` when
        even that gets no answer."""
        client = client[:CLIENT_WIDTH]
        good = [NewMessage(v.phone, v.text, v.parts, client, v.route)
                for _, v in judged if not isinstance(v, RecordError)]
        door = client.partition(":")[0]
        inserted: List[int] = []
        try:
            with conn.transaction():
                inserted = msg_table.insert(conn, good)
                ids = iter(inserted)
                results = [Result(code=v.code, error=v.reason, phone=phone)
                           if isinstance(v, RecordError) else Result(id=next(ids), phone=phone)
                           for phone, v in judged]
                if extra is not None:
                    extra(conn, results)
        except CommitInDoubt as exc:  # settled the way the group commit settles its own
            stored = self.committer.settle(exc.session, inserted, good[0]) if good else None
            if stored is None:
                _not_stored(door, good, IN_DOUBT, client, exc)
                raise StorageInDoubt(str(exc)) from exc
            if not stored:
                _not_stored(door, good, UNAVAILABLE, client, exc)
                raise StorageUnavailable(str(exc)) from exc
        except _STORE_ERRORS as exc:
            _not_stored(door, good, UNAVAILABLE, client, exc)
            raise StorageUnavailable(str(exc)) from exc
        doors.accepted(door, len(good))
        for result in results:
            if not result.ok:
                doors.refused(door, result.code or UNAVAILABLE)
        self.committer.notify_commit(len(good))
        log.info("%s: %d message(s) stored, %d refused", client, len(good),
                 len(results) - len(good))
        return results


def _not_stored(door: str, good: Sequence[NewMessage], code: int, client: str,
                exc: BaseException) -> None:
    for _ in good:
        doors.refused(door, code)
    log.error("%s: %d message(s) not stored: %s", client, len(good), exc)
