"""``smss user …`` and ``smss token …``: who may log in, which applications may call the API.

    smss user add NAME [--role ROLE]    create a user; asks for the password twice
    smss user passwd NAME               set a new password (ends that user's logins)
    smss user role NAME ROLE            change the role
    smss user delete NAME               (ends that user's logins)
    smss user list
    smss token add NAME [--role ROLE]   make an API token and print it (shown only this once)
    smss token delete NAME
    smss token list

ROLE is admin, operator or viewer.  A new user is an admin when there is no
admin yet, else an operator; a new token is an operator.  When stdin is not a
terminal, the password is its first line (for scripts: ``printf '%s\\n'
"$PASSWORD" | smss user add alice``).  Users and tokens live in the queue
database (``web_user``, ``api_token``), hashed; every change is in the audit
trail as ``cli:LOGIN``.
"""

from __future__ import annotations

import getpass
import os
import pwd
import re
import sys
from typing import List, Optional, TextIO

from smss.config import Config
from smss.store import accounts, migrations
from smss.store.database import DatabaseError, connect_config
from smss.web import passwords

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 8

USAGE = """usage: smss user add NAME [--role ROLE] | smss user passwd|delete NAME
       smss user role NAME ROLE | smss user list
       smss token add NAME [--role ROLE] | smss token delete NAME | smss token list
ROLE: admin, operator or viewer"""

# the words after `smss user` / `smss token` each action takes
_ARGS = {"user": {"add": 2, "passwd": 2, "delete": 2, "role": 3, "list": 1},
         "token": {"add": 2, "delete": 2, "list": 1}}


def _cli_actor() -> str:
    try:
        login = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        login = str(os.getuid())
    return f"cli:{login}"


def main(kind: str, args: List[str], config: Config, stdin: Optional[TextIO] = None,
         role: Optional[str] = None) -> int:
    stdin = stdin or sys.stdin
    action = args[0] if args else ""
    name = args[1] if len(args) > 1 else ""
    wanted = _ARGS[kind].get(action)
    if wanted is None or len(args) != wanted or (role and action != "add"):
        print(USAGE, file=sys.stderr)
        return 2
    if action == "role":
        role = args[2]
    if role is not None and role not in accounts.ROLES:
        print(f"smss: unknown role {role!r} (admin, operator or viewer)", file=sys.stderr)
        return 2
    wants_name = wanted > 1
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
            return _user(conn, action, name, stdin, role)
        return _token(conn, action, name, role or accounts.OPERATOR)
    except (migrations.SchemaError, DatabaseError) as exc:
        print(f"smss: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()


def _user(conn, action: str, name: str, stdin: TextIO, role: Optional[str]) -> int:
    actor = _cli_actor()
    if action == "list":
        for user in accounts.users(conn):
            print(f"{user.name}\t{user.role}\tpassword set {user.updated_at:%Y-%m-%d %H:%M} UTC")
        return 0
    if action == "delete":
        if not accounts.delete_user(conn, name, actor=actor):
            print(f"smss: no user {name}", file=sys.stderr)
            return 1
        print(f"deleted user {name}")
        return 0
    if action == "role":
        assert role is not None
        if not accounts.set_role(conn, name, role, actor=actor):
            print(f"smss: no user {name}", file=sys.stderr)
            return 1
        print(f"{name} is now {role}")
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
    if action == "add" and role is None:
        role = accounts.OPERATOR if accounts.count_admins(conn) else accounts.ADMIN
    accounts.set_user(conn, name, passwords.hash_password(password), role, actor=actor)
    print(f"created user {name} ({role})" if action == "add" else f"new password for {name}")
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


def _token(conn, action: str, name: str, role: str) -> int:
    if action == "list":
        for token in accounts.tokens(conn):
            used = f"{token.last_used_at:%Y-%m-%d %H:%M} UTC" if token.last_used_at else "never"
            print(f"{token.name}\t{token.role}\tmade {token.created_at:%Y-%m-%d %H:%M} UTC"
                  f"\tlast used {used}")
        return 0
    if action == "delete":
        if not accounts.delete_token(conn, name, actor=_cli_actor()):
            print(f"smss: no token {name}", file=sys.stderr)
            return 1
        print(f"deleted token {name}")
        return 0
    if any(token.name == name for token in accounts.tokens(conn)):
        print(f"smss: a token {name} exists; delete it first", file=sys.stderr)
        return 1
    token, token_hash = passwords.new_token()
    accounts.add_token(conn, name, token_hash, role, actor=_cli_actor())
    print(token)
    print(f"token {name} ({role}) made; it is shown only now (use it as"
          " `Authorization: Bearer <token>`)", file=sys.stderr)
    return 0
