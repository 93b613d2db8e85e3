"""All SQL on ``transport_status`` (each transport's state after its last pass, the
site that ran it, and whether an operator paused it) and ``transport_sample`` (its
history).

``save`` is the dispatcher's: it updates the state and keeps a sample when the
state changed or the last sample is ``SAMPLE_EVERY`` old, and forgets samples
older than ``KEEP_SAMPLES`` as it goes, so the history stays bounded (about
9,000 rows per transport).  ``paused`` is asked by the dispatcher before it
claims messages for a transport; ``pause`` and ``resume`` are the operators'.

Several sites may share one database (a Galera cluster), and a transport's name must be
unique among them: ``save`` warns when it takes over a row another site wrote within
``LIVE``, and ``used_elsewhere`` tells ``smss check`` which names a live site uses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import List, Optional, Sequence

from smss.store.database import Connection, as_datetime, utcnow

SAMPLE_EVERY = timedelta(minutes=5)
SAMPLE_CHANGE_GAP = timedelta(seconds=10)  # a flapping state: at most one sample per 10 s
KEEP_SAMPLES = timedelta(days=31)
#: a site whose dispatcher saved a transport's state this recently still runs it (every
#: pass saves it: at least every poll_interval with --loop, every minute from cron)
LIVE = timedelta(minutes=10)

log = logging.getLogger(__name__)


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
    paused_at: Optional[datetime] = None
    paused_by: Optional[str] = None
    site: Optional[str] = None  # the site whose dispatcher saved it last

    @property
    def paused(self) -> bool:
        return self.paused_at is not None


@dataclass(frozen=True)
class Sample:
    at: datetime
    state: str
    signal_dbm: Optional[int]
    error: Optional[str]


def _ensure_row(conn: Connection, name: str, now: datetime, state: str = "") -> None:
    if not conn.query_one("SELECT 1 FROM transport_status WHERE name = ?", (name,)):
        conn.execute("INSERT INTO transport_status (name, updated_at, state) VALUES (?, ?, ?)",
                     (name, now, state)).close()


def save(conn: Connection, name: str, state: str, *, signal_dbm: Optional[int] = None,
         registration: Optional[str] = None, operator: Optional[str] = None,
         error: Optional[str] = None, site: Optional[str] = None) -> None:
    """Upsert the transport's row (an error is kept until the next error replaces it)
    and keep a sample of it; ``site``: the site whose dispatcher runs it."""
    now = utcnow()
    with conn.transaction():
        previous = conn.query_one(
            "SELECT site, updated_at FROM transport_status WHERE name = ?", (name,))
        if previous is None:
            _ensure_row(conn, name, now, state)
        elif site and previous[0] and previous[0] != site \
                and now - as_datetime(previous[1]) < LIVE:
            log.warning("transport %s is also run by site %s (its last pass %ds ago): transport"
                        " names must be unique among the sites that share a database",
                        name, previous[0], (now - as_datetime(previous[1])).total_seconds())
        conn.execute(
            "UPDATE transport_status SET updated_at = ?, state = ?,"
            " signal_dbm = COALESCE(?, signal_dbm), registration = COALESCE(?, registration),"
            " operator = COALESCE(?, operator), site = COALESCE(?, site) WHERE name = ?",
            (now, state, signal_dbm, registration, operator, site or None, name),
        ).close()
        if error:
            conn.execute(
                "UPDATE transport_status SET last_error = ?, last_error_at = ? WHERE name = ?",
                (error[:255], now, name),
            ).close()
        _sample(conn, name, now, state, signal_dbm, error)


def _sample(conn: Connection, name: str, now: datetime, state: str,
            signal_dbm: Optional[int], error: Optional[str]) -> None:
    last = conn.query_one(
        "SELECT at, state FROM transport_sample WHERE name = ? ORDER BY at DESC LIMIT 1",
        (name,))
    if last is not None:
        age = now - as_datetime(last[0])
        changed = last[1] != state
        if age < (SAMPLE_CHANGE_GAP if changed else SAMPLE_EVERY):
            return
    conn.execute(
        "INSERT INTO transport_sample (name, at, state, signal_dbm, error) VALUES (?, ?, ?, ?, ?)",
        (name, now, state, signal_dbm, error[:255] if error else None)).close()
    conn.execute("DELETE FROM transport_sample WHERE name = ? AND at < ?",
                 (name, now - KEEP_SAMPLES)).close()


_COLUMNS = ("name, updated_at, state, signal_dbm, registration, operator, last_error,"
            " last_error_at, paused_at, paused_by, site")


def _status(row) -> TransportStatus:
    return TransportStatus(row[0], as_datetime(row[1]), row[2], row[3], row[4], row[5], row[6],
                           as_datetime(row[7]), as_datetime(row[8]), row[9], row[10])


def all_status(conn: Connection) -> List[TransportStatus]:
    rows = conn.read().query(f"SELECT {_COLUMNS} FROM transport_status ORDER BY name")  # noqa: S608
    return [_status(r) for r in rows]


def get(conn: Connection, name: str) -> Optional[TransportStatus]:
    row = conn.read().query_one(
        f"SELECT {_COLUMNS} FROM transport_status WHERE name = ?", (name,))  # noqa: S608
    return _status(row) if row else None


def used_elsewhere(conn: Connection, names: Sequence[str], site: str) -> List[TransportStatus]:
    """The transports among ``names`` that another site's dispatcher saved within
    ``LIVE``: a site that still runs them."""
    if not names:
        return []
    marks = ", ".join("?" for _ in names)
    rows = conn.read().query(
        f"SELECT {_COLUMNS} FROM transport_status WHERE name IN ({marks})"  # noqa: S608
        " AND site IS NOT NULL AND site <> ? AND updated_at >= ? ORDER BY name",
        (*names, site, utcnow() - LIVE))
    return [_status(r) for r in rows]


# -- pausing


def paused(conn: Connection, name: str) -> Optional[TransportStatus]:
    """The transport's status when an operator paused it, else None."""
    found = get(conn, name)
    return found if found is not None and found.paused else None


