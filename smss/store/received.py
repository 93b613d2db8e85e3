"""All SQL on ``rcv`` (what came in)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import List, Optional, Sequence

from smss.store import paging
from smss.store.database import Connection, as_datetime, utcnow


@dataclass(frozen=True)
class Incoming:
    phone: str
    text: str
    sent_at: Optional[datetime] = None  # the sender's (SMSC) timestamp, UTC
    parts: int = 1
    smsc: str = ""
    transport: str = ""
    raw_pdu: Optional[str] = None  # kept when the PDU could not be decoded
    error: Optional[str] = None
    message_class: Optional[int] = None  # TP-DCS message class, for on_receive
    concat_reference: Optional[int] = None  # concatenation reference, for on_receive
    hook: bool = False  # on_receive is to run for it: stored as waiting


# rcv.handler_state: NULL (stored without on_receive), then these
HOOK_WAITING, HOOK_RUNNING, HOOK_DONE = "waiting", "running", "done"


def insert(conn: Connection, message: Incoming) -> int:
    """Store one received message in the caller's transaction; returns its id."""
    cursor = conn.execute(
        "INSERT INTO rcv (phone, text, received_at, sent_at, parts, smsc, transport, raw_pdu,"
        " error, message_class, concat_reference, handler_state)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (message.phone, message.text, utcnow(), message.sent_at, message.parts, message.smsc,
         message.transport, message.raw_pdu, message.error[:255] if message.error else None,
         message.message_class, message.concat_reference,
         HOOK_WAITING if message.hook else None),
    )
    rcv_id = int(cursor.lastrowid)
    cursor.close()
    return rcv_id


def stored_since(conn: Connection, transport: str, phone: str, text: str,
                 raw_pdu: Optional[str], since: datetime) -> Optional[int]:
    """The id of a row with this content from ``transport`` committed at or after
    ``since`` (did a pass that died, or could not delete from the SIM, store it?)."""
    row = conn.read().query_one(
        "SELECT id FROM rcv WHERE transport = ? AND phone = ? AND text = ?"
        " AND COALESCE(raw_pdu, '') = ? AND received_at >= ? ORDER BY id LIMIT 1",
        (transport, phone, text, raw_pdu or "", since),
    )
    return int(row[0]) if row else None


def set_handler_status(conn: Connection, rcv_id: int, status: int) -> None:
    """The on_receive program of ``rcv_id`` ended with ``status`` (commits)."""
    with conn.transaction():
        conn.execute("UPDATE rcv SET handler_status = ?, handler_state = ? WHERE id = ?",
                     (status, HOOK_DONE, rcv_id)).close()


def _in(transports: Sequence[str]) -> str:
    return ", ".join("?" * len(transports))


def hooks_waiting(conn: Connection, transports: Sequence[str], limit: int) -> List[int]:
    """Ids of messages from these transports whose on_receive waits, oldest first."""
    if not transports or limit <= 0:
        return []
    rows = conn.read().query(
        f"SELECT id FROM rcv WHERE handler_state = ? AND transport IN ({_in(transports)})"  # noqa: S608
        " ORDER BY id LIMIT ?",
        (HOOK_WAITING, *transports, limit),
    )
    return [int(row[0]) for row in rows]


def start_hook(conn: Connection, rcv_id: int) -> bool:
    """Mark a waiting on_receive as running (commits); False when it was not waiting."""
    with conn.transaction():
        cursor = conn.execute("UPDATE rcv SET handler_state = ? WHERE id = ? AND handler_state = ?",
                              (HOOK_RUNNING, rcv_id, HOOK_WAITING))
        changed = cursor.rowcount
        cursor.close()
    return changed > 0


def hooks_running(conn: Connection, transports: Sequence[str]) -> List[int]:
    """Ids marked running (by a runner that is gone, when no runner holds the lock)."""
    if not transports:
        return []
    rows = conn.read().query(
        f"SELECT id FROM rcv WHERE handler_state = ? AND transport IN ({_in(transports)})"  # noqa: S608
        " ORDER BY id",
        (HOOK_RUNNING, *transports),
    )
    return [int(row[0]) for row in rows]


def get(conn: Connection, rcv_id: int) -> Optional[dict]:
    row = conn.read().query_one(
        "SELECT id, phone, text, received_at, sent_at, parts, smsc, transport, raw_pdu, error,"
        " handler_status, message_class, concat_reference, handler_state FROM rcv WHERE id = ?",
        (rcv_id,),
    )
    if row is None:
        return None
    keys = ("id", "phone", "text", "received_at", "sent_at", "parts", "smsc", "transport",
            "raw_pdu", "error", "handler_status", "message_class", "concat_reference",
            "handler_state")
    return dict(zip(keys, row))


def count(conn: Connection) -> int:
    row = conn.read().query_one("SELECT COUNT(*) FROM rcv")
    return int(row[0]) if row else 0


def last_received(conn: Connection) -> Optional[datetime]:
    row = conn.read().query_one("SELECT MAX(received_at) FROM rcv")
    return as_datetime(row[0]) if row else None


# -- listings (the web interface's received page and the HTTP API)

_LISTING = paging.Listing(
    "rcv",
    ("id", "phone", "text", "received_at", "sent_at", "parts", "smsc", "transport",
     "error", "handler_status"),
    "received_at", ("received_at", "sent_at"),
)


def page(conn: Connection, filters: paging.Filters, *, before: Optional[paging.Cursor] = None,
         after: Optional[paging.Cursor] = None, limit: int = 50) -> paging.Page:
    """One page of ``rcv``, newest first by ``received_at`` (``smss.store.paging``).
    ``filters.status``: ``error`` (undecodable or incomplete messages only)."""
    where, params = filters.conditions()
    if filters.status == "error":
        where.append("error IS NOT NULL")
    elif filters.status:
        raise ValueError(f"unknown received state {filters.status!r}")
    return paging.fetch(conn, _LISTING, where, params, since=filters.since,
                        until=filters.until, before=before, after=after, limit=limit)


def since(conn: Connection, after_id: int, limit: int) -> List[dict]:
    """Messages with an id above ``after_id``, oldest first (for pollers of the API)."""
    columns = _LISTING.columns
    rows = conn.read().query(
        f"SELECT {', '.join(columns)} FROM rcv WHERE id > ? ORDER BY id LIMIT ?",  # noqa: S608
        (after_id, limit),
    )
    found = []
    for row in rows:
        item = dict(zip(columns, row))
        item["id"] = int(item["id"])
        item["received_at"] = as_datetime(item["received_at"])
        item["sent_at"] = as_datetime(item["sent_at"])
        found.append(item)
    return found
