"""All SQL on ``web_user`` (who may log in to the web interface) and ``api_token``
(what applications present to the HTTP API), each with a role.

Only hashes are stored: a password's argon2 hash, a token's SHA-256 (a token
is 256 random bits, so a fast hash is as good as a slow one and a lookup by
hash costs one index probe).  Hashing is ``smss.web.passwords``'s business.
A new password or a deleted user ends that user's logins (``sessions``) in
the same transaction.

Roles, each with the rights of the ones after it: ``admin`` (users, tokens,
transports, the audit trail), ``operator`` (send, cancel, retry, reply,
delete received messages), ``viewer`` (read only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import List, Optional

from smss.store import audit, sessions
from smss.store.database import Connection, as_datetime, utcnow

ADMIN, OPERATOR, VIEWER = "admin", "operator", "viewer"
ROLES = (ADMIN, OPERATOR, VIEWER)  # most rights first
_RANK = {role: len(ROLES) - index for index, role in enumerate(ROLES)}


def role_allows(role: str, needed: str) -> bool:
    """Whether ``role`` has the rights of ``needed`` (an admin may do what an operator may)."""
    return _RANK.get(role, 0) >= _RANK[needed]


class LastAdmin(Exception):
    """The change would leave no admin to manage users and tokens."""


@dataclass(frozen=True)
class User:
    name: str
    password_hash: str
    created_at: Optional[datetime]
    updated_at: Optional[datetime]
    role: str = VIEWER


_USER_COLUMNS = "name, password_hash, created_at, updated_at, role"


def _user(row) -> User:
    return User(row[0], row[1], as_datetime(row[2]), as_datetime(row[3]), row[4])


def get_user(conn: Connection, name: str) -> Optional[User]:
    row = conn.read().query_one(
        f"SELECT {_USER_COLUMNS} FROM web_user WHERE name = ?", (name,)  # noqa: S608
    )
    return _user(row) if row else None


def users(conn: Connection) -> List[User]:
    rows = conn.read().query(f"SELECT {_USER_COLUMNS} FROM web_user ORDER BY name")  # noqa: S608
    return [_user(r) for r in rows]


def set_user(conn: Connection, name: str, password_hash: str,
             role: Optional[str] = None, actor: Optional[str] = None) -> bool:
    """Create the user (``role``, default operator) or replace the password, and the role
    when one is given (commits); True when created.  A new password ends the user's
    logins.  ``actor``: who did it, for the audit trail."""
    if role is not None and role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    now = utcnow()
    with conn.transaction():
        exists = _lock_user(conn, name)
        if exists:
            conn.execute("UPDATE web_user SET password_hash = ?, updated_at = ?,"
                         " role = COALESCE(?, role) WHERE name = ?",
                         (password_hash, now, role, name)).close()
            sessions.end_for_user(conn, name)
        else:
            conn.execute("INSERT INTO web_user (name, password_hash, created_at, updated_at,"
                         " role) VALUES (?, ?, ?, ?, ?)",
                         (name, password_hash, now, now, role or OPERATOR)).close()
        if actor:
            audit.record(conn, actor, "user password" if exists else "user add",
                         f"user {name}", role or (None if exists else OPERATOR))
    return not exists


def _lock_user(conn: Connection, name: str) -> Optional[str]:
    """The user's role, the row locked until the transaction ends (None: no such user)."""
    lock = " FOR UPDATE" if conn.dialect == "mysql" else ""
    row = conn.query_one("SELECT role FROM web_user WHERE name = ?" + lock,  # noqa: S608
                         (name,))
    return row[0] if row else None


def _admins_left_without(conn: Connection, name: str) -> int:
    lock = " FOR UPDATE" if conn.dialect == "mysql" else ""
    row = conn.query_one(
        "SELECT COUNT(*) FROM web_user WHERE role = ? AND name <> ?" + lock,  # noqa: S608
        (ADMIN, name))
    return int(row[0]) if row else 0