def pause(conn: Connection, name: str, actor: str) -> bool:
    """Pause the transport, in the caller's transaction; False when it was paused."""
    now = utcnow()
    _ensure_row(conn, name, now)
    cursor = conn.execute(
        "UPDATE transport_status SET paused_at = ?, paused_by = ?"
        " WHERE name = ? AND paused_at IS NULL", (now, actor[:128], name))
    changed = cursor.rowcount > 0
    cursor.close()
    return changed


def resume(conn: Connection, name: str) -> bool:
    """Let the transport send again, in the caller's transaction; False when it was not
    paused."""
    cursor = conn.execute(
        "UPDATE transport_status SET paused_at = NULL, paused_by = NULL"
        " WHERE name = ? AND paused_at IS NOT NULL", (name,))
    changed = cursor.rowcount > 0
    cursor.close()
    return changed


# -- history


def samples(conn: Connection, name: str, since: datetime) -> List[Sample]:
    """The samples of ``name`` since ``since``, oldest first."""
    rows = conn.read().query(
        "SELECT at, state, signal_dbm, error FROM transport_sample WHERE name = ? AND at >= ?"
        " ORDER BY at", (name, since))
    return [Sample(as_datetime(r[0]), r[1], r[2], r[3]) for r in rows]


def recent_errors(conn: Connection, name: str, limit: int = 10) -> List[Sample]:
    """The newest samples of ``name`` that carry an error, newest first."""
    rows = conn.read().query(
        "SELECT at, state, signal_dbm, error FROM transport_sample WHERE name = ?"
        " AND error IS NOT NULL ORDER BY at DESC LIMIT ?", (name, limit))
    return [Sample(as_datetime(r[0]), r[1], r[2], r[3]) for r in rows]
