"""All SQL on the ``msg`` table (the queue of acknowledged, not yet sent messages).

A claim is a lease: ``claimed_at`` is when its dispatcher last renewed it, written by
the database's clock (``_LEASE_NOW``), so the hosts' clocks do not matter on MariaDB;
a claim not renewed for ``claim_lease`` seconds may be taken over (``claims``,
``recover``).  Every write of a dispatcher to a claimed row holds only while the row is
still claimed by that dispatcher (``owner``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from smss.store import paging
from smss.store.database import Connection, again_on_conflict, as_datetime, utcnow

_COLUMNS = "phone, text, parts, client, route, created_at, next_attempt_at, retry_of"
_ROW = "(?, ?, ?, ?, ?, ?, ?, ?)"
_CHUNK = 400  # rows per INSERT: well under SQLite's limit of bound variables


@dataclass(frozen=True)
class NewMessage:
    phone: str
    text: str
    parts: int = 1
    client: str = ""
    route: Optional[str] = None
    retry_of: Optional[int] = None  # the sms id this message sends again


def insert(conn: Connection, messages: Sequence[NewMessage]) -> List[int]:
    """Insert in the caller's transaction; returns the ids in the order given."""
    now = utcnow()
    rows = [(m.phone, m.text, m.parts, m.client, m.route, now, now, m.retry_of)
            for m in messages]
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


def holds(conn: Connection, message_id: int, phone: str, text: str) -> bool:
    """Whether this message is queued under this id."""
    return conn.read().query_one(
        "SELECT 1 FROM msg WHERE id = ? AND phone = ? AND text = ?", (message_id, phone, text)
    ) is not None


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
        " last_error, claimed_by, route, retry_of FROM msg WHERE id = ?",
        (message_id,),
    )
    if row is None:
        return None
    keys = ("id", "phone", "text", "parts", "client", "created_at", "attempts",
            "next_attempt_at", "last_error", "claimed_by", "route", "retry_of")
    return dict(zip(keys, row))


def last_accepted(conn: Connection) -> Optional[datetime]:
    """When the newest record was accepted, whether it is still queued or already sent."""
    row = conn.read().query_one(
        "SELECT MAX(created_at) FROM (SELECT MAX(created_at) AS created_at FROM msg"
        " UNION ALL SELECT MAX(created_at) FROM sms) AS newest"
    )
    return as_datetime(row[0]) if row else None


@dataclass(frozen=True)
class Claimed:
    """A queued message a dispatcher has taken to send."""

    id: int
    phone: str
    text: str
    parts: int
    client: str
    route: Optional[str]
    created_at: datetime
    attempts: int
    last_error: Optional[str]
    progress: Optional[str] = None  # how far an earlier attempt got (Progress.encode())
    retry_of: Optional[int] = None  # the sent message this one sends again


_CLAIMED_COLUMNS = ("id, phone, text, parts, client, route, created_at, attempts, last_error,"
                    " progress, retry_of")


def _claimed(row) -> Claimed:
    return Claimed(int(row[0]), row[1], row[2], int(row[3]), row[4], row[5],
                   as_datetime(row[6]), int(row[7]), row[8], row[9],
                   int(row[10]) if row[10] is not None else None)


def lock(conn: Connection, message_id: int) -> Optional[Tuple[Claimed, Optional[str]]]:
    """The queued message and who holds it (None: nobody), its row locked until the
    caller's transaction ends (MariaDB: FOR UPDATE, so a dispatcher's claim, which
    skips locked rows, cannot take it meanwhile; SQLite: the transaction is the only
    writer).  None when it is not in the queue."""
    lock = " FOR UPDATE" if conn.dialect == "mysql" else ""
    row = conn.query_one(
        f"SELECT {_CLAIMED_COLUMNS}, claimed_by FROM msg WHERE id = ?" + lock,  # noqa: S608
        (message_id,))
    return (_claimed(row), row[11]) if row else None


def get_claimed(conn: Connection, message_id: int) -> Optional[Claimed]:
    row = conn.read().query_one(
        f"SELECT {_CLAIMED_COLUMNS} FROM msg WHERE id = ?", (message_id,)  # noqa: S608
    )
    return _claimed(row) if row else None


def _routes(routes: Optional[Sequence[str]]) -> Tuple[str, List[str]]:
    """(an AND clause, its parameters) for messages without a route or with one of
    ``routes``; None: every message."""
    if routes is None:
        return "", []
    if not routes:
        return " AND route IS NULL", []
    marks = ", ".join("?" * len(routes))
    return f" AND (route IS NULL OR route IN ({marks}))", list(routes)




