"""Connections to the queue database: ``sqlite:///PATH`` or ``mysql://…``.

One ``Connection`` class hides the two DB-API drivers' differences: SQL is
written once with ``?`` placeholders, datetimes are naive UTC on both sides,
and ``transaction()`` commits or rolls back.  SQLite runs in WAL mode with
``synchronous=FULL`` (an acknowledged record survives a power cut) and a busy
timeout; a write transaction starts with ``BEGIN IMMEDIATE`` so two writers
queue up instead of failing halfway.  MySQL/MariaDB goes through PyMySQL with
utf8mb4 and with connect, read and write timeouts (``DatabaseSettings``): a
server that stops answering makes a statement fail instead of hanging.

A MySQL URL may list several servers (the nodes of a Galera cluster): a
connection goes to the first that answers and belongs to the primary component,
starting with the one that answered last, and a connection whose server fails
(gone, silent, or "not ready") connects again to the next one at its next use.
On a Galera node every session reads causally (``wsrep_sync_wait``).  A
statement that lost a race to another transaction (``is_conflict``: a deadlock,
or a Galera certification failure) is the caller's to retry: ``again_on_conflict``
runs a whole transaction again after a short random pause.

A COMMIT that was sent but never answered raises ``CommitInDoubt``: the
transaction may have committed or not.  ``end_session`` (on a new connection)
ends the abandoned session, after which its outcome is final and can be
looked up.  ``release`` returns an idle connection clean (no snapshot, no
locks), so an idle connection never holds up an ALTER TABLE.
"""

from __future__ import annotations

import dataclasses
import os
import random
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, TypeVar

import pymysql

from smss.store.dburl import DatabaseUrl, Host, parse_hosts
from smss.store.errors import DatabaseError

TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


@dataclass(frozen=True)
class Session:
    """A connection's session on a MySQL server: its connection id, when it was opened,
    the server it was opened on (``host:port`` as the URL names it, or the socket) and,
    on a Galera node, the node's client address as the cluster lists its members."""

    id: int
    opened_at: float  # time.time()
    server: str = ""
    node_address: str = ""


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
# Galera's answers on a node outside the primary component: "WSREP has not yet prepared
# node for application use" (1047) and a replication command refused (1180).
_NOT_READY = (1047, 1180)
# A transaction that lost to another one: a deadlock, or on Galera a conflict with a
# replicated transaction (a brute-force abort or a failed certification at COMMIT).
CONFLICT = 1213


def is_conflict(exc: BaseException) -> bool:
    """Did the statement lose a race (retrying it at once is right), rather than find
    the database unavailable?"""
    return (isinstance(exc, pymysql.err.OperationalError) and bool(exc.args)
            and exc.args[0] == CONFLICT)


CONFLICT_ATTEMPTS = 8  # a transaction that lost a race is run this many times in all
T = TypeVar("T")


def again_on_conflict(transaction: Callable[[], T], on_retry: Callable[[], None] = lambda: None
                      ) -> T:
    """Run ``transaction`` (a whole transaction: rolled back when it raised) again after a
    short random pause while it loses a race (``is_conflict``), CONFLICT_ATTEMPTS times
    in all; any other error, or the last conflict, is raised."""
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            return transaction()
        except Exception as exc:
            if not is_conflict(exc) or attempt == CONFLICT_ATTEMPTS:
                raise
            on_retry()
            time.sleep(random.uniform(0.0, 0.02 * attempt))
    raise AssertionError("not reached")


# Which server of a list answered last, per list: new connections start there, so the
# processes of one site stay on one node (and off a node that just failed).
_PREFERRED: Dict[Tuple[Host, ...], int] = {}
_PREFERRED_LOCK = threading.Lock()


# Errors a caller may catch to mean "the database is unavailable right now".
UNAVAILABLE_ERRORS = (DatabaseError, sqlite3.OperationalError, pymysql.err.OperationalError,
                      pymysql.err.InterfaceError)


