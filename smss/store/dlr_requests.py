"""All SQL on ``dlr_request``: the dlr-url and dlr-mask a Kannel-style sendsms gave a message.

Written in the transaction that queues the message (``smss.web.kannel``), read
when the message is sent or fails and when its delivery reports come
(``smss.events.record``), and forgotten once the message's fate is final.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Dict, Optional, Sequence

from smss.store.database import Connection, utcnow

KEEP = timedelta(days=7)  # longer than a message may wait plus the reference window
_CHUNK = 400  # ids per SELECT: well under SQLite's limit of bound variables


@dataclass(frozen=True)
class DlrRequest:
    msg_id: int
    url: str
    mask: int
    sender: str = ""  # the request's `from` (%P)
    service: str = ""  # the token name that sent it (%n)


def add(conn: Connection, request: DlrRequest) -> None:
    """In the caller's transaction (the one that inserted the message)."""
    conn.execute(
        "INSERT INTO dlr_request (msg_id, url, mask, sender, service, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (request.msg_id, request.url, request.mask, request.sender[:64], request.service[:64],
         utcnow()),
    ).close()


def get(conn: Connection, msg_id: int) -> Optional[DlrRequest]:
    """In the caller's transaction."""
    row = conn.query_one("SELECT msg_id, url, mask, sender, service FROM dlr_request"
                         " WHERE msg_id = ?", (msg_id,))
    return DlrRequest(int(row[0]), row[1], int(row[2]), row[3], row[4]) if row else None


def get_many(conn: Connection, msg_ids: Sequence[int]) -> Dict[int, DlrRequest]:
    """``get`` for several messages (those that have a request), in the caller's
    transaction."""
    found: Dict[int, DlrRequest] = {}
    for start in range(0, len(msg_ids), _CHUNK):
        chunk = list(msg_ids[start:start + _CHUNK])
        marks = ", ".join("?" * len(chunk))
        sql = ("SELECT msg_id, url, mask, sender, service FROM dlr_request"  # noqa: S608
               f" WHERE msg_id IN ({marks})")
        for row in conn.query(sql, chunk):
            found[int(row[0])] = DlrRequest(int(row[0]), row[1], int(row[2]), row[3], row[4])
    return found


def forget(conn: Connection, msg_id: int) -> None:
    conn.execute("DELETE FROM dlr_request WHERE msg_id = ?", (msg_id,)).close()


def prune(conn: Connection, now: Optional[datetime] = None) -> int:
    with conn.transaction():
        cursor = conn.execute("DELETE FROM dlr_request WHERE created_at < ?",
                              ((now or utcnow()) - KEEP,))
        count = cursor.rowcount
        cursor.close()
    return max(count, 0)
