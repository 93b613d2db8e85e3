"""All SQL on ``web_session``: the logins of the web interface, kept on the server.

The browser holds a random session id; only its SHA-256 is stored, with the
user and the time of the last use.  A login is valid while its row exists and
was used within the idle limit; logging out, a new password and deleting the
user delete the rows, so a copied cookie is worth nothing afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Dict, Optional

from smss.store.database import Connection, as_datetime, utcnow


@dataclass(frozen=True)
class Login:
    user: str
    role: str
    created_at: datetime
    last_seen_at: datetime


def create(conn: Connection, id_hash: str, user: str, address: str) -> None:
    now = utcnow()
    with conn.transaction():
        conn.execute(
            "INSERT INTO web_session (id_hash, user_name, created_at, last_seen_at, address)"
            " VALUES (?, ?, ?, ?, ?)", (id_hash, user, now, now, address[:64])).close()


def find(conn: Connection, id_hash: str) -> Optional[Login]:
    """The login with this id and its user's current role (None: ended, or the user is
    gone)."""
    row = conn.read().query_one(
        "SELECT s.user_name, u.role, s.created_at, s.last_seen_at FROM web_session s"
        " JOIN web_user u ON u.name = s.user_name WHERE s.id_hash = ?", (id_hash,))
    if row is None:
        return None
    return Login(row[0], row[1], as_datetime(row[2]), as_datetime(row[3]))


def touch(conn: Connection, id_hash: str, when: datetime) -> None:
    with conn.transaction():
        conn.execute("UPDATE web_session SET last_seen_at = ? WHERE id_hash = ?",
                     (when, id_hash)).close()


def end(conn: Connection, id_hash: str) -> None:
    with conn.transaction():
        conn.execute("DELETE FROM web_session WHERE id_hash = ?", (id_hash,)).close()


def end_for_user(conn: Connection, user: str) -> None:
    """End every login of ``user``, in the caller's transaction."""
    conn.execute("DELETE FROM web_session WHERE user_name = ?", (user,)).close()


def prune(conn: Connection, idle_since: datetime) -> None:
    """Forget the logins unused since ``idle_since`` (they are refused already)."""
    with conn.transaction():
        conn.execute("DELETE FROM web_session WHERE last_seen_at < ?", (idle_since,)).close()


def active_by_user(conn: Connection, idle_since: datetime) -> Dict[str, int]:
    """How many live logins each user has."""
    rows = conn.read().query(
        "SELECT user_name, COUNT(*) FROM web_session WHERE last_seen_at >= ?"
        " GROUP BY user_name", (idle_since,))
    return {row[0]: int(row[1]) for row in rows}