def claim(conn: Connection, owner: str, limit: int,
          routes: Optional[Sequence[str]] = None) -> List[Claimed]:
    """Take up to ``limit`` due messages, oldest first, for ``owner`` (commits).

    ``routes``: only messages without a route or with one of these (see
    check_and_send.lanes); None: any message.  ``claim_rows`` does it in the caller's
    transaction.

    On a Galera cluster SKIP LOCKED sees only the locks of its own node, so
    dispatchers on two nodes may reach for the same rows; one of them loses at
    COMMIT (a conflict, ``is_conflict``).  That is a lost race, not an outage:
    the claim is tried again at once after a short random pause."""
    def one_claim() -> List[Claimed]:
        with conn.transaction():
            return claim_rows(conn, owner, limit, routes)

    return again_on_conflict(one_claim)


def claim_rows(conn: Connection, owner: str, limit: int,
               routes: Optional[Sequence[str]] = None, *, sending: bool = False
               ) -> List[Claimed]:
    """``claim`` in the caller's transaction; ``sending``: marked "sending" at once too
    (``set_sending``), for a transport about to be handed them.

    On MariaDB the rows are read with FOR UPDATE SKIP LOCKED, so two dispatchers
    claiming at the same moment get different rows; SQLite serialises writers.
    The rows are then marked by their primary key alone (``_by_id``): an ``UPDATE …
    WHERE id IN (…)`` may be run as a scan that locks rows the other dispatcher holds
    (in REPEATABLE READ), and two such claims deadlocked.  On a Galera cluster each
    dispatcher first takes the rows that were inserted through its own node (Galera
    gives every node its own ``auto_increment_offset``), so sites that each have
    their own spooler rarely reach for the same rows at all.
    """
    now = utcnow()
    lock = " FOR UPDATE SKIP LOCKED" if conn.dialect == "mysql" else ""
    where, params = _routes(routes)
    select = (f"SELECT {_CLAIMED_COLUMNS} FROM msg"  # noqa: S608 - constants and placeholders
              f" WHERE claimed_by IS NULL AND next_attempt_at <= ?{where}")
    rows: list = []
    own = _own_node_rows(conn)
    if own:
        rows = conn.query(select + own + " ORDER BY id LIMIT ?" + lock,
                          (now, *params, limit))
    if len(rows) < limit:
        taken = [row[0] for row in rows]
        others = f" AND id NOT IN ({', '.join('?' * len(taken))})" if taken else ""
        rows += conn.query(select + others + " ORDER BY id LIMIT ?" + lock,
                           (now, *params, *taken, limit - len(rows)))
    if rows:
        lease, values = _lease_now(conn)
        started = ", send_started_at = ?" if sending else ""
        _update_by_id(conn, f"claimed_by = ?, claimed_at = {lease}{started}",
                      (owner, *values, now) if sending else (owner, *values),
                      [row[0] for row in rows])
    return [_claimed(row) for row in rows]


def _lease_now(conn: Connection) -> Tuple[str, tuple]:
    """(SQL, parameters) for the moment a lease starts: the database server's clock on
    MariaDB (every host's dispatcher compares against the same clock); SQLite lives on
    one host, whose clock it is."""
    if conn.dialect == "mysql":
        return "UTC_TIMESTAMP(6)", ()
    return "?", (utcnow(),)


def database_now(conn: Connection) -> datetime:
    """Now by the clock leases are written with (``_lease_now``)."""
    if conn.dialect == "mysql":
        row = conn.query_one("SELECT UTC_TIMESTAMP(6)")
        assert row is not None
        value = as_datetime(row[0])
        assert value is not None
        return value
    return utcnow()


def renew(conn: Connection, owner: str, message_ids: Sequence[int]) -> List[int]:
    """Renew the leases of these claims of ``owner`` (in the caller's transaction);
    returns the ids it still holds (a claim taken over meanwhile is not renewed)."""
    if not message_ids:
        return []
    lease, values = _lease_now(conn)
    changed = _update_by_id(conn, f"claimed_at = {lease}", values, message_ids,
                            "msg.claimed_by = ?", (owner,))
    if changed == len(message_ids):
        return list(message_ids)
    held = owners(conn, message_ids)
    return [i for i in message_ids if held.get(i) == owner]


