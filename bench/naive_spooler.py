"""The naive reference spooler of the ingest benchmark, built as seed 002 describes it.

A thread per client (``socketserver.ThreadingTCPServer``); each client thread
opens its own database connection and stores every record with one INSERT and
one commit of its own, then answers ``OK <id>``.  It speaks the same protocol
and judges records the same way as smss (``smss.spooler.protocol.RecordParser``,
``smss.spooler.validate.check``), writes the same columns with the same durability
(SQLite: WAL, synchronous=FULL; InnoDB: its default commit flush), so what
differs from smss is the architecture: a thread and a commit per record
instead of one event loop and group commit.  The listen backlog is 1024, as
for smss, so neither server loses connections to SYN drops.

It talks to the database through the drivers directly, with PyMySQL's TLS off
(``ssl_disabled``): PyMySQL 1.2 otherwise builds an SSL context on every
connect (about 20 ms of CPU here), which would handicap a connect-per-client
design for a reason that has nothing to do with it.

    python3 bench/naive_spooler.py --db URL [--port 0]

prints ``naive spooler listening on HOST:PORT`` on stderr once it accepts.
"""

from __future__ import annotations

import argparse
import os
import socketserver
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import sqlite3  # noqa: E402

import pymysql  # noqa: E402

from smss.spooler import validate  # noqa: E402
from smss.spooler.protocol import Record, RecordError, RecordParser  # noqa: E402
from smss.store.database import TIME_FORMAT, DatabaseUrl, utcnow  # noqa: E402

RULES = validate.Rules()
INSERT = ("INSERT INTO msg (phone, text, parts, client, created_at, next_attempt_at)"
          " VALUES ({0}, {0}, {0}, {0}, {0}, {0})")


def open_database(url: DatabaseUrl):
    if url.dialect == "sqlite":
        raw = sqlite3.connect(url.path, timeout=30, isolation_level=None)
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=FULL")
        return raw
    where = {"unix_socket": url.unix_socket} if url.unix_socket else {"host": url.host,
                                                                       "port": url.port}
    return pymysql.connect(user=url.user, password=url.password, database=url.database,
                           charset="utf8mb4", autocommit=False, ssl_disabled=True, **where)


def store(raw, phone: str, text: str, parts: int, client: str) -> int:
    """One INSERT, one commit; returns the new id."""
    now = utcnow()
    if isinstance(raw, sqlite3.Connection):
        stamp = now.strftime(TIME_FORMAT)
        raw.execute("BEGIN IMMEDIATE")
        cursor = raw.execute(INSERT.format("?"), (phone, text, parts, client, stamp, stamp))
        raw.execute("COMMIT")
        return int(cursor.lastrowid)
    with raw.cursor() as cursor:
        cursor.execute(INSERT.format("%s"), (phone, text, parts, client, now, now))
        message_id = int(cursor.lastrowid)
    raw.commit()
    return message_id


class Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock = self.request
        conn = open_database(self.server.db_url)
        parser = RecordParser()
        try:
            while True:
                data = sock.recv(65536)
                for event in parser.feed(data) if data else parser.close():
                    sock.sendall(self.answer(conn, event))
                if not data:
                    return
        except OSError:
            return
        finally:
            conn.close()

    def answer(self, conn, event) -> bytes:
        if isinstance(event, RecordError):
            return event.reply()
        assert isinstance(event, Record)
        verdict = validate.check(event, RULES)
        if isinstance(verdict, RecordError):
            return verdict.reply()
        message_id = store(conn, verdict.phone, verdict.text, verdict.parts,
                           self.client_address[0])
        return f"OK {message_id}\r\n".encode()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, address, db_url: str) -> None:
        self.db_url = DatabaseUrl.parse(db_url)
        super().__init__(address, Handler)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="naive thread-per-client spooler (reference)")
    parser.add_argument("--db", required=True, help="sqlite:///PATH or mysql://...")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    with Server((args.host, args.port), args.db) as server:
        host, port = server.server_address[:2]
        print(f"naive spooler listening on {host}:{port}", file=sys.stderr, flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
