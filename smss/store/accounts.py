"""All SQL on ``web_user`` (who may log in to the web interface) and ``api_token``
(what applications present to the HTTP API).

Only hashes are stored: a password's argon2 hash, a token's SHA-256 (a token
is 256 random bits, so a fast hash is as good as a slow one and a lookup by
hash costs one index probe).  Hashing is ``smss.web.passwords``'s business.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import List, Optional

from smss.store.database import Connection, as_datetime, utcnow


@dataclass(frozen=True)
class User:
    name: str
    password_hash: str
    created_at: Optional[datetime]
    updated_at: Optional[datetime]


def get_user(conn: Connection, name: str) -> Optional[User]:
    row = conn.read().query_one(
        "SELECT name, password_hash, created_at, updated_at FROM web_user WHERE name = ?",
        (name,),
    )
    if row is None:
        return None
    return User(row[0], row[1], as_datetime(row[2]), as_datetime(row[3]))


def users(conn: Connection) -> List[User]:
    rows = conn.read().query(
        "SELECT name, password_hash, created_at, updated_at FROM web_user ORDER BY name"
    )
    return [User(r[0], r[1], as_datetime(r[2]), as_datetime(r[3])) for r in rows]


def set_user(conn: Connection, name: str, password_hash: str) -> bool:
    """Create the user or replace the password (commits); True when created."""
    now = utcnow()
    with conn.transaction():
        exists = conn.query_one("SELECT 1 FROM web_user WHERE name = ?", (name,))
        if exists:
            conn.execute("UPDATE web_user SET password_hash = ?, updated_at = ? WHERE name = ?",
                         (password_hash, now, name)).close()
        else:
            conn.execute("INSERT INTO web_user (name, password_hash, created_at, updated_at)"
                         " VALUES (?, ?, ?, ?)", (name, password_hash, now, now)).close()
    return not exists


def update_hash(conn: Connection, name: str, old_hash: str, new_hash: str) -> None:
    """Replace a hash made with older parameters, unless the password changed meanwhile."""
    with conn.transaction():
        conn.execute("UPDATE web_user SET password_hash = ? WHERE name = ? AND password_hash = ?",
                     (new_hash, name, old_hash)).close()


def delete_user(conn: Connection, name: str) -> bool:
    with conn.transaction():
        cursor = conn.execute("DELETE FROM web_user WHERE name = ?", (name,))
        deleted = cursor.rowcount > 0
        cursor.close()
    return deleted


@dataclass(frozen=True)
class Token:
    id: int
    name: str
    created_at: Optional[datetime]
    last_used_at: Optional[datetime]


def add_token(conn: Connection, name: str, token_hash: str) -> int:
    """Store a new token's hash under a unique name (commits); returns its id."""
    with conn.transaction():
        cursor = conn.execute(
            "INSERT INTO api_token (name, token_hash, created_at) VALUES (?, ?, ?)",
            (name, token_hash, utcnow()),
        )
        token_id = int(cursor.lastrowid)
        cursor.close()
    return token_id


def find_token(conn: Connection, token_hash: str) -> Optional[Token]:
    row = conn.read().query_one(
        "SELECT id, name, created_at, last_used_at FROM api_token WHERE token_hash = ?",
        (token_hash,),
    )
    if row is None:
        return None
    return Token(int(row[0]), row[1], as_datetime(row[2]), as_datetime(row[3]))


def tokens(conn: Connection) -> List[Token]:
    rows = conn.read().query(
        "SELECT id, name, created_at, last_used_at FROM api_token ORDER BY name"
    )
    return [Token(int(r[0]), r[1], as_datetime(r[2]), as_datetime(r[3])) for r in rows]


def touch_token(conn: Connection, token_id: int, when: datetime) -> None:
    with conn.transaction():
        conn.execute("UPDATE api_token SET last_used_at = ? WHERE id = ?",
                     (when, token_id)).close()


def delete_token(conn: Connection, name: str) -> bool:
    with conn.transaction():
        cursor = conn.execute("DELETE FROM api_token WHERE name = ?", (name,))
        deleted = cursor.rowcount > 0
        cursor.close()
    return deleted
