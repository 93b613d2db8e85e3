"""All SQL on ``rcv`` (what came in): storing, listing, counting per hour, deleting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterator, List, Optional, Sequence, Tuple

from smss.store import paging
from smss.store.database import Connection, as_datetime, hour_bucket, parse_hour, utcnow


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


def delete(conn: Connection, rcv_ids: Sequence[int]) -> List[int]:
    """Delete these messages, in the caller's transaction; returns the ids that existed."""
    found: List[int] = []
    for rcv_id in rcv_ids:  # by primary key, one row at a time (no gap locks)
        cursor = conn.execute("DELETE FROM rcv WHERE id = ?", (rcv_id,))
        if cursor.rowcount > 0:
            found.append(int(rcv_id))
        cursor.close()
    return found


@dataclass(frozen=True)
class HourCount:
    hour: datetime  # the UTC hour the rows fall in
    transport: str
    count: int


def hourly(conn: Connection, since: datetime, until: Optional[datetime] = None
           ) -> List[HourCount]:
    """Messages per UTC hour of ``received_at`` in [since, until), by transport.  Reads
    only the covering index rcv_chart over that range."""
    hour = hour_bucket(conn, "received_at")
    where, params = "received_at >= ?", [since]
    if until is not None:
        where, params = where + " AND received_at < ?", params + [until]
    rows = conn.read().query(
        f"SELECT {hour}, transport, COUNT(*) FROM rcv WHERE {where}"  # noqa: S608
        " GROUP BY 1, transport", params)
    return [HourCount(parse_hour(row[0]), row[1], int(row[2])) for row in rows]


# -- listings (the web interface's received page and the HTTP API)

LISTING_STATES = ("error",)

_LISTING = paging.Listing(
    "rcv",
    ("id", "phone", "text", "received_at", "sent_at", "parts", "smsc", "transport",
     "error", "handler_status"),
    "received_at", ("received_at", "sent_at"),
)


def _listing_conditions(filters: paging.Filters) -> Tuple[List[str], List[object]]:
    where, params = filters.conditions()
    if filters.status == "error":
        where.append("error IS NOT NULL")
    elif filters.status:
        raise ValueError(f"unknown received state {filters.status!r}")
    return where, params


def page(conn: Connection, filters: paging.Filters, *, before: Optional[paging.Cursor] = None,
         after: Optional[paging.Cursor] = None, limit: int = 50) -> paging.Page:
    """One page of ``rcv``, newest first by ``received_at`` (``smss.store.paging``).
    ``filters.status``: ``error`` (undecodable or incomplete messages only)."""
    where, params = _listing_conditions(filters)
    return paging.fetch(conn, _LISTING, where, params, since=filters.since,
                        until=filters.until, before=before, after=after, limit=limit)


def every(conn: Connection, filters: paging.Filters, chunk: int = 1000) -> Iterator[dict]:
    """Every received message ``page`` would list, newest first, a chunk at a time."""
    where, params = _listing_conditions(filters)
    return paging.iterate(conn, _LISTING, where, params, since=filters.since,
                          until=filters.until, chunk=chunk)


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
