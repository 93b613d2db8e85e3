"""All SQL on the ``msg`` table (the queue of acknowledged, not yet sent messages)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import List, Optional, Sequence

from smss.store.database import Connection, as_datetime, utcnow

_COLUMNS = "phone, text, parts, client, route, created_at, next_attempt_at"
_ROW = "(?, ?, ?, ?, ?, ?, ?)"
_CHUNK = 400  # rows per INSERT: well under SQLite's limit of bound variables


@dataclass(frozen=True)
class NewMessage:
    phone: str
    text: str
    parts: int = 1
    client: str = ""
    route: Optional[str] = None


def insert(conn: Connection, messages: Sequence[NewMessage]) -> List[int]:
    """Insert in the caller's transaction; returns the ids in the order given."""
    now = utcnow()
    rows = [(m.phone, m.text, m.parts, m.client, m.route, now, now) for m in messages]
    ids: List[int] = []
    returning = _supports_returning(conn)
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        if returning:
            # One statement for the chunk.  Auto-increment ids grow in VALUES order,
            # whatever order RETURNING lists them in, so sorting restores the pairing.
            values = ", ".join([_ROW] * len(chunk))
            sql = f"INSERT INTO msg ({_COLUMNS}) VALUES {values}"  # noqa: S608 - placeholders
            sql += " RETURNING id"
            flat = [value for row in chunk for value in row]
            ids.extend(sorted(int(row[0]) for row in conn.query(sql, flat)))
        else:
            for row in chunk:
                sql = f"INSERT INTO msg ({_COLUMNS}) VALUES {_ROW}"  # noqa: S608 - placeholders
                cursor = conn.execute(sql, row)
                ids.append(int(cursor.lastrowid))
                cursor.close()
    return ids


def _supports_returning(conn: Connection) -> bool:
    """SQLite 3.35+ and MariaDB 10.5+ have INSERT … RETURNING; MySQL has not."""
    cached = getattr(conn, "_smss_returning", None)
    if cached is None:
        if conn.dialect == "sqlite":
            import sqlite3

            cached = sqlite3.sqlite_version_info >= (3, 35, 0)
        else:
            version = str(conn.query_one("SELECT VERSION()")[0])
            numbers = tuple(int(n) for n in version.split("-")[0].split(".")[:2])
            cached = "mariadb" in version.lower() and numbers >= (10, 5)
        conn._smss_returning = cached  # type: ignore[attr-defined]
    return cached


@dataclass(frozen=True)
class QueueStats:
    depth: int
    due: int
    deferred: int
    claimed: int
    oldest: Optional[datetime]
    newest: Optional[datetime]


def stats(conn: Connection) -> QueueStats:
    now = utcnow()
    row = conn.read().query_one(
        "SELECT COUNT(*),"
        " COALESCE(SUM(CASE WHEN claimed_by IS NULL AND next_attempt_at <= ? THEN 1 END), 0),"
        " COALESCE(SUM(CASE WHEN claimed_by IS NULL AND next_attempt_at > ? THEN 1 END), 0),"
        " COALESCE(SUM(CASE WHEN claimed_by IS NOT NULL THEN 1 END), 0),"
        " MIN(created_at), MAX(created_at) FROM msg",
        (now, now),
    )
    assert row is not None
    return QueueStats(
        int(row[0]), int(row[1]), int(row[2]), int(row[3]), as_datetime(row[4]), as_datetime(row[5])
    )


def get(conn: Connection, message_id: int) -> Optional[dict]:
    row = conn.read().query_one(
        "SELECT id, phone, text, parts, client, created_at, attempts, next_attempt_at,"
        " last_error, claimed_by FROM msg WHERE id = ?",
        (message_id,),
    )
    if row is None:
        return None
    keys = ("id", "phone", "text", "parts", "client", "created_at", "attempts",
            "next_attempt_at", "last_error", "claimed_by")
    return dict(zip(keys, row))


def last_accepted(conn: Connection) -> Optional[datetime]:
    """When the newest record was accepted, whether it is still queued or already sent."""
    row = conn.read().query_one(
        "SELECT MAX(created_at) FROM (SELECT MAX(created_at) AS created_at FROM msg"
        " UNION ALL SELECT MAX(created_at) FROM sms) AS newest"
    )
    return as_datetime(row[0]) if row else None
