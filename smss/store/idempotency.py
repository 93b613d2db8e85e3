"""All SQL on ``idempotency_key``: the first answer to each Idempotency-Key of the HTTP API.

A key belongs to one API token and lives for ``LIFETIME``.  The row is written
in the transaction that stores the request's messages, and the primary key
(token, key) makes a second, concurrent request with the same key fail to
commit: its messages roll back with it, and it answers with the first one's
row instead.  Rows older than the lifetime count as absent and are pruned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

from smss.store.database import Connection, as_datetime, utcnow

LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Stored:
    request_hash: str
    status: int
    answer: str  # the JSON body answered the first time
    created_at: datetime


def find(conn: Connection, token_id: int, key: str) -> Optional[Stored]:
    """The answer stored for this key within its lifetime, in the caller's transaction
    (an expired row is deleted, so the key can be used again)."""
    row = conn.query_one(
        "SELECT request_hash, status, answer, created_at FROM idempotency_key"
        " WHERE token_id = ? AND idem_key = ?", (token_id, key))
    if row is None:
        return None
    stored = Stored(row[0], int(row[1]), row[2], as_datetime(row[3]))
    if stored.created_at < utcnow() - LIFETIME:
        conn.execute("DELETE FROM idempotency_key WHERE token_id = ? AND idem_key = ?",
                     (token_id, key)).close()
        return None
    return stored


def remember(conn: Connection, token_id: int, key: str, request_hash: str, status: int,
             answer: str) -> None:
    """Store the first answer, in the transaction that stored the messages; raises the
    driver's IntegrityError when another request with this key committed first."""
    conn.execute(
        "INSERT INTO idempotency_key (token_id, idem_key, request_hash, status, answer,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (token_id, key, request_hash, status, answer, utcnow()),
    ).close()


def prune(conn: Connection) -> int:
    with conn.transaction():
        cursor = conn.execute("DELETE FROM idempotency_key WHERE created_at < ?",
                              (utcnow() - LIFETIME,))
        count = cursor.rowcount
        cursor.close()
    return max(count, 0)
