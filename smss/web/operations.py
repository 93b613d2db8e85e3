"""What operators do to messages and transports, shared by the pages and the API.

Each action and its audit row (``smss.store.audit``) are one transaction:

- ``cancel``: a queued message no dispatcher holds moves to ``sms`` as
  ``cancelled``, told like any message given up (``smss.events.record``: the
  tallies of /metrics, a ``failed`` webhook, a Kannel dlr-url's NACK).  Its row
  is locked first (MariaDB ``FOR UPDATE``; a claim skips locked rows, and a
  cancel waits for a claim in progress and then sees it), so a cancel and a
  claim never both win; a message being sent cannot be cancelled.
- ``retry``: a failed, expired or cancelled message is queued again as a new
  message that names the old one (``retry_of``); the old one names the new one
  (``retried_as``), so it is retried once.
- ``pause`` / ``resume`` a transport: the dispatcher sends nothing through a
  paused transport (it still receives) until it is resumed.
- ``delete_received`` removes received messages.
- ``reply`` queues a message to the sender of a received one, judged like any
  other (``smss.web.sending``).

``Refused`` carries the HTTP status and the reason for the user.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

from smss.events.record import Events
from smss.store import audit, received, sent, transports
from smss.store import queue as msg_table
from smss.store.database import Connection
from smss.web.sending import Result, Sender

MAX_ID = 2**63 - 1


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _valid_id(message_id: int) -> int:
    if not 0 < message_id <= MAX_ID:
        raise Refused(404, f"no message {message_id}")
    return message_id


def cancel(conn: Connection, message_id: int, actor: str,
           events: Optional[Events] = None) -> None:
    _valid_id(message_id)
    events = events or Events()
    with conn.transaction():
        found = msg_table.lock(conn, message_id)
        if found is None:
            done = sent.get(conn, message_id)
            if done is None:
                raise Refused(404, f"no message {message_id}")
            raise Refused(409, f"message {message_id} is not queued any more: it is"
                               f" {done['status']}")
        message, holder = found
        if holder:
            raise Refused(409, f"message {message_id} is being sent (by {holder});"
                               " it cannot be cancelled now")
        error = f"cancelled by {actor}"
        sent.record(conn, message, sent.CANCELLED, attempts=message.attempts, error=error)
        msg_table.delete(conn, message_id)
        events.finished(conn, message, sent.CANCELLED, message.attempts, error=error)
        audit.record(conn, actor, "cancel", f"message {message_id}", message.phone)


def retry(conn: Connection, message_id: int, actor: str) -> int:
    """The id of the new message."""
    _valid_id(message_id)
    with conn.transaction():
        old = sent.lock(conn, message_id)
        if old is None:
            if msg_table.get(conn, message_id) is not None:
                raise Refused(409, f"message {message_id} is still queued")
            raise Refused(404, f"no message {message_id}")
        if old["status"] not in sent.RETRYABLE:
            raise Refused(409, f"message {message_id} was {old['status']}: only a failed,"
                               " expired or cancelled message is sent again")
        if old["retried_as"] is not None:
            raise Refused(409, f"message {message_id} was sent again already, as"
                               f" {old['retried_as']}")
        [new_id] = msg_table.insert(conn, [msg_table.NewMessage(
            old["phone"], old["text"], int(old["parts"]), actor[:64], old["route"],
            retry_of=message_id)])
        sent.mark_retried(conn, message_id, new_id)
        audit.record(conn, actor, "retry", f"message {message_id}", f"queued as {new_id}")
    return new_id


def known_transport(conn: Connection, name: str) -> transports.TransportStatus:
    found = transports.get(conn, name)
    if found is None:
        raise Refused(404, f"no transport {name!r} has reported yet")
    return found


def pause(conn: Connection, name: str, actor: str) -> bool:
    """False when it was paused already."""
    known_transport(conn, name)
    with conn.transaction():
        changed = transports.pause(conn, name, actor)
        if changed:
            audit.record(conn, actor, "pause", f"transport {name}")
    return changed


def resume(conn: Connection, name: str, actor: str) -> bool:
    """False when it was not paused."""
    known_transport(conn, name)
    with conn.transaction():
        changed = transports.resume(conn, name)
        if changed:
            audit.record(conn, actor, "resume", f"transport {name}")
    return changed


def delete_received(conn: Connection, rcv_ids: Sequence[int], actor: str) -> List[int]:
    """The ids deleted (those that existed)."""
    wanted = sorted({i for i in rcv_ids if 0 < i <= MAX_ID})
    with conn.transaction():
        deleted = received.delete(conn, wanted)
        for rcv_id in deleted:
            audit.record(conn, actor, "delete", f"received {rcv_id}")
    return deleted


def reply_target(conn: Connection, rcv_id: int) -> dict:
    found = received.get(conn, rcv_id) if 0 < rcv_id <= MAX_ID else None
    if found is None:
        raise Refused(404, f"no received message {rcv_id}")
    return found


async def reply(sender: Sender, phone: str, text: str, client: str) -> Result:
    [result] = await sender.send([(phone, text)], client)
    return result


def record_reply(conn: Connection, actor: str, rcv_id: int, result: Result) -> None:
    with conn.transaction():
        audit.record(conn, actor, "reply", f"received {rcv_id}",
                     f"queued as {result.id}" if result.ok else result.reply())
