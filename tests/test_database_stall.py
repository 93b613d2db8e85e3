"""A database that stops answering, or answers slowly: the spooler, the dispatcher and the
web interface against a private MariaDB these tests freeze (SIGSTOP) and thaw (SIGCONT).

- The spooler answers ``ERR 503`` within its timeouts and stores nothing it did not
  acknowledge; a COMMIT the database never confirmed is checked before the answer.
- Records waiting for the database are bounded: the server stops reading instead
  of holding what clients send, and stores every acknowledged record afterwards.
- The dispatcher stops its pass instead of hanging; nothing is sent twice.
- The web interface leaves no transaction open between requests, so an ALTER TABLE
  (``smss migrate``) never waits behind an idle page view.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
from collections import Counter
from urllib.parse import urlsplit

import httpx
import pymysql
import pytest
from conftest import read_lines
from support_dispatch import site
from support_mariadb import MariaDB
from support_wait import wait_for
from support_web import add_token, add_user, base_url, login, web_settings

from smss.store import queue as msg_table
from smss.store import received
from smss.store.database import connect

# The spooler's timeouts in these tests: short, so a test does not sit through the
# defaults; what they show holds for any value.
TIMEOUTS = {"connect_timeout": "3", "read_timeout": "3", "write_timeout": "3"}
DOUBT_REPLY = "ERR 504 storage did not confirm the commit, the record may be stored"
NOT_STORED = "ERR 503 storage unavailable, not stored"


@pytest.fixture(scope="module")
def own_mariadb(tmp_path_factory):
    """A MariaDB server these tests may freeze (the session one is shared)."""
    try:
        server = MariaDB(str(tmp_path_factory.mktemp("stall-mariadb")))
    except RuntimeError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def stall_db(own_mariadb):
    """A fresh database on the private server; the server runs again afterwards."""
    url = own_mariadb.create_database()
    yield url
    own_mariadb.thaw()


@pytest.fixture
def admin(own_mariadb):
    conn = pymysql.connect(unix_socket=own_mariadb.socket, user="root", autocommit=True)
    yield conn
    conn.close()


def sql(conn, statement, params=()):
    with conn.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall()


def texts_stored(url):
    conn = connect(url)
    try:
        return [row[0] for row in conn.read().query(
            "SELECT text FROM msg UNION ALL SELECT text FROM sms ORDER BY 1")]
    finally:
        conn.close()


def waiting_commits(admin):
    return sql(admin, "SELECT id FROM information_schema.processlist WHERE user = 'smss'"
                      " AND state = 'Waiting for backup lock' AND info = 'COMMIT'")


# -- the spooler


def test_a_stalled_database_gets_err_503_and_everything_recovers(server_factory, own_mariadb,
                                                                 stall_db):
    server = server_factory(stall_db, database=TIMEOUTS)
    first = server.send(b"#420608337726;before the stall\n")
    assert first[0].startswith("OK "), first
    with own_mariadb.frozen():
        # the committer's connection is open; the server stops answering on it
        stalled = server.send(b"#420608337726;during the stall\n", timeout=120)
        # and a new connection is accepted by the kernel but never greeted
        again = server.send(b"#420608337726;still stalled\n", timeout=120)
    assert stalled == [NOT_STORED], server.log()
    assert again == [NOT_STORED], server.log()
    after = server.send(b"#420608337726;after the stall\n")
    assert after[0].startswith("OK "), server.log()
    assert texts_stored(stall_db) == ["after the stall", "before the stall"]


def test_many_clients_during_a_stall_all_get_an_answer(server_factory, own_mariadb, stall_db):
    server = server_factory(stall_db, database=TIMEOUTS)
    assert server.send(b"#420608337726;warm\n")[0].startswith("OK ")
    replies = {}

    def client(number):
        replies[number] = server.send(f"#420608337726;client {number}\n".encode(), timeout=120)

    with own_mariadb.frozen():
        threads = [threading.Thread(target=client, args=(n,)) for n in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(replies) == list(range(50))
    assert {tuple(lines) for lines in replies.values()} == {(NOT_STORED,)}, server.log()
    assert texts_stored(stall_db) == ["warm"]
    assert server.send(b"#420608337726;after\n")[0].startswith("OK ")


def test_a_commit_the_database_did_not_confirm_is_checked_before_the_answer(
        server_factory, own_mariadb, stall_db, admin):
    """COMMIT sent, no answer within read_timeout: the transaction may still commit.  The
    spooler ends that session and looks for the rows before it says anything."""
    server = server_factory(stall_db, database=TIMEOUTS)
    assert server.send(b"#420608337726;before\n")[0].startswith("OK ")
    sql(admin, "BACKUP STAGE START")
    sql(admin, "BACKUP STAGE BLOCK_COMMIT")  # INSERT goes through, COMMIT waits
    try:
        replies = server.send(b"#420608337726;in doubt\n", timeout=120)
    finally:
        sql(admin, "BACKUP STAGE END")
    wait_for(lambda: not waiting_commits(admin), what="no COMMIT left waiting")
    assert replies == [NOT_STORED], server.log()
    assert texts_stored(stall_db) == ["before"]  # the abandoned COMMIT did not go through
    assert server.send(b"#420608337726;after\n")[0].startswith("OK ")
    assert texts_stored(stall_db) == ["after", "before"]


def test_a_commit_nobody_can_confirm_gets_err_504_and_its_outcome_is_logged(
        server_factory, own_mariadb, stall_db, admin):
    """The COMMIT waits, then the whole server freezes: the check cannot run either.
    The client hears that the record may be stored; the log later says whether it was."""
    server = server_factory(stall_db, database=TIMEOUTS)
    assert server.send(b"#420608337726;before\n")[0].startswith("OK ")
    sql(admin, "BACKUP STAGE START")
    sql(admin, "BACKUP STAGE BLOCK_COMMIT")
    try:
        with server.connect(timeout=120) as sock:
            sock.sendall(b"#420608337726;in doubt\n")
            sock.shutdown(socket.SHUT_WR)
            wait_for(lambda: waiting_commits(admin), what="the COMMIT waiting")
            with own_mariadb.frozen():
                replies = read_lines(sock)
    finally:
        sql(admin, "BACKUP STAGE END")
    assert replies == [DOUBT_REPLY], server.log()
    assert server.send(b"#420608337726;after\n")[0].startswith("OK ")
    outcome = wait_for(lambda: re.search(r"record\(s\) \S+ answered ERR 504 (were|were not)"
                                         r" stored", server.log()),
                       what="the outcome of the doubtful commit in the log")
    stored = "in doubt" in texts_stored(stall_db)
    assert outcome.group(1) == ("were" if stored else "were not"), server.log()


def test_a_kannel_sendsms_whose_commit_was_not_confirmed_is_settled_too(
        server_factory, own_mariadb, stall_db, admin, tmp_path):
    """Kannel's sendsms (and an Idempotency-Key request) commit on their own connection,
    outside the group commit; an unconfirmed COMMIT there is settled the same way."""
    server = server_factory(stall_db, database=TIMEOUTS, web=web_settings(tmp_path))
    url, token = base_url(server), add_token(server.config_path, "foo")
    request = {"username": "foo", "password": token, "to": "608337726", "text": "before"}
    with httpx.Client(base_url=url, timeout=120) as client:  # (and the token's use noted)
        assert client.get("/cgi-bin/sendsms", params=request).status_code == 202
    request["text"] = "in doubt"
    sql(admin, "BACKUP STAGE START")
    sql(admin, "BACKUP STAGE BLOCK_COMMIT")
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            answer = client.get("/cgi-bin/sendsms", params=request)
    finally:
        sql(admin, "BACKUP STAGE END")
    wait_for(lambda: not waiting_commits(admin), what="no COMMIT left waiting")
    assert (answer.status_code, answer.text) == (503, "Temporal failure, try again later.")
    assert texts_stored(stall_db) == ["before"]  # true: the abandoned COMMIT did not go through
    with httpx.Client(base_url=url, timeout=120) as client:
        assert client.get("/cgi-bin/sendsms", params=request).status_code == 202
    assert texts_stored(stall_db) == ["before", "in doubt"]


# -- back-pressure


def test_with_a_stalled_database_the_server_stops_reading_and_loses_nothing(
        server_factory, own_mariadb, stall_db):
    limit_records, limit_bytes = 50, 4000
    server = server_factory(
        stall_db, database={"read_timeout": "600", "write_timeout": "600"},
        server={"max_pending_records": str(limit_records),
                "max_pending_bytes": str(limit_bytes),
                "max_records_per_connection": "100000"})
    assert server.send(b"#420608337726;warm\n")[0].startswith("OK ")
    clients, per_client = 8, 5000  # 40,000 records, 800 times the limit
    replies = {}
    mark = len(server.log())

    def client(number):
        payload = "".join(f"#420608337726;client {number} record {i:05}\n"
                          for i in range(per_client)).encode()
        replies[number] = server.send(payload, timeout=600)

    with own_mariadb.frozen():
        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        for thread in threads:
            thread.start()
        paused = wait_for(
            lambda: (lambda found: len(found) >= clients and found)(
                re.findall(r"reading paused, (\d+) records \((\d+) bytes\) pending",
                           server.log()[mark:])),
            what="every client paused")
    for thread in threads:
        thread.join()
    for records, size in paused:
        assert int(records) <= limit_records and int(size) <= limit_bytes, paused
    assert "pending limit reached" in server.log()
    assert sorted(replies) == list(range(clients))
    for lines in replies.values():
        assert len(lines) == per_client and all(line.startswith("OK ") for line in lines)
    stored = texts_stored(stall_db)
    assert len(stored) == clients * per_client + 1
    assert len(set(stored)) == len(stored)


def test_a_server_stopped_while_clients_wait_for_room_stops_and_answers_honestly(
        server_factory, own_mariadb, stall_db):
    server = server_factory(stall_db, database=TIMEOUTS,
                            server={"max_pending_records": "20"})
    assert server.send(b"#420608337726;warm\n")[0].startswith("OK ")
    clients, replies = 4, {}
    mark = len(server.log())

    def client(number):
        payload = "".join(f"#420608337726;client {number} record {i}\n"
                          for i in range(200)).encode()
        replies[number] = server.send(payload, timeout=120)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    with own_mariadb.frozen():
        for thread in threads:
            thread.start()
        wait_for(lambda: server.log()[mark:].count("reading paused") >= clients,
                 what="every client paused")
        server.process.send_signal(signal.SIGTERM)
        status = server.process.wait(timeout=120)
    for thread in threads:
        thread.join()
    assert status == 0, server.log()
    lines = [line for number in range(clients) for line in replies[number]]
    assert lines and set(line.split()[0] for line in lines) <= {"OK", "ERR"}
    assert all(line.startswith("OK ") or line == NOT_STORED for line in lines), lines
    acknowledged = {line for line in lines if line.startswith("OK ")}
    assert len(texts_stored(stall_db)) == len(acknowledged) + 1  # and the warm-up


# -- the dispatcher


def test_the_dispatcher_stops_on_a_stalled_database_and_sends_nothing_twice(
        tmp_path, own_mariadb, stall_db):
    settings = {"database": TIMEOUTS, "dispatcher": {"pass_timeout": "900"}}
    with site(tmp_path, stall_db, settings=settings, latency=2.0) as s:
        ids = [s.enqueue("+420608337726", f"stall {i}") for i in range(3)]
        holder = s.start()
        [(started,)] = wait_for(
            lambda: s.rows("msg", "id", "WHERE send_started_at IS NOT NULL"),
            what="first send started")
        assert started == ids[0]
        with own_mariadb.frozen():  # the send is in flight: its +CMGS answer is 2 s away
            status = holder.wait(timeout=120)
        assert status == 1, s.log()
        assert f"outcome of message {ids[0]} kept in" in s.log()
        assert Counter(p["text"] for p in s.sim.control.sent()) == Counter({"stall 0": 1})

        assert s.run().returncode == 0, s.log()
        assert f"applied journaled outcome of message {ids[0]}" in s.log()
        assert s.rows("msg") == []
        assert s.rows("sms", "id, status, attempts") == [(i, "sent", 1) for i in ids]
        assert Counter(p["text"] for p in s.sim.control.sent()) == Counter(
            {f"stall {i}": 1 for i in range(3)})


def test_the_dispatcher_does_not_hang_on_a_database_frozen_before_the_pass(
        tmp_path, own_mariadb, stall_db):
    settings = {"database": TIMEOUTS, "dispatcher": {"pass_timeout": "900"}}
    with site(tmp_path, stall_db, settings=settings) as s:
        ids = [s.enqueue("+420608337726", f"queued {i}") for i in range(2)]
        with own_mariadb.frozen():
            result = s.run()
        assert result.returncode == 1, s.log()
        assert s.sim.control.sent() == []
        assert s.run().returncode == 0, s.log()
        assert s.rows("sms", "id, status, attempts") == [(i, "sent", 1) for i in ids]
        assert Counter(p["text"] for p in s.sim.control.sent()) == Counter(
            {"queued 0": 1, "queued 1": 1})


# -- the web interface


def test_web_pages_leave_no_transaction_open_and_an_alter_table_goes_through(
        server_factory, mariadb, tmp_path):
    url = mariadb.create_database()
    server = server_factory(url, web=web_settings(tmp_path))
    add_user(server.config_path, "alice")
    conn = connect(url)
    try:
        with conn.transaction():
            msg_table.insert(conn, [msg_table.NewMessage("+420608337726", "queued")])
            received.insert(conn, received.Incoming("+420777123456", "received"))
    finally:
        conn.close()
    web = login(base_url(server), "alice")
    for path in ["/", "/queue", "/sent", "/received", "/message/1", "/received/1",
                 "/message/999", "/queue?number=608337726"]:
        web.get(path)
    web.close()
    name = urlsplit(url).path.lstrip("/")
    checker = pymysql.connect(unix_socket=mariadb.socket, user="root", database=name,
                              autocommit=True)
    try:
        open_transactions = sql(
            checker, "SELECT t.trx_mysql_thread_id FROM information_schema.innodb_trx t"
                     " JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id"
                     " WHERE p.db = %s", (name,))
        assert open_transactions == ()
        sql(checker, "ALTER TABLE msg NOWAIT ADD COLUMN probe INT")  # fails if it had to wait
        sql(checker, "ALTER TABLE rcv NOWAIT ADD COLUMN probe INT")
    finally:
        checker.close()
    assert server.send(b"#420608337726;after the ALTER\n")[0].startswith("OK ")