def _galera_node(raw: Any) -> str:
    """On a Galera node: refuse one outside the primary component (DatabaseError), make
    this session's reads causal (``wsrep_sync_wait``: a read sees every write the cluster
    committed before it, through any node), and return the node's client address as the
    cluster lists its members.  '' on a server without Galera."""
    with raw.cursor() as cursor:
        try:
            cursor.execute("SELECT @@global.wsrep_on")
        except pymysql.err.MySQLError:
            return ""  # no such variable: not a MariaDB with Galera
        if not int(cursor.fetchone()[0] or 0):
            return ""
        cursor.execute("SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready',"
                       " 'wsrep_local_state_comment', 'wsrep_local_index',"
                       " 'wsrep_incoming_addresses')")
        status = {str(name).lower(): str(value) for name, value in cursor.fetchall()}
        if status.get("wsrep_ready") != "ON":
            raise DatabaseError("this Galera node is not part of the primary component ("
                                f"{status.get('wsrep_local_state_comment', '?')})")
        cursor.execute("SET SESSION wsrep_sync_wait = 1")
        # no gap locks: a replicated write next to rows a local claim scanned would
        # otherwise abort that claim (a "brute force" abort, error 1213)
        cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    addresses = status.get("wsrep_incoming_addresses", "").split(",")
    index = int(status.get("wsrep_local_index", "-1") or -1)
    address = addresses[index] if 0 <= index < len(addresses) else ""
    return "" if address.upper() == "AUTO" else address  # AUTO: the node did not say


