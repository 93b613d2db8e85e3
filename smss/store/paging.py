"""Keyset pagination for the table listings of the web interface and the API.

A listing runs newest first by (time column, id).  A page is read after a
``Cursor`` (the time and id of the row it continues from), never with OFFSET,
so page 2,000 costs what page 1 costs: the database walks an index that
starts with the filter's equality column (if any) and continues with the time
column, and stops after ``limit + 1`` rows.  Every index ends with the primary
key (SQLite's rowid, InnoDB's clustered key), which breaks ties in time.

The table modules (``queue``, ``sent``, ``received``) own their columns,
filters and indexes; this module owns only the cursor arithmetic.  Text
filters use ``LIKE`` with ``!`` as the escape character, which both SQLite and
MySQL read the same way (a backslash is a string escape in MySQL).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator, List, Optional, Sequence, Tuple

from smss.store.database import Connection, as_datetime

_CURSOR = re.compile(r"^(\d{20})-(\d{1,19})$")
MAX_ID = 2**63 - 1  # the largest id both databases bind


@dataclass(frozen=True)
class Cursor:
    """A row's place in a listing: its time column and its id."""

    at: datetime
    id: int

    def encode(self) -> str:
        return f"{self.at:%Y%m%d%H%M%S%f}-{self.id}"

    @classmethod
    def decode(cls, text: str) -> "Cursor":
        """ValueError for anything that is not a cursor this module made."""
        match = _CURSOR.match(text or "")
        if not match or not 0 < int(match.group(2)) <= MAX_ID:
            raise ValueError(f"not a page cursor: {text!r}")
        return cls(datetime.strptime(match.group(1), "%Y%m%d%H%M%S%f"), int(match.group(2)))


@dataclass(frozen=True)
class Page:
    rows: List[dict]
    newer: Optional[Cursor]  # pass as ``after`` for the page before this one
    older: Optional[Cursor]  # pass as ``before`` for the page after this one


@dataclass(frozen=True)
class Listing:
    """What a table module tells ``fetch``: table, columns, the time column."""

    table: str
    columns: Tuple[str, ...]  # "id" and ``time`` among them
    time: str
    time_columns: Tuple[str, ...] = ()  # returned as datetime


@dataclass(frozen=True)
class Filters:
    """What a listing is narrowed to; ``status`` means what the table module says."""

    phone: Optional[str] = None  # the whole number, as stored (E.164)
    digits: Optional[str] = None  # a fragment of the number
    text: Optional[str] = None  # a fragment of the text (LIKE: case-insensitive)
    since: Optional[datetime] = None  # the time column, inclusive (UTC)
    until: Optional[datetime] = None  # exclusive
    status: Optional[str] = None

    def conditions(self) -> Tuple[List[str], List[Any]]:
        """SQL conditions (ANDed) and their parameters for the number and the text
        (``status`` is the table module's business, the times ``fetch``'s)."""
        where: List[str] = []
        params: List[Any] = []
        if self.phone:
            where.append("phone = ?")
            params.append(self.phone)
        if self.digits:
            where.append("phone LIKE ? ESCAPE '!'")
            params.append(like_pattern(self.digits))
        if self.text:
            where.append("text LIKE ? ESCAPE '!'")
            params.append(like_pattern(self.text))
        return where, params


def like_pattern(fragment: str) -> str:
    """``%fragment%`` with LIKE's wildcards escaped (use with ``ESCAPE '!'``)."""
    escaped = fragment.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return f"%{escaped}%"


def fetch(conn: Connection, listing: Listing, conditions: Sequence[str],
          params: Sequence[Any], *, since: Optional[datetime] = None,
          until: Optional[datetime] = None, before: Optional[Cursor] = None,
          after: Optional[Cursor] = None, limit: int = 50) -> Page:
    """One page of ``listing`` under ``conditions`` (SQL with ``?``, ANDed), its time
    column in [``since``, ``until``).

    No cursor: the newest rows.  ``before``: the rows older than it.  ``after``:
    the rows newer than it (when fewer than a page are newer, the newest page).
    """
    conn.read()
    query = _Query(conn, listing, list(conditions), list(params), since, until)
    if after is not None:
        rows = query.walk(after, newer=True, limit=limit + 1)
        if len(rows) > limit:
            rows = rows[:limit]
            rows.reverse()
            older = query.cursor(rows[-1])
            return Page(rows, query.cursor(rows[0]),
                        older if query.walk(older, newer=False, limit=1) else None)
        before = None  # at the newest end: show a full first page
    rows = query.walk(before, newer=False, limit=limit + 1)
    older = None
    if len(rows) > limit:
        rows = rows[:limit]
        older = query.cursor(rows[-1])
    newer = None
    if before is not None and rows:
        first = query.cursor(rows[0])
        newer = first if query.walk(first, newer=True, limit=1) else None
    elif before is not None:
        newer = before  # an empty page past the end still leads back
    return Page(rows, newer, older)


def iterate(conn: Connection, listing: Listing, conditions: Sequence[str],
            params: Sequence[Any], *, since: Optional[datetime] = None,
            until: Optional[datetime] = None, chunk: int = 1000) -> Iterator[dict]:
    """Every row of ``listing`` under ``conditions``, newest first, read ``chunk`` rows at
    a time by the same keyset as the pages: memory holds one chunk, whatever the table's
    size (the CSV export)."""
    query = _Query(conn, listing, list(conditions), list(params), since, until)
    cursor: Optional[Cursor] = None
    while True:
        conn.read()
        rows = query.walk(cursor, newer=False, limit=chunk)
        yield from rows
        if len(rows) < chunk:
            return
        cursor = query.cursor(rows[-1])


@dataclass(frozen=True)
class _Query:
    conn: Connection
    listing: Listing
    conditions: List[str]
    params: List[Any]
    since: Optional[datetime]
    until: Optional[datetime]

    def walk(self, cursor: Optional[Cursor], *, newer: bool, limit: int) -> List[dict]:
        where = list(self.conditions)
        values = list(self.params)
        t = self.listing.time
        # At most one bound on each side of the time column, so that the index range
        # starts where the wanted rows start (SQLite takes one bound per side, and
        # would start at the date filter's end rather than at the cursor).  The
        # cursor's second condition settles ties in time by id.
        if cursor is not None and newer and not (self.since and self.since > cursor.at):
            where.append(f"{t} >= ? AND ({t} > ? OR id > ?)")
            values += [cursor.at, cursor.at, cursor.id]
        elif self.since is not None:
            where.append(f"{t} >= ?")
            values.append(self.since)
        if cursor is not None and not newer and not (self.until and self.until <= cursor.at):
            where.append(f"{t} <= ? AND ({t} < ? OR id < ?)")
            values += [cursor.at, cursor.at, cursor.id]
        elif self.until is not None:
            where.append(f"{t} < ?")
            values.append(self.until)
        order = "ASC" if newer else "DESC"
        sql = (f"SELECT {', '.join(self.listing.columns)} FROM {self.listing.table}"  # noqa: S608
               + (f" WHERE {' AND '.join(where)}" if where else "")
               + f" ORDER BY {t} {order}, id {order} LIMIT ?")
        values.append(limit)
        return [_row(self.listing, row) for row in self.conn.query(sql, values)]

    def cursor(self, row: dict) -> Cursor:
        return Cursor(row[self.listing.time], row["id"])


def _row(listing: Listing, values: Sequence[Any]) -> dict:
    row = dict(zip(listing.columns, values))
    for name in listing.time_columns:
        row[name] = as_datetime(row[name])
    row["id"] = int(row["id"])
    return row
