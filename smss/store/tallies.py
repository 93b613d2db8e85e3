"""All SQL on ``tally``: running totals kept in the transactions that change them.

A dispatcher adds to its tallies in the same transaction that moves a message
to ``sms``, stores an incoming SMS or applies a delivery report, so a total
never disagrees with the rows it counts and survives restarts; the web
interface reads them for ``/metrics`` with one query, however big the tables
grow.  A row is (name, transport, detail) -> value: a count, a sum of
seconds, or a time (``raise_to`` keeps the largest).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

from smss.store.database import Connection


@dataclass(frozen=True)
class Tally:
    name: str
    transport: str
    detail: str
    value: float


_INSERT = "INSERT INTO tally (name, transport, detail, value) VALUES (?, ?, ?, ?)"
_ON_CONFLICT = " ON CONFLICT (name, transport, detail) DO UPDATE SET value = "
_ON_DUPLICATE = " ON DUPLICATE KEY UPDATE value = "
# (SQLite, MySQL) forms of "combine the stored value with the new one"
_ADD = ("value + excluded.value", "value + VALUES(value)")
_MAX = ("MAX(value, excluded.value)", "GREATEST(value, VALUES(value))")


def _upsert(conn: Connection, combine: Tuple[str, str]) -> str:
    if conn.dialect == "sqlite":
        return _INSERT + _ON_CONFLICT + combine[0]
    return _INSERT + _ON_DUPLICATE + combine[1]


def add(conn: Connection, items: Sequence[Tuple[str, str, str, float]]) -> None:
    """Add each (name, transport, detail, amount), in the caller's transaction.

    Rows are written in sorted order, so two transactions touching the same rows
    lock them in the same order (MariaDB) and cannot deadlock on them."""
    if items:
        conn.executemany(_upsert(conn, _ADD), sorted(items)).close()


def raise_to(conn: Connection, name: str, transport: str, detail: str, value: float) -> None:
    """Keep the larger of the stored value and ``value`` (a "last time" figure)."""
    conn.execute(_upsert(conn, _MAX), (name, transport, detail, value)).close()


def all_tallies(conn: Connection) -> List[Tally]:
    rows = conn.read().query("SELECT name, transport, detail, value FROM tally"
                             " ORDER BY name, transport, detail")
    return [Tally(r[0], r[1], r[2], float(r[3])) for r in rows]
