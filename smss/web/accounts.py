"""``smss user …`` and ``smss token …``: who may log in, which applications may call the API.

    smss user add NAME        create a user; asks for the password twice
    smss user passwd NAME     set a new password (ends that user's logins)
    smss user delete NAME     (ends that user's logins)
    smss user list
    smss token add NAME       make an API token and print it (shown only this once)
    smss token delete NAME
    smss token list

When stdin is not a terminal, the password is its first line (for scripts:
``printf '%s\\n' "$PASSWORD" | smss user add alice``).  Users and tokens live
in the queue database (``web_user``, ``api_token``), hashed.
"""

from __future__ import annotations

import getpass
import re
import sys
from typing import List, Optional, TextIO

from smss.config import Config
from smss.store import accounts, migrations
from smss.store.database import DatabaseError, connect_config
from smss.web import passwords

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 8

USAGE = """usage: smss user add|passwd|delete NAME | smss user list
       smss token add|delete NAME | smss token list"""


def main(kind: str, args: List[str], config: Config, stdin: Optional[TextIO] = None) -> int:
    stdin = stdin or sys.stdin
    action = args[0] if args else ""
    name = args[1] if len(args) > 1 else ""
    wants_name = action in ("add", "passwd", "delete")
    known = {"user": ("add", "passwd", "delete", "list"), "token": ("add", "delete", "list")}
    if action not in known[kind] or (wants_name and len(args) != 2) or (
            not wants_name and len(args) != 1):
        print(USAGE, file=sys.stderr)
        return 2
    if wants_name and not NAME.match(name):
        print(f"smss: {name!r} is not a usable name (letters, digits, . _ @ -; at most 64)",
              file=sys.stderr)
        return 2
    try:
        conn = connect_config(config)
    except DatabaseError as exc:
        print(f"smss: {exc}", file=sys.stderr)
        return 1
    try:
        migrations.prepare(conn)
        if kind == "user":
            return _user(conn, action, name, stdin)
        return _token(conn, action, name)
    except (migrations.SchemaError, DatabaseError) as exc:
        print(f"smss: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()


def _user(conn, action: str, name: str, stdin: TextIO) -> int:
    if action == "list":
        for user in accounts.users(conn):
            print(f"{user.name}\tpassword set {user.updated_at:%Y-%m-%d %H:%M} UTC")
        return 0
    if action == "delete":
        if not accounts.delete_user(conn, name):
            print(f"smss: no user {name}", file=sys.stderr)
            return 1
        print(f"deleted user {name}")
        return 0
    exists = accounts.get_user(conn, name) is not None
    if action == "add" and exists:
        print(f"smss: user {name} exists; `smss user passwd {name}` changes the password",
              file=sys.stderr)
        return 1
    if action == "passwd" and not exists:
        print(f"smss: no user {name}; `smss user add {name}` creates it", file=sys.stderr)
        return 1
    password = _read_password(stdin)
    if password is None:
        return 1
    accounts.set_user(conn, name, passwords.hash_password(password))
    print(f"{'created user' if action == 'add' else 'new password for'} {name}")
    return 0


def _read_password(stdin: TextIO) -> Optional[str]:
    if stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("smss: the passwords differ", file=sys.stderr)
            return None
    else:
        password = stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD:
        print(f"smss: a password needs at least {MIN_PASSWORD} characters", file=sys.stderr)
        return None
    return password


def _token(conn, action: str, name: str) -> int:
    if action == "list":
        for token in accounts.tokens(conn):
            used = f"{token.last_used_at:%Y-%m-%d %H:%M} UTC" if token.last_used_at else "never"
            print(f"{token.name}\tmade {token.created_at:%Y-%m-%d %H:%M} UTC\tlast used {used}")
        return 0
    if action == "delete":
        if not accounts.delete_token(conn, name):
            print(f"smss: no token {name}", file=sys.stderr)
            return 1
        print(f"deleted token {name}")
        return 0
    if any(token.name == name for token in accounts.tokens(conn)):
        print(f"smss: a token {name} exists; delete it first", file=sys.stderr)
        return 1
    token, token_hash = passwords.new_token()
    accounts.add_token(conn, name, token_hash)
    print(token)
    print(f"token {name} made; it is shown only now (use it as"
          " `Authorization: Bearer <token>`)", file=sys.stderr)
    return 0
