"""Versioned schema: numbered SQL files in ``sql/<dialect>/`` and a version table.

``migrate`` applies the files the database has not seen, in order, each one
recorded in ``schema_version``; ``check`` tells whether the database matches
this smss.  An empty database is initialised by ``prepare`` at start; one that
is behind must be migrated on purpose (``smss migrate``), because a migration
of a big production table is something an operator wants to schedule.
"""

from __future__ import annotations

import logging
import pathlib
import re
import sqlite3
from dataclasses import dataclass
from importlib import resources
from typing import List

import pymysql

from smss.store.database import Connection, utcnow

log = logging.getLogger(__name__)

_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class SchemaError(Exception):
    """The database schema does not match this version of smss."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> List[str]:
        """The file split at semicolons that end a line (our files keep it that simple)."""
        lines = [line for line in self.sql.splitlines() if not line.strip().startswith("--")]
        return [part.strip() for part in re.split(r";\s*$", "\n".join(lines), flags=re.M)
                if part.strip()]


def _schema_folder(dialect: str):
    """sql/<dialect>: installed as the package smss.sql, or beside smss/ in a source tree
    (``python3 -m smss.cli`` run from a checkout imports smss from there)."""
    try:
        return resources.files("smss.sql").joinpath(dialect)
    except ModuleNotFoundError:
        import smss

        return pathlib.Path(smss.__file__).resolve().parent.parent / "sql" / dialect


def available(dialect: str) -> List[Migration]:
    folder = _schema_folder(dialect)
    found = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda migration: migration.version)
    return found


def latest_version(dialect: str) -> int:
    migrations = available(dialect)
    return migrations[-1].version if migrations else 0


def current_version(conn: Connection) -> int:
    """The newest applied version; 0 for a database without the version table."""
    conn.read()
    if conn.dialect == "sqlite":
        exists = conn.query_one(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        )
    else:
        exists = conn.query_one(
            "SELECT 1 FROM information_schema.tables"
            " WHERE table_schema = DATABASE() AND table_name = 'schema_version'"
        )
    if not exists:
        return 0
    row = conn.query_one("SELECT MAX(version) FROM schema_version")
    return int(row[0] or 0) if row else 0


def migrate(conn: Connection) -> List[str]:
    """Apply what is missing; returns the names of the files applied."""
    applied = []
    _create_version_table(conn)
    for migration in available(conn.dialect):
        if migration.version <= current_version(conn):
            continue
        with conn.transaction():
            # SQLite runs DDL inside the transaction; MySQL commits each DDL itself,
            # so a statement that finds its work done is skipped (see _run_ddl).
            if conn.query_one(
                "SELECT 1 FROM schema_version WHERE version = ?", (migration.version,)
            ):
                continue  # another process applied it meanwhile
            for statement in migration.statements():
                _run_ddl(conn, statement)
            conn.execute(
                "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, utcnow()),
            ).close()
        log.info("applied schema migration %s", migration.name)
        applied.append(migration.name)
    return applied


# MySQL errors that mean "this statement was applied before" (a migration interrupted
# halfway: MySQL commits each DDL statement on its own): table, column or index exists.
_ALREADY_DONE = {1050, 1060, 1061}


def _run_ddl(conn: Connection, statement: str) -> None:
    try:
        conn.execute(statement).close()
    except pymysql.err.OperationalError as exc:
        if conn.dialect != "mysql" or exc.args[0] not in _ALREADY_DONE:
            raise
        log.info("already applied: %s", statement.splitlines()[0][:80])
    except sqlite3.OperationalError as exc:
        # SQLite has no ADD COLUMN IF NOT EXISTS: a column that is there was added before
        if not str(exc).startswith("duplicate column name"):
            raise
        log.info("already applied: %s", statement.splitlines()[0][:80])


def _create_version_table(conn: Connection) -> None:
    with conn.transaction():
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER NOT NULL PRIMARY KEY,"
            " name VARCHAR(128) NOT NULL,"
            " applied_at VARCHAR(32) NOT NULL)"
        ).close()


def check(conn: Connection) -> None:
    """Raise SchemaError unless the database is exactly at this smss's version."""
    have, want = current_version(conn), latest_version(conn.dialect)
    if have < want:
        raise SchemaError(
            f"database schema is version {have}, this smss needs {want}: run `smss migrate`"
        )
    if have > want:
        raise SchemaError(
            f"database schema is version {have}, newer than this smss knows ({want}): upgrade smss"
        )


def prepare(conn: Connection) -> None:
    """At start: initialise an empty database, refuse an outdated one."""
    if current_version(conn) == 0 and not _has_tables(conn):
        log.info("empty database: creating the schema")
        migrate(conn)
    check(conn)


def _has_tables(conn: Connection) -> bool:
    if conn.dialect == "sqlite":
        row = conn.query_one("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'")
    else:
        row = conn.query_one(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()"
        )
    return bool(row and row[0])
