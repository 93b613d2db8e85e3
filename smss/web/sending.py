"""Handing messages from the web form and the HTTP API to the queue.

The same path as a TCP record: ``smss.spooler.validate.check`` with the same rules,
the same record size limit (a message counts as the record ``#PHONE;TEXT``
would), then ``Committer.submit``; ``OK <id>`` only once the group commit's
transaction committed, ``ERR 503`` when it failed.  The committer's
``on_commit`` kicks the dispatcher, as it does for the TCP door.  Each message
is judged on its own: the good ones are stored even when others fail.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from smss.spooler import validate
from smss.spooler.committer import Committer, StorageUnavailable
from smss.spooler.protocol import TOO_LONG, UNAVAILABLE, Record, RecordError, format_record
from smss.store.queue import NewMessage

log = logging.getLogger(__name__)

CLIENT_WIDTH = 64  # msg.client is VARCHAR(64)


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

    async def send(self, messages: Sequence[Tuple[str, str]], client: str) -> List[Result]:
        """Judge and store ``(phone, text)`` pairs; call on the event loop."""
        client = client[:CLIENT_WIDTH]
        pending: List["Result | asyncio.Future"] = []
        for phone, text in messages:
            verdict = self.judge(phone, text)
            if isinstance(verdict, RecordError):
                pending.append(Result(code=verdict.code, error=verdict.reason, phone=phone))
                continue
            pending.append(self.committer.submit(
                NewMessage(verdict.phone, verdict.text, verdict.parts, client,
                           verdict.route)))
        results: List[Result] = []
        for (phone, _), item in zip(messages, pending):
            if isinstance(item, Result):
                results.append(item)
                continue
            try:
                results.append(Result(id=await item, phone=phone))
            except StorageUnavailable:
                results.append(Result(code=UNAVAILABLE, error="storage unavailable, not stored",
                                      phone=phone))
        stored = sum(1 for r in results if r.ok)
        log.info("%s: %d message(s) stored, %d refused", client, stored, len(results) - stored)
        return results
