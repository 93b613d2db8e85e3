"""Connections to the queue database: ``sqlite:///PATH`` or ``mysql://…``.

One ``Connection`` class hides the two DB-API drivers' differences: SQL is
written once with ``?`` placeholders, datetimes are naive UTC on both sides,
and ``transaction()`` commits or rolls back.  SQLite runs in WAL mode with
``synchronous=FULL`` (an acknowledged record survives a power cut) and a busy
timeout; a write transaction starts with ``BEGIN IMMEDIATE`` so two writers
queue up instead of failing halfway.  MySQL/MariaDB goes through PyMySQL with
utf8mb4 and with connect, read and write timeouts (``DatabaseSettings``): a
server that stops answering makes a statement fail instead of hanging.

A COMMIT that was sent but never answered raises ``CommitInDoubt``: the
transaction may have committed or not.  ``end_session`` (on a new connection)
ends the abandoned session, after which its outcome is final and can be
looked up.  ``release`` returns an idle connection clean (no snapshot, no
locks), so an idle connection never holds up an ALTER TABLE.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator, Optional, Sequence
from urllib.parse import parse_qs, unquote, urlsplit

import pymysql

TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


class DatabaseError(Exception):
    """The database could not be reached or refused the statement."""


@dataclass(frozen=True)
class Session:
    """A connection's session on a MySQL server: its connection id, and when it was opened."""

    id: int
    opened_at: float  # time.time()


class CommitInDoubt(DatabaseError):
    """COMMIT was sent and no answer came back: the transaction may have committed.

    ``session`` holds it until the server notices; ``Connection.end_session`` ends it."""

    def __init__(self, message: str, session: Session) -> None:
        super().__init__(message)
        self.session = session


# PyMySQL's client error codes for a connection that failed mid-statement.
_SERVER_GONE, _SERVER_LOST = 2006, 2013
_NO_SUCH_THREAD = 1094  # KILL of a session that has already ended
_RESTART_MARGIN = 2.0  # seconds: the server's Uptime counts whole seconds


# Errors a caller may catch to mean "the database is unavailable right now".
UNAVAILABLE_ERRORS = (DatabaseError, sqlite3.OperationalError, pymysql.err.OperationalError,
                      pymysql.err.InterfaceError)