def owners(conn: Connection, message_ids: Sequence[int]) -> Dict[int, Optional[str]]:
    """Who claims each of these queued messages (None: nobody; an id not in the queue is
    left out), the rows locked until the caller's transaction ends on MariaDB."""
    found: Dict[int, Optional[str]] = {}
    for start in range(0, len(message_ids), _CHUNK):
        chunk = list(message_ids[start:start + _CHUNK])
        if conn.dialect == "mysql":
            tables, picked = _by_id(chunk)
            sql = f"SELECT msg.id, msg.claimed_by FROM {tables} FOR UPDATE"  # noqa: S608
            rows = conn.query(sql, picked)
        else:
            marks = ", ".join("?" * len(chunk))
            rows = conn.query(f"SELECT id, claimed_by FROM msg WHERE id IN ({marks})",  # noqa: S608
                              chunk)
        found.update((int(row[0]), row[1]) for row in rows)
    return found


def _own_node_rows(conn: Connection) -> str:
    """The condition for rows inserted through this connection's node when ids are
    interleaved among the nodes of a cluster (auto_increment_increment > 1); '' else."""
    if conn.dialect != "mysql":
        return ""
    cached = getattr(conn, "_smss_own_rows", None)
    if cached is None or cached[0] != conn.session:
        increment, offset = conn.query_one(
            "SELECT @@auto_increment_increment, @@auto_increment_offset")
        increment, offset = int(increment), int(offset)
        condition = f" AND MOD(id, {increment}) = {offset % increment}" if increment > 1 else ""
        cached = (conn.session, condition)
        conn._smss_own_rows = cached  # type: ignore[attr-defined]
    return cached[1]


def _by_id(ids: Sequence[int]) -> Tuple[str, list]:
    """(tables, parameters) that pick the ``msg`` rows with these ids for a MariaDB
    UPDATE or DELETE: a derived table of the ids joined first (STRAIGHT_JOIN) to msg
    by its primary key (FORCE INDEX: eq_ref), so only those rows are read and locked
    however the optimizer sizes the table.  A plain ``WHERE id IN (…)``, or the join in the other
    order, is run as a scan on a small table that locks every row: two dispatchers
    doing that deadlock."""
    union = " UNION ALL ".join(["SELECT ? AS id"] + ["SELECT ?"] * (len(ids) - 1))
    tables = f"({union}) AS picked STRAIGHT_JOIN msg FORCE INDEX (PRIMARY) ON msg.id = picked.id"
    return tables, list(ids)


def _update_by_id(conn: Connection, assignments: str, values: Sequence,
                  ids: Sequence[int], condition: str = "", condition_values: Sequence = ()
                  ) -> int:
    """``UPDATE msg SET assignments`` for these rows, each picked by its primary key
    (``condition``: only those of them that meet it); returns how many changed."""
    changed = 0
    where = f" WHERE {condition}" if condition else ""
    for start in range(0, len(ids), _CHUNK):
        chunk = list(ids[start:start + _CHUNK])
        if conn.dialect == "mysql":
            tables, picked = _by_id(chunk)
            sql = f"UPDATE {tables} SET {assignments}{where}"  # noqa: S608 - placeholders
            cursor = conn.execute(sql, [*picked, *values, *condition_values])
        else:
            marks = ", ".join("?" * len(chunk))
            also = f" AND {condition}" if condition else ""
            sql = f"UPDATE msg SET {assignments} WHERE id IN ({marks}){also}"  # noqa: S608
            cursor = conn.execute(sql, [*values, *chunk, *condition_values])
        changed += max(0, cursor.rowcount)
        cursor.close()
    return changed


def mark_sending(conn: Connection, message_id: int, owner: Optional[str] = None) -> bool:
    """Record that the transport is about to get the message (commits); with ``owner``
    only while ``owner`` still claims it (the lease is renewed too).  False: the claim
    was taken over, and the message must not be sent.

    A message with this mark whose dispatcher died may have been sent: the
    recovery counts it as an attempt and logs it, so the manual's duplicate
    window is exactly the time between this mark and the commit after sending.
    """
    with conn.transaction():
        if owner is None:
            cursor = conn.execute("UPDATE msg SET send_started_at = ? WHERE id = ?",
                                  (utcnow(), message_id))
        else:
            lease, values = _lease_now(conn)
            cursor = conn.execute(
                f"UPDATE msg SET send_started_at = ?, claimed_at = {lease}"  # noqa: S608
                " WHERE id = ? AND claimed_by = ?", (utcnow(), *values, message_id, owner))
        changed = cursor.rowcount
        cursor.close()
    return changed > 0


def mark_sending_many(conn: Connection, message_ids: Sequence[int]) -> None:
    """``mark_sending`` for a window of messages handed to the transport together."""
    with conn.transaction():
        set_sending(conn, message_ids)


