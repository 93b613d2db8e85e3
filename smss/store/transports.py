"""All SQL on ``transport_status``: each transport's state after its last pass."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import List, Optional

from smss.store.database import Connection, as_datetime, utcnow


@dataclass(frozen=True)
class TransportStatus:
    name: str
    updated_at: Optional[datetime]
    state: str
    signal_dbm: Optional[int] = None
    registration: Optional[str] = None
    operator: Optional[str] = None
    last_error: Optional[str] = None
    last_error_at: Optional[datetime] = None


def save(conn: Connection, name: str, state: str, *, signal_dbm: Optional[int] = None,
         registration: Optional[str] = None, operator: Optional[str] = None,
         error: Optional[str] = None) -> None:
    """Upsert the transport's row; an error is kept until the next error replaces it."""
    now = utcnow()
    with conn.transaction():
        exists = conn.query_one("SELECT 1 FROM transport_status WHERE name = ?", (name,))
        if not exists:
            conn.execute("INSERT INTO transport_status (name, updated_at, state) VALUES (?, ?, ?)",
                         (name, now, state)).close()
        conn.execute(
            "UPDATE transport_status SET updated_at = ?, state = ?,"
            " signal_dbm = COALESCE(?, signal_dbm), registration = COALESCE(?, registration),"
            " operator = COALESCE(?, operator) WHERE name = ?",
            (now, state, signal_dbm, registration, operator, name),
        ).close()
        if error:
            conn.execute(
                "UPDATE transport_status SET last_error = ?, last_error_at = ? WHERE name = ?",
                (error[:255], now, name),
            ).close()


def all_status(conn: Connection) -> List[TransportStatus]:
    rows = conn.read().query(
        "SELECT name, updated_at, state, signal_dbm, registration, operator, last_error,"
        " last_error_at FROM transport_status ORDER BY name"
    )
    return [TransportStatus(r[0], as_datetime(r[1]), r[2], r[3], r[4], r[5], r[6],
                            as_datetime(r[7])) for r in rows]