def _member(conn: "Connection", node_address: str) -> bool:
    """Does the cluster ``conn`` is on still count the node at ``node_address``?"""
    row = conn.read().query_one("SHOW GLOBAL STATUS LIKE 'wsrep_incoming_addresses'")
    return row is not None and node_address in str(row[1]).split(",")


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
        self._host_index = 0  # which server of the URL's list this connection is on
        self._stale = False  # that server failed: connect again before the next use
        try:
            if url.dialect == "sqlite":
                self._raw = self._open_sqlite(url.path, connect_timeout)
            else:
                self._raw, self.session = self._open_mysql()
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

    def _open_mysql(self) -> Tuple[Any, Session]:
        """Connect to the first server of the URL's list that answers and, on a Galera
        node, belongs to the primary component, starting with the one that answered last;
        a server that failed is skipped at once.  Raises DatabaseError naming each one's
        problem when none will do."""
        url = self.url
        if url.unix_socket:
            return self._open_server(None)
        hosts = url.hosts
        with _PREFERRED_LOCK:
            start = _PREFERRED.get(hosts, 0)
        problems: List[str] = []
        for step in range(len(hosts)):
            index = (start + step) % len(hosts)
            try:
                opened = self._open_server(hosts[index])
            except UNAVAILABLE_ERRORS as exc:
                problems.append(f"{hosts[index]}: {exc}")
                continue
            with _PREFERRED_LOCK:
                _PREFERRED[hosts] = index
            self._host_index = index
            return opened
        if len(hosts) == 1:
            raise DatabaseError(problems[0])
        raise DatabaseError("no database server will do: " + "; ".join(problems))

    def _open_server(self, host: Optional[Host]) -> Tuple[Any, Session]:
        url = self.url
        read_timeout, write_timeout = self._timeouts
        kwargs: dict = dict(
            user=url.user,
            password=url.password,
            database=url.database,
            charset="utf8mb4",
            autocommit=False,
            connect_timeout=max(1, int(self._connect_timeout)),
            read_timeout=read_timeout or None,  # also bounds the server's greeting
            write_timeout=write_timeout or None,
            init_command="SET time_zone = '+00:00'",  # re-run on every reconnect
        )
        if host is None:
            kwargs["unix_socket"] = url.unix_socket
        else:
            kwargs.update(host=host.name, port=host.port)
        tls = url.tls
        if tls == "auto":
            tls = "off" if url.unix_socket else "preferred"
        if tls == "off":
            kwargs["ssl_disabled"] = True  # (also saves building a TLS context per connect)
        elif tls == "verify":
            kwargs.update(ssl_verify_cert=True, ssl_verify_identity=True,
                          ssl_ca=url.tls_ca or None)
        raw = pymysql.connect(**kwargs)
        try:
            node_address = _galera_node(raw)
        except BaseException:
            raw.close()
            raise
        server = url.unix_socket if host is None else str(host)
        return raw, Session(raw.thread_id(), time.time(), server, node_address)

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
        try:
            cursor.execute(self._sql(sql), self._params(params))
        except pymysql.err.OperationalError as exc:
            self._note_failure(exc)
            raise
        return cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        cursor = self._raw.cursor()
        try:
            cursor.executemany(self._sql(sql), [self._params(row) for row in rows])
        except pymysql.err.OperationalError as exc:
            self._note_failure(exc)
            raise
        return cursor

    def _note_failure(self, exc: pymysql.err.OperationalError) -> None:
        """A server that left the primary component (or stopped answering) is left: the
        next use connects again, to another server of the list when there are several."""
        code = exc.args[0] if exc.args else None
        if code in _NOT_READY or code in (_SERVER_GONE, _SERVER_LOST):
            self._stale = True
            hosts = self.url.hosts
            if len(hosts) > 1 and not self.url.unix_socket:
                with _PREFERRED_LOCK:
                    if _PREFERRED.get(hosts, 0) == self._host_index:
                        _PREFERRED[hosts] = (self._host_index + 1) % len(hosts)

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
                try:
                    self._raw.begin()
                except pymysql.err.OperationalError as exc:
                    self._note_failure(exc)
                    raise
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
                self._note_failure(exc)
                # no answer, or a Galera node that left the primary component while
                # committing (its write-set may have been ordered before it left, and
                # then the other nodes commit it): either way the outcome is unknown
                if self.session is not None and exc.args and exc.args[0] in (
                        _SERVER_GONE, _SERVER_LOST, *_NOT_READY):
                    raise CommitInDoubt(f"{self.url.describe()}: COMMIT not confirmed: {exc}",
                                        self.session) from exc
                raise

    def read(self) -> "Connection":
        """Prepare for read-only queries outside a transaction (fresh snapshot on MySQL)."""
        if self.dialect == "mysql":
            self._ensure_mysql()
            try:
                self._raw.commit()  # end any previous snapshot
            except pymysql.err.OperationalError as exc:
                self._note_failure(exc)
                raise
        return self

    def release(self) -> None:
        """End whatever is open (a read snapshot, an unfinished write) before the connection
        sits idle: an idle transaction holds metadata locks that make ALTER TABLE wait."""
        if self.dialect == "mysql":
            self._raw.rollback()
        elif self._raw.in_transaction:
            self._raw.rollback()

    def _ensure_mysql(self) -> None:
        """Reconnect when the server went away (restart, wait_timeout) since the last use,
        or left the primary component of its cluster; a server that does not answer at
        all is reported, not waited for twice (the next use tries the others)."""
        if not self._stale:
            try:
                self._raw.ping(False)
                return
            except pymysql.err.Error as exc:  # gone, or closed by an earlier reconnect
                if isinstance(exc.__context__, TimeoutError):
                    self._note_failure(pymysql.err.OperationalError(_SERVER_LOST, str(exc)))
                    raise DatabaseError(f"{self.url.describe()} did not answer within"
                                        f" {self._timeouts[0]:g} s") from exc
        try:
            self._raw.close()
        except pymysql.err.Error:
            pass
        try:
            self._raw, self.session = self._open_mysql()
        except UNAVAILABLE_ERRORS as exc:
            raise DatabaseError(f"cannot reach {self.url.describe()}: {exc}") from exc
        self._stale = False

    def end_session(self, session: Session, timeout: float) -> None:
        """Make sure ``session``, another connection's that stopped answering, has ended,
        so what its transaction did is final: KILL it (a user may end its own sessions)
        and wait until the server no longer lists it.  A server that restarted since the
        session opened has ended it already.  A session on another node of a Galera
        cluster is killed there when that node answers; a node that does not has ended
        it once the cluster no longer counts the node as a member (its transaction was
        replicated to the others or to nobody).  Raises DatabaseError after ``timeout``."""
        if self.dialect != "mysql":
            return
        deadline = time.monotonic() + timeout
        if session.server and self.session is not None and session.server != self.session.server:
            self._end_remote_session(session, deadline)
            return
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

    def _end_remote_session(self, session: Session, deadline: float) -> None:
        remaining = max(1.0, deadline - time.monotonic())
        there = dataclasses.replace(self.url, hosts=parse_hosts(session.server))
        try:
            other = Connection(there, min(remaining, self._connect_timeout),
                               remaining, remaining)
        except UNAVAILABLE_ERRORS:
            other = None
        if other is not None:
            try:
                other.end_session(session, max(1.0, deadline - time.monotonic()))
                return
            finally:
                other.close()
        if not (self.session and self.session.node_address and session.node_address):
            raise DatabaseError(f"cannot reach {session.server} to end session {session.id}")
        while _member(self, session.node_address):
            if time.monotonic() > deadline:
                raise DatabaseError(f"{session.server} neither answers nor left the cluster")
            time.sleep(0.2)

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