def set_sending(conn: Connection, message_ids: Sequence[int]) -> None:
    """Mark claimed messages "sending", in the caller's transaction."""
    if message_ids:
        _update_by_id(conn, "send_started_at = ?", (utcnow(),), message_ids)


def save_progress(conn: Connection, message_id: int, progress: str) -> None:
    """Keep how far the sending of a message in parts got (commits): a retry, even after
    this dispatcher died, sends only the parts not yet confirmed.  Released, deferred and
    recovered messages keep it; it goes with the row when the message leaves the queue."""
    with conn.transaction():
        conn.execute("UPDATE msg SET progress = ? WHERE id = ?", (progress, message_id)).close()


def release(conn: Connection, message_ids: Sequence[int], owner: Optional[str] = None) -> None:
    """Give claimed messages back untouched (commits); with ``owner``: those it still
    claims."""
    if not message_ids:
        return
    with conn.transaction():
        release_rows(conn, message_ids, owner)


def release_rows(conn: Connection, message_ids: Sequence[int],
                 owner: Optional[str] = None) -> None:
    """``release`` in the caller's transaction."""
    if message_ids:
        _update_by_id(conn, "claimed_by = NULL, claimed_at = NULL,"
                      " send_started_at = NULL", (), message_ids,
                      "msg.claimed_by = ?" if owner is not None else "",
                      (owner,) if owner is not None else ())


def defer(conn: Connection, message_id: int, attempts: int, retry_at: datetime,
          error: str, owner: Optional[str] = None) -> None:
    """A temporary failure: count it, release the claim, try again at ``retry_at``
    (with ``owner``: only while it still claims the message)."""
    with conn.transaction():
        defer_row(conn, message_id, attempts, retry_at, error, owner)


def defer_row(conn: Connection, message_id: int, attempts: int, retry_at: datetime,
              error: str, owner: Optional[str] = None) -> None:
    """``defer`` in the caller's transaction."""
    held = " AND claimed_by = ?" if owner is not None else ""
    conn.execute(
        "UPDATE msg SET attempts = ?, next_attempt_at = ?, last_error = ?,"  # noqa: S608
        " claimed_by = NULL, claimed_at = NULL, send_started_at = NULL WHERE id = ?" + held,
        (attempts, retry_at, error[:255], message_id, *((owner,) if owner is not None else ())),
    ).close()


def delete(conn: Connection, message_id: int) -> None:
    """Remove a message from the queue, in the caller's transaction."""
    conn.execute("DELETE FROM msg WHERE id = ?", (message_id,)).close()


def delete_many(conn: Connection, message_ids: Sequence[int]) -> None:
    """Remove messages from the queue, in the caller's transaction (each row by its
    primary key, see ``_by_id``)."""
    for start in range(0, len(message_ids), _CHUNK):
        chunk = list(message_ids[start:start + _CHUNK])
        if conn.dialect == "mysql":
            tables, picked = _by_id(chunk)
            conn.execute(f"DELETE msg FROM {tables}", picked).close()  # noqa: S608
        else:
            marks = ", ".join("?" * len(chunk))
            conn.execute(f"DELETE FROM msg WHERE id IN ({marks})", chunk).close()  # noqa: S608


def delete_unclaimed(conn: Connection, message_id: int) -> bool:
    """Remove a message nobody has claimed, in the caller's transaction; False when it is
    claimed or gone (another dispatcher took it first)."""
    cursor = conn.execute("DELETE FROM msg WHERE id = ? AND claimed_by IS NULL", (message_id,))
    removed = cursor.rowcount
    cursor.close()
    return removed > 0


@dataclass(frozen=True)
class Claim:
    owner: str
    claimed_at: Optional[datetime]  # when the lease was last renewed (the database's clock)
    started: bool  # the transport may have been given the message
    age: Optional[float] = None  # seconds since claimed_at by that clock (None: unknown)

    def lapsed(self, lease: float) -> bool:
        """Its dispatcher did not renew it for ``lease`` seconds: anyone may take it over."""
        return self.age is None or self.age > lease


def claims(conn: Connection) -> List[Tuple[int, Claim]]:
    reader = conn.read()
    now = database_now(reader)
    rows = reader.query(
        "SELECT id, claimed_by, claimed_at, send_started_at FROM msg WHERE claimed_by IS NOT NULL"
    )
    found = []
    for r in rows:
        claimed_at = as_datetime(r[2])
        age = (now - claimed_at).total_seconds() if claimed_at is not None else None
        found.append((int(r[0]), Claim(r[1], claimed_at, r[3] is not None, age)))
    return found