def set_role(conn: Connection, name: str, role: str, *, keep_an_admin: bool = False,
             actor: Optional[str] = None) -> bool:
    """Change a user's role (commits); False when there is no such user.  With
    ``keep_an_admin``, LastAdmin when it would leave no admin."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    with conn.transaction():
        current = _lock_user(conn, name)
        if current is None:
            return False
        if keep_an_admin and current == ADMIN and role != ADMIN and not _admins_left_without(
                conn, name):
            raise LastAdmin(f"{name} is the last admin")
        conn.execute("UPDATE web_user SET role = ? WHERE name = ?", (role, name)).close()
        if actor:
            audit.record(conn, actor, "user role", f"user {name}", f"{current} -> {role}")
    return True


def count_admins(conn: Connection) -> int:
    row = conn.read().query_one("SELECT COUNT(*) FROM web_user WHERE role = ?", (ADMIN,))
    return int(row[0]) if row else 0


def update_hash(conn: Connection, name: str, old_hash: str, new_hash: str) -> None:
    """Replace a hash made with older parameters, unless the password changed meanwhile."""
    with conn.transaction():
        conn.execute("UPDATE web_user SET password_hash = ? WHERE name = ? AND password_hash = ?",
                     (new_hash, name, old_hash)).close()


def delete_user(conn: Connection, name: str, *, keep_an_admin: bool = False,
                actor: Optional[str] = None) -> bool:
    """Remove the user and end their logins (commits).  With ``keep_an_admin``,
    LastAdmin when it is the last admin."""
    with conn.transaction():
        current = _lock_user(conn, name)
        if current is None:
            return False
        if keep_an_admin and current == ADMIN and not _admins_left_without(conn, name):
            raise LastAdmin(f"{name} is the last admin")
        conn.execute("DELETE FROM web_user WHERE name = ?", (name,)).close()
        sessions.end_for_user(conn, name)
        if actor:
            audit.record(conn, actor, "user delete", f"user {name}")
    return True


@dataclass(frozen=True)
class Token:
    id: int
    name: str
    created_at: Optional[datetime]
    last_used_at: Optional[datetime]
    role: str = OPERATOR


_TOKEN_COLUMNS = "id, name, created_at, last_used_at, role"


def _token(row) -> Token:
    return Token(int(row[0]), row[1], as_datetime(row[2]), as_datetime(row[3]), row[4])


def add_token(conn: Connection, name: str, token_hash: str, role: str = OPERATOR,
              actor: Optional[str] = None) -> int:
    """Store a new token's hash under a unique name (commits); returns its id."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    with conn.transaction():
        cursor = conn.execute(
            "INSERT INTO api_token (name, token_hash, created_at, role) VALUES (?, ?, ?, ?)",
            (name, token_hash, utcnow(), role),
        )
        token_id = int(cursor.lastrowid)
        cursor.close()
        if actor:
            audit.record(conn, actor, "token add", f"token {name}", role)
    return token_id


def find_token(conn: Connection, token_hash: str) -> Optional[Token]:
    row = conn.read().query_one(
        f"SELECT {_TOKEN_COLUMNS} FROM api_token WHERE token_hash = ?",  # noqa: S608
        (token_hash,),
    )
    return _token(row) if row else None


def tokens(conn: Connection) -> List[Token]:
    rows = conn.read().query(f"SELECT {_TOKEN_COLUMNS} FROM api_token ORDER BY name")  # noqa: S608
    return [_token(r) for r in rows]


def touch_token(conn: Connection, token_id: int, when: datetime) -> None:
    with conn.transaction():
        conn.execute("UPDATE api_token SET last_used_at = ? WHERE id = ?",
                     (when, token_id)).close()


def delete_token(conn: Connection, name: str, actor: Optional[str] = None) -> bool:
    with conn.transaction():
        cursor = conn.execute("DELETE FROM api_token WHERE name = ?", (name,))
        deleted = cursor.rowcount > 0
        cursor.close()
        if deleted and actor:
            audit.record(conn, actor, "token delete", f"token {name}")
    return deleted
