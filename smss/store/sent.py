"""All SQL on ``sms`` (what was sent, finally failed or was cancelled) and ``sms_part``
(its parts).

A message leaves the queue with ``record`` and ``smss.store.queue.delete`` in
one transaction.  Delivery reports find their part by the transport's
message reference (the newest part with that reference: modem references
wrap at 255), and a message is delivered when every part is.  A failed,
expired or cancelled message can be sent again once: the new queued message
names it (``retry_of``) and it names the new one (``retried_as``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterator, List, Optional, Sequence, Tuple

from smss.store import paging
from smss.store.database import Connection, as_datetime, hour_bucket, parse_hour, utcnow
from smss.store.queue import Claimed

SENT, FAILED, EXPIRED, CANCELLED = "sent", "failed", "expired", "cancelled"
RETRYABLE = (FAILED, EXPIRED, CANCELLED)
PENDING, DELIVERED, UNDELIVERED = "pending", "delivered", "failed"

# A report older than this cannot belong to a part: the reference has wrapped since.
REFERENCE_WINDOW = timedelta(days=3)


@dataclass(frozen=True)
class Outcome:
    """How a message leaves the queue: the ``sms`` row ``record_many`` writes."""

    message: Claimed
    status: str
    attempts: int
    transport: str = ""
    references: Tuple[str, ...] = ()
    error: Optional[str] = None
    track_delivery: bool = False


def record(conn: Connection, message: Claimed, status: str, *, attempts: int,
           transport: str = "", references: Sequence[str] = (), error: Optional[str] = None,
           track_delivery: bool = False) -> None:
    """Write the ``sms`` row (and one ``sms_part`` row per reference), in the caller's
    transaction."""
    record_many(conn, [Outcome(message, status, attempts, transport, tuple(references),
                               error, track_delivery)])


def record_many(conn: Connection, outcomes: Sequence[Outcome]) -> None:
    """``record`` for several messages: one multi-row INSERT into each table, in the
    caller's transaction."""
    if not outcomes:
        return
    now = utcnow()
    rows, parts = [], []
    for outcome in outcomes:
        message, references = outcome.message, outcome.references
        delivery = PENDING if (outcome.track_delivery and references) else None
        rows.append((message.id, message.phone, message.text, outcome.status, now,
                     message.parts, message.client, message.route, message.created_at,
                     outcome.attempts, outcome.transport, ",".join(references)[:255],
                     outcome.error[:255] if outcome.error else None, delivery,
                     message.retry_of))
        parts += [(message.id, number, outcome.transport, str(reference), now, delivery)
                  for number, reference in enumerate(references, 1)]
    conn.executemany(
        "INSERT INTO sms (id, phone, text, status, sent_at, parts, client, route, created_at,"
        " attempts, transport, refs, error, delivery, retry_of)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    ).close()
    if parts:
        conn.executemany(
            "INSERT INTO sms_part (sms_id, part, transport, reference, sent_at, delivery)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            parts,
        ).close()


@dataclass(frozen=True)
class DeliveryUpdate:
    sms_id: int
    part: int
    message_delivery: Optional[str]  # the whole message's state after this report


def report(conn: Connection, transport: str, reference: str, delivered: Optional[bool],
           status_code: int, reported_at: Optional[datetime] = None) -> Optional[DeliveryUpdate]:
    """Apply a delivery report to its part, in the caller's transaction.

    ``delivered``: True, False (final failure), or None (still trying: recorded,
    the message stays pending).  Returns None when no part matches.
    """
    now = reported_at or utcnow()
    row = conn.query_one(
        "SELECT sms_id, part FROM sms_part WHERE transport = ? AND reference = ?"
        " AND sent_at >= ? ORDER BY sent_at DESC, sms_id DESC LIMIT 1",
        (transport, str(reference), now - REFERENCE_WINDOW),
    )
    if row is None:
        return None
    sms_id, part = int(row[0]), int(row[1])
    state = PENDING if delivered is None else (DELIVERED if delivered else UNDELIVERED)
    conn.execute(
        "UPDATE sms_part SET delivery = ?, status_code = ?, reported_at = ?"
        " WHERE sms_id = ? AND part = ?",
        (state, status_code, now, sms_id, part),
    ).close()
    states = [r[0] for r in conn.query("SELECT delivery FROM sms_part WHERE sms_id = ?",
                                        (sms_id,))]
    if UNDELIVERED in states:
        whole = UNDELIVERED
    elif all(s == DELIVERED for s in states):
        whole = DELIVERED
    else:
        whole = PENDING
    conn.execute(
        "UPDATE sms SET delivery = ?, delivered_at = ? WHERE id = ?",
        (whole, now if whole == DELIVERED else None, sms_id),
    ).close()
    return DeliveryUpdate(sms_id, part, whole)


_GET_KEYS = ("id", "phone", "text", "status", "sent_at", "parts", "attempts", "transport",
             "refs", "error", "delivery", "delivered_at", "created_at", "client", "route",
             "retry_of", "retried_as")


def get(conn: Connection, sms_id: int) -> Optional[dict]:
    row = conn.read().query_one(
        f"SELECT {', '.join(_GET_KEYS)} FROM sms WHERE id = ?", (sms_id,)  # noqa: S608
    )
    return dict(zip(_GET_KEYS, row)) if row else None


def lock(conn: Connection, sms_id: int) -> Optional[dict]:
    """``get`` with the row locked until the caller's transaction ends (MariaDB: FOR
    UPDATE; SQLite: the transaction is the only writer)."""
    lock_clause = " FOR UPDATE" if conn.dialect == "mysql" else ""
    row = conn.query_one(
        f"SELECT {', '.join(_GET_KEYS)} FROM sms WHERE id = ?" + lock_clause,  # noqa: S608
        (sms_id,))
    return dict(zip(_GET_KEYS, row)) if row else None


def mark_retried(conn: Connection, sms_id: int, new_id: int) -> None:
    """Name the message that sends ``sms_id`` again, in the caller's transaction."""
    conn.execute("UPDATE sms SET retried_as = ? WHERE id = ?", (new_id, sms_id)).close()


def holds(conn: Connection, sms_id: int, phone: str, text: str) -> bool:
    """Whether this message was sent (or given up) under this id."""
    return conn.read().query_one(
        "SELECT 1 FROM sms WHERE id = ? AND phone = ? AND text = ?", (sms_id, phone, text)
    ) is not None


def recent_sends(conn: Connection, transport: str, since: datetime) -> List[Tuple[datetime, int]]:
    """(time, parts) of what this transport sent or tried since ``since``, oldest first
    (for the per-SIM rate limit: every part is one SMS the SIM submitted)."""
    rows = conn.read().query(
        "SELECT sent_at, parts FROM sms WHERE transport = ? AND sent_at >= ? ORDER BY sent_at",
        (transport, since),
    )
    return [(as_datetime(row[0]), max(1, int(row[1]))) for row in rows]


@dataclass(frozen=True)
class SentStats:
    by_status: dict
    last_sent: Optional[datetime]
    last_failure: Optional[tuple]  # (when, phone, error)


def stats(conn: Connection) -> SentStats:
    conn.read()
    by_status = {r[0]: int(r[1]) for r in
                 conn.query("SELECT status, COUNT(*) FROM sms GROUP BY status")}
    last = conn.query_one("SELECT MAX(sent_at) FROM sms WHERE status = ?", (SENT,))
    failure = conn.query_one(
        "SELECT sent_at, phone, error FROM sms WHERE status <> ? ORDER BY sent_at DESC LIMIT 1",
        (SENT,),
    )
    return SentStats(
        by_status,
        as_datetime(last[0]) if last else None,
        (as_datetime(failure[0]), failure[1], failure[2]) if failure else None,
    )


def rows_for(conn: Connection, ids: Sequence[int]) -> List[dict]:
    return [r for r in (get(conn, i) for i in ids) if r is not None]


def recent_failures(conn: Connection, transport: str, limit: int = 10) -> List[dict]:
    """The newest messages that failed through ``transport`` (index
    sms_transport_status_sent_at: an equality range read backwards)."""
    keys = ("id", "phone", "sent_at", "attempts", "error")
    rows = conn.read().query(
        "SELECT id, phone, sent_at, attempts, error FROM sms WHERE transport = ?"
        " AND status = ? ORDER BY sent_at DESC LIMIT ?", (transport, FAILED, limit))
    found = [dict(zip(keys, row)) for row in rows]
    for item in found:
        item["sent_at"] = as_datetime(item["sent_at"])
    return found


# -- history (the charts of the web interface)


@dataclass(frozen=True)
class HourCount:
    hour: datetime  # the UTC hour the rows fall in
    transport: str
    status: str
    delivery: Optional[str]
    count: int


def hourly(conn: Connection, since: datetime, until: Optional[datetime] = None
           ) -> List[HourCount]:
    """Messages per UTC hour of ``sent_at`` in [since, until), by transport, status and
    delivery.  Reads only the covering index sms_chart over that range."""
    hour = hour_bucket(conn, "sent_at")
    where, params = "sent_at >= ?", [since]
    if until is not None:
        where, params = where + " AND sent_at < ?", params + [until]
    rows = conn.read().query(
        f"SELECT {hour}, transport, status, delivery, COUNT(*) FROM sms"  # noqa: S608
        f" WHERE {where} GROUP BY 1, transport, status, delivery", params)
    return [HourCount(parse_hour(row[0]), row[1], row[2], row[3], int(row[4])) for row in rows]


# -- listings (the web interface's sent page)

LISTING_STATUSES = (SENT, FAILED, EXPIRED, CANCELLED)
LISTING_DELIVERIES = (PENDING, DELIVERED, UNDELIVERED)

_LISTING = paging.Listing(
    "sms",
    ("id", "phone", "text", "status", "sent_at", "parts", "client", "created_at",
     "attempts", "transport", "error", "delivery", "delivered_at", "retry_of", "retried_as"),
    "sent_at", ("sent_at", "created_at", "delivered_at"),
)


def _listing_conditions(filters: paging.Filters, delivery: Optional[str]
                        ) -> Tuple[List[str], List[object]]:
    where, params = filters.conditions()
    if filters.status:
        if filters.status not in LISTING_STATUSES:
            raise ValueError(f"unknown status {filters.status!r}")
        where.append("status = ?")
        params.append(filters.status)
    if delivery:
        if delivery not in LISTING_DELIVERIES:
            raise ValueError(f"unknown delivery state {delivery!r}")
        where.append("delivery = ?")
        params.append(delivery)
    return where, params


def page(conn: Connection, filters: paging.Filters, *, delivery: Optional[str] = None,
         before: Optional[paging.Cursor] = None, after: Optional[paging.Cursor] = None,
         limit: int = 50) -> paging.Page:
    """One page of ``sms``, newest first by ``sent_at`` (``smss.store.paging``).
    ``filters.status``: sent, failed, expired, cancelled; ``delivery``: pending,
    delivered, failed."""
    where, params = _listing_conditions(filters, delivery)
    return paging.fetch(conn, _LISTING, where, params, since=filters.since,
                        until=filters.until, before=before, after=after, limit=limit)


def every(conn: Connection, filters: paging.Filters, *, delivery: Optional[str] = None,
          chunk: int = 1000) -> Iterator[dict]:
    """Every message ``page`` would list, newest first, a chunk at a time."""
    where, params = _listing_conditions(filters, delivery)
    return paging.iterate(conn, _LISTING, where, params, since=filters.since,
                          until=filters.until, chunk=chunk)


def parts(conn: Connection, sms_id: int) -> List[dict]:
    """The ``sms_part`` rows of one message, in part order."""
    keys = ("part", "transport", "reference", "sent_at", "delivery", "status_code", "reported_at")
    rows = conn.read().query(
        "SELECT part, transport, reference, sent_at, delivery, status_code, reported_at"
        " FROM sms_part WHERE sms_id = ? ORDER BY part",
        (sms_id,),
    )
    found = []
    for row in rows:
        item = dict(zip(keys, row))
        item["sent_at"] = as_datetime(item["sent_at"])
        item["reported_at"] = as_datetime(item["reported_at"])
        found.append(item)
    return found
