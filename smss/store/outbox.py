"""All SQL on ``outbox``: events waiting to be posted to webhooks and Kannel dlr-urls.

An event is added in the transaction that stores what it tells (``add``), so
it exists exactly when its cause does.  Delivery workers take rows the way
dispatchers take messages: ``claim`` marks due rows of one destination
(``FOR UPDATE SKIP LOCKED`` on MariaDB), so two workers never post one event
at the same time; a claim whose worker died is released after a while
(``release_stale``) and the event is posted again: at least once, with the
event id for the receiver to drop a repeat.  A delivered row is deleted; one
that could not be delivered within its max_age stays as ``failed``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import List, Optional, Sequence

from smss.store.database import Connection, as_datetime, utcnow

PENDING, FAILED = "pending", "failed"


@dataclass(frozen=True)
class NewEvent:
    target: str  # "webhook:NAME" or "dlr-url"
    kind: str  # received, delivery, failed; dlr for a Kannel dlr-url
    payload: str  # the JSON body (webhooks); a description (dlr-url)
    url: Optional[str] = None  # a dlr-url with its escapes filled in
    event_id: str = ""


def new_event_id() -> str:
    return uuid.uuid4().hex


def add(conn: Connection, events: Sequence[NewEvent]) -> None:
    """Queue events, in the caller's transaction."""
    if not events:
        return
    now = utcnow()
    conn.executemany(
        "INSERT INTO outbox (event_id, target, kind, url, payload, created_at, next_attempt_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(e.event_id or new_event_id(), e.target, e.kind, e.url, e.payload, now, now)
         for e in events],
    ).close()


@dataclass(frozen=True)
class Item:
    id: int
    event_id: str
    target: str
    kind: str
    url: Optional[str]
    payload: str
    created_at: datetime
    attempts: int


_COLUMNS = "id, event_id, target, kind, url, payload, created_at, attempts"


def _item(row) -> Item:
    return Item(int(row[0]), row[1], row[2], row[3], row[4], row[5], as_datetime(row[6]),
                int(row[7]))


def claim(conn: Connection, target: str, owner: str, limit: int) -> List[Item]:
    """Take up to ``limit`` due events of one destination, oldest first (commits)."""
    now = utcnow()
    lock = " FOR UPDATE SKIP LOCKED" if conn.dialect == "mysql" else ""
    with conn.transaction():
        rows = conn.query(
            f"SELECT {_COLUMNS} FROM outbox WHERE target = ? AND state = ?"  # noqa: S608
            " AND next_attempt_at <= ? AND claimed_by IS NULL ORDER BY id LIMIT ?" + lock,
            (target, PENDING, now, limit),
        )
        if rows:
            conn.executemany("UPDATE outbox SET claimed_by = ?, claimed_at = ? WHERE id = ?",
                             [(owner, now, row[0]) for row in rows]).close()
    return [_item(row) for row in rows]


def delivered(conn: Connection, item_id: int) -> None:
    """The receiver answered 2xx: the event is done (in the caller's transaction)."""
    conn.execute("DELETE FROM outbox WHERE id = ?", (item_id,)).close()


def retry(conn: Connection, item_id: int, attempts: int, at: datetime, error: str) -> None:
    with conn.transaction():
        conn.execute(
            "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ?,"
            " claimed_by = NULL, claimed_at = NULL WHERE id = ?",
            (attempts, at, error[:255], item_id),
        ).close()


def give_up(conn: Connection, item_id: int, attempts: int, error: str) -> None:
    """Not delivered within its max_age: kept as failed (in the caller's transaction)."""
    conn.execute(
        "UPDATE outbox SET state = ?, attempts = ?, last_error = ?, finished_at = ?,"
        " claimed_by = NULL, claimed_at = NULL WHERE id = ?",
        (FAILED, attempts, error[:255], utcnow(), item_id),
    ).close()


def release(conn: Connection, item_ids: Sequence[int]) -> None:
    """Give claimed events back untouched (a worker stopping)."""
    if item_ids:
        with conn.transaction():
            conn.executemany("UPDATE outbox SET claimed_by = NULL, claimed_at = NULL"
                             " WHERE id = ?", [(i,) for i in item_ids]).close()


def release_stale(conn: Connection, target: str, claimed_before: datetime) -> int:
    """Release claims of a worker that died (posting again is what at-least-once means)."""
    with conn.transaction():
        cursor = conn.execute(
            "UPDATE outbox SET claimed_by = NULL, claimed_at = NULL WHERE target = ?"
            " AND state = ? AND claimed_by IS NOT NULL AND claimed_at < ?",
            (target, PENDING, claimed_before),
        )
        count = cursor.rowcount
        cursor.close()
    return max(count, 0)


def prune_failed(conn: Connection, finished_before: datetime) -> int:
    with conn.transaction():
        cursor = conn.execute("DELETE FROM outbox WHERE state = ? AND finished_at < ?",
                              (FAILED, finished_before))
        count = cursor.rowcount
        cursor.close()
    return max(count, 0)


@dataclass(frozen=True)
class TargetState:
    target: str
    pending: int
    failed: int
    oldest_pending: Optional[datetime]
    last_failure: Optional[datetime]
    last_error: Optional[str]


def summary(conn: Connection, failed_since: Optional[datetime] = None) -> List[TargetState]:
    """Per destination: events waiting, events given up (since ``failed_since``, default
    the last 7 days) and the newest failure's reason."""
    since = failed_since or utcnow() - timedelta(days=7)
    conn.read()
    rows = conn.query(
        "SELECT target, COALESCE(SUM(CASE WHEN state = ? THEN 1 END), 0),"
        " COALESCE(SUM(CASE WHEN state = ? AND finished_at >= ? THEN 1 END), 0),"
        " MIN(CASE WHEN state = ? THEN created_at END),"
        " MAX(CASE WHEN state = ? THEN finished_at END)"
        " FROM outbox GROUP BY target ORDER BY target",
        (PENDING, FAILED, since, PENDING, FAILED),
    )
    found = []
    for target, pending, failed, oldest, last_failure in rows:
        error = None
        if last_failure is not None:
            row = conn.query_one(
                "SELECT last_error FROM outbox WHERE target = ? AND state = ?"
                " ORDER BY finished_at DESC, id DESC LIMIT 1", (target, FAILED))
            error = row[0] if row else None
        found.append(TargetState(target, int(pending), int(failed), as_datetime(oldest),
                                 as_datetime(last_failure), error))
    return found


def failed_events(conn: Connection, limit: int = 20) -> List[dict]:
    """The newest events given up, for the status page."""
    rows = conn.read().query(
        "SELECT id, event_id, target, kind, created_at, finished_at, attempts, last_error"
        " FROM outbox WHERE state = ? ORDER BY finished_at DESC, id DESC LIMIT ?",
        (FAILED, limit),
    )
    keys = ("id", "event_id", "target", "kind", "created_at", "finished_at", "attempts",
            "last_error")
    found = []
    for row in rows:
        item = dict(zip(keys, row))
        item["created_at"] = as_datetime(item["created_at"])
        item["finished_at"] = as_datetime(item["finished_at"])
        found.append(item)
    return found