def recover(conn: Connection, message_id: int, owner: str, error: str) -> bool:
    """Release an abandoned claim; one whose send had started counts as an attempt."""
    with conn.transaction():
        cursor = conn.execute(
            "UPDATE msg SET attempts = attempts + CASE WHEN send_started_at IS NULL THEN 0"
            " ELSE 1 END, last_error = CASE WHEN send_started_at IS NULL THEN last_error"
            " ELSE ? END, claimed_by = NULL, claimed_at = NULL, send_started_at = NULL"
            " WHERE id = ? AND claimed_by = ?",
            (error[:255], message_id, owner),
        )
        changed = cursor.rowcount
        cursor.close()
    return changed > 0


def expired(conn: Connection, created_before: datetime, limit: int) -> List[Claimed]:
    """Unclaimed messages accepted before ``created_before``."""
    rows = conn.read().query(
        f"SELECT {_CLAIMED_COLUMNS} FROM msg"  # noqa: S608 - constant column list
        " WHERE claimed_by IS NULL AND created_at < ? ORDER BY id LIMIT ?",
        (created_before, limit),
    )
    return [_claimed(row) for row in rows]


def due_count(conn: Connection, routes: Optional[Sequence[str]] = None) -> int:
    """Unclaimed messages due now (``routes`` as for ``claim``: those one lane may take)."""
    where, params = _routes(routes)
    due = "SELECT COUNT(*) FROM msg WHERE claimed_by IS NULL AND next_attempt_at <= ?"
    row = conn.read().query_one(due + where, (utcnow(), *params))
    return int(row[0]) if row else 0


def oldest_due(conn: Connection) -> Optional[datetime]:
    """When the longest-waiting due message was accepted (for /metrics)."""
    row = conn.read().query_one(
        "SELECT MIN(created_at) FROM msg WHERE claimed_by IS NULL AND next_attempt_at <= ?",
        (utcnow(),),
    )
    return as_datetime(row[0]) if row else None


def next_due(conn: Connection, routes: Optional[Sequence[str]] = None) -> Optional[datetime]:
    """When the earliest unclaimed message becomes due (for `check_and_send --loop`;
    ``routes`` as for ``claim``)."""
    where, params = _routes(routes)
    row = conn.read().query_one(
        f"SELECT MIN(next_attempt_at) FROM msg WHERE claimed_by IS NULL{where}",  # noqa: S608
        params
    )
    return as_datetime(row[0]) if row else None


# -- listings (the web interface's queue page)

LISTING_STATES = ("due", "retry", "sending", "error")

_LISTING = paging.Listing(
    "msg",
    ("id", "phone", "text", "parts", "client", "created_at", "attempts",
     "next_attempt_at", "last_error", "claimed_by", "send_started_at"),
    "created_at", ("created_at", "next_attempt_at", "send_started_at"),
)


def _listing_conditions(filters: paging.Filters) -> Tuple[List[str], List[object]]:
    where, params = filters.conditions()
    state = filters.status
    if state == "due":
        where.append("claimed_by IS NULL AND next_attempt_at <= ?")
        params.append(utcnow())
    elif state == "retry":
        where.append("claimed_by IS NULL AND next_attempt_at > ?")
        params.append(utcnow())
    elif state == "sending":
        where.append("claimed_by IS NOT NULL")
    elif state == "error":
        where.append("last_error IS NOT NULL")
    elif state:
        raise ValueError(f"unknown queue state {state!r}")
    return where, params


def page(conn: Connection, filters: paging.Filters, *, before: Optional[paging.Cursor] = None,
         after: Optional[paging.Cursor] = None, limit: int = 50) -> paging.Page:
    """One page of the queue, newest first (``smss.store.paging``).  ``filters.status``:
    ``due`` (waiting for the dispatcher), ``retry`` (waiting after a failed attempt),
    ``sending`` (claimed by a dispatcher), ``error`` (has a last error)."""
    where, params = _listing_conditions(filters)
    return paging.fetch(conn, _LISTING, where, params, since=filters.since,
                        until=filters.until, before=before, after=after, limit=limit)


def every(conn: Connection, filters: paging.Filters, chunk: int = 1000) -> Iterator[dict]:
    """Every queued message ``page`` would list, newest first, a chunk at a time."""
    where, params = _listing_conditions(filters)
    return paging.iterate(conn, _LISTING, where, params, since=filters.since,
                          until=filters.until, chunk=chunk)