def utcnow() -> datetime:
    """Now, as the naive UTC datetime every table stores."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def as_datetime(value: Any) -> Optional[datetime]:
    """A time column's value (datetime from MySQL, text from SQLite) as a datetime."""
    if value is None or isinstance(value, datetime):
        return value
    text = str(value)
    try:
        return datetime.fromisoformat(text)  # what we store; ten times faster than strptime
    except ValueError:
        pass
    for fmt in (TIME_FORMAT, "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise ValueError(f"not a time: {text!r}")


def hour_bucket(conn: "Connection", column: str) -> str:
    """SQL for the UTC hour of a time column as text ``YYYY-MM-DD HH`` (computed from
    the column alone, so an index on it covers a GROUP BY of this)."""
    return f"substr({column}, 1, 13)" if conn.dialect == "sqlite" else f"LEFT({column}, 13)"


def parse_hour(text: Any) -> datetime:
    """The datetime of an ``hour_bucket`` value."""
    return datetime.strptime(str(text), "%Y-%m-%d %H")


@dataclass(frozen=True)
class DatabaseUrl:
    dialect: str  # "sqlite" or "mysql"
    path: str = ""  # sqlite
    host: str = "localhost"
    port: int = 3306
    user: str = ""
    password: str = ""
    database: str = ""
    unix_socket: str = ""
    tls: str = "auto"  # auto, off, preferred, verify
    tls_ca: str = ""

    @classmethod
    def parse(cls, url: str) -> "DatabaseUrl":
        if url.startswith("sqlite://"):
            path = url[len("sqlite://") :]
            if not path or path == "/":
                raise DatabaseError(f"{url}: no database file in the URL")
            return cls("sqlite", path=path)
        parts = urlsplit(url)
        if parts.scheme not in ("mysql", "mariadb"):
            raise DatabaseError(f"{url}: unknown database URL (use sqlite:///PATH or mysql://…)")
        query = parse_qs(parts.query)
        database = parts.path.lstrip("/")
        if not database:
            raise DatabaseError(f"{parts.scheme}://…: no database name in the URL")
        return cls(
            "mysql",
            host=parts.hostname or "localhost",
            port=parts.port or 3306,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            database=database,
            unix_socket=query.get("unix_socket", [""])[0],
        )

    def describe(self) -> str:
        """The URL without its password, for logs."""
        if self.dialect == "sqlite":
            return f"sqlite://{self.path}"
        where = self.unix_socket or f"{self.host}:{self.port}"
        return f"mysql://{self.user}@{where}/{self.database}"


def _create_private(path: str) -> None:
    """Create a missing SQLite file 0600 whatever the umask: it holds message texts and
    password hashes, and SQLite gives its -wal and -shm files the database's mode."""
    if path == ":memory:":
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        pass


class Connection:
    """One database connection; use it from one thread at a time.

    ``read_timeout`` and ``write_timeout`` (MySQL; seconds, 0: none) bound the wait for
    each answer and each write; ``connect_timeout`` bounds opening the connection (and is
    SQLite's busy timeout)."""

    def __init__(self, url: DatabaseUrl, connect_timeout: float = 10.0,
                 read_timeout: float = 10.0, write_timeout: float = 10.0) -> None:
        self.url = url
        self.dialect = url.dialect
        self._lock = threading.Lock()
        self._connect_timeout = connect_timeout
        self._timeouts = (read_timeout, write_timeout)
        self.session: Optional[Session] = None
        try:
            if url.dialect == "sqlite":
                self._raw = self._open_sqlite(url.path, connect_timeout)
            else:
                self._raw = self._open_mysql(url, connect_timeout, *self._timeouts)
                self.session = Session(self._raw.thread_id(), time.time())
        except UNAVAILABLE_ERRORS as exc:
            raise DatabaseError(f"cannot open {url.describe()}: {exc}") from exc

    @staticmethod
    def _open_sqlite(path: str, timeout: float) -> sqlite3.Connection:
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise DatabaseError(f"cannot open sqlite://{path}: no directory {directory}")
        _create_private(path)
        raw = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=FULL")
        raw.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        return raw

    @staticmethod
    def _open_mysql(url: DatabaseUrl, timeout: float, read_timeout: float,
                    write_timeout: float) -> Any:
        kwargs: dict = dict(
            user=url.user,
            password=url.password,
            database=url.database,
            charset="utf8mb4",
            autocommit=False,
            connect_timeout=max(1, int(timeout)),
            read_timeout=read_timeout or None,  # also bounds the server's greeting
            write_timeout=write_timeout or None,
            init_command="SET time_zone = '+00:00'",  # re-run on every reconnect
        )
        if url.unix_socket:
            kwargs["unix_socket"] = url.unix_socket
        else:
            kwargs.update(host=url.host, port=url.port)
        tls = url.tls
        if tls == "auto":
            tls = "off" if url.unix_socket else "preferred"
        if tls == "off":
            kwargs["ssl_disabled"] = True  # (also saves building a TLS context per connect)
        elif tls == "verify":
            kwargs.update(ssl_verify_cert=True, ssl_verify_identity=True,
                          ssl_ca=url.tls_ca or None)
        return pymysql.connect(**kwargs)

    # -- statements

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "mysql" else sql

    def _params(self, params: Sequence[Any]) -> Sequence[Any]:
        if self.dialect == "sqlite":
            return [p.strftime(TIME_FORMAT) if isinstance(p, datetime) else p for p in params]
        return params

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; returns the driver's cursor (fetch from it, read lastrowid)."""
        cursor = self._raw.cursor()
        cursor.execute(self._sql(sql), self._params(params))
        return cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        cursor = self._raw.cursor()
        cursor.executemany(self._sql(sql), [self._params(row) for row in rows])
        return cursor

    def query(self, sql: str, params: Sequence[Any] = ()) -> list:
        cursor = self.execute(sql, params)
        try:
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> Optional[tuple]:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    @contextmanager
    def transaction(self) -> Iterator["Connection"]:
        """A write transaction: committed when the block ends, rolled back on an exception."""
        with self._lock:
            if self.dialect == "sqlite":
                self._raw.execute("BEGIN IMMEDIATE")
            else:
                self._ensure_mysql()
                self._raw.begin()
            try:
                yield self
            except BaseException:
                try:
                    self._raw.rollback()
                except UNAVAILABLE_ERRORS:
                    pass  # the connection is gone; the server rolled back for us
                raise
            try:
                self._raw.commit()
            except pymysql.err.OperationalError as exc:
                if self.session is not None and exc.args and exc.args[0] in (
                        _SERVER_GONE, _SERVER_LOST):
                    raise CommitInDoubt(f"{self.url.describe()}: COMMIT not confirmed: {exc}",
                                        self.session) from exc
                raise

    def read(self) -> "Connection":
        """Prepare for read-only queries outside a transaction (fresh snapshot on MySQL)."""
        if self.dialect == "mysql":
            self._ensure_mysql()
            self._raw.commit()  # end any previous snapshot
        return self

    def release(self) -> None:
        """End whatever is open (a read snapshot, an unfinished write) before the connection
        sits idle: an idle transaction holds metadata locks that make ALTER TABLE wait."""
        if self.dialect == "mysql":
            self._raw.rollback()
        elif self._raw.in_transaction:
            self._raw.rollback()

    def _ensure_mysql(self) -> None:
        """Reconnect when the server went away (restart, wait_timeout) since the last use;
        a server that does not answer at all is reported, not waited for twice."""
        try:
            self._raw.ping(False)
        except pymysql.err.Error as exc:  # gone, or closed by an earlier failed reconnect
            if isinstance(exc.__context__, TimeoutError):
                raise DatabaseError(f"{self.url.describe()} did not answer within"
                                    f" {self._timeouts[0]:g} s") from exc
            try:
                self._raw.close()
            except pymysql.err.Error:
                pass
            try:
                self._raw = self._open_mysql(self.url, self._connect_timeout, *self._timeouts)
            except UNAVAILABLE_ERRORS as exc:
                raise DatabaseError(f"cannot reach {self.url.describe()}: {exc}") from exc
            self.session = Session(self._raw.thread_id(), time.time())

    def end_session(self, session: Session, timeout: float) -> None:
        """Make sure ``session``, another connection's that stopped answering, has ended,
        so what its transaction did is final: KILL it (a user may end its own sessions)
        and wait until the server no longer lists it.  A server that restarted since the
        session opened has ended it already.  Raises DatabaseError after ``timeout``."""
        if self.dialect != "mysql":
            return
        deadline = time.monotonic() + timeout
        uptime = float(self.read().query_one("SHOW GLOBAL STATUS LIKE 'Uptime'")[1])
        if time.time() - uptime > session.opened_at + _RESTART_MARGIN:
            return
        try:
            self.execute(f"KILL CONNECTION {int(session.id)}").close()
        except pymysql.err.MySQLError as exc:
            if exc.args and exc.args[0] == _NO_SUCH_THREAD:
                return
            raise
        while self.read().query_one(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?",
                (session.id,))[0]:
            if time.monotonic() > deadline:
                raise DatabaseError(f"session {session.id} did not end within {timeout:g} s")
            time.sleep(0.02)

    def close(self) -> None:
        try:
            self._raw.close()
        except (pymysql.err.Error, sqlite3.Error):
            pass  # already closed, or the server is gone: nothing left to release


def connect(url: str, connect_timeout: float = 10.0, tls: str = "auto",
            tls_ca: str = "", read_timeout: float = 10.0,
            write_timeout: float = 10.0) -> Connection:
    parsed = DatabaseUrl.parse(url)
    if parsed.dialect == "mysql":
        parsed = dataclasses.replace(parsed, tls=tls, tls_ca=tls_ca)
    return Connection(parsed, connect_timeout, read_timeout, write_timeout)


@dataclass(frozen=True)
class DatabaseSettings:
    """The [database] section: where the database is, and how long to wait for it."""

    url: str
    connect_timeout: float = 10.0
    read_timeout: float = 10.0  # MySQL; 0: wait for ever
    write_timeout: float = 10.0
    tls: str = "auto"
    tls_ca: str = ""

    @classmethod
    def from_config(cls, config) -> "DatabaseSettings":
        get = config.get
        return cls(get("database", "url"), get("database", "connect_timeout"),
                   get("database", "read_timeout"), get("database", "write_timeout"),
                   get("database", "tls"), get("database", "tls_ca"))

    def connect(self) -> Connection:
        return connect(self.url, self.connect_timeout, self.tls, self.tls_ca,
                       self.read_timeout, self.write_timeout)

    def patience(self) -> float:
        """Seconds to wait for one answer when no statement may wait for ever."""
        return self.read_timeout or self.connect_timeout


def connect_config(config, statement_timeouts: bool = True) -> Connection:
    """The connection the configuration's [database] section describes.  Without
    ``statement_timeouts`` a statement may run as long as it takes (``smss migrate``:
    an ALTER TABLE of a big table)."""
    settings = DatabaseSettings.from_config(config)
    if not statement_timeouts:
        settings = dataclasses.replace(settings, read_timeout=0, write_timeout=0)
    return settings.connect()
