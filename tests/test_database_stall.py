"""The web interface leaves no transaction open between requests, so an ALTER TABLE
(``smss migrate``) never waits behind an idle page view (and the spooler's inserts
never queue up behind such an ALTER)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pymysql
from support_web import add_user, base_url, login, web_settings

from smss.store import queue as msg_table
from smss.store import received
from smss.store.database import connect


def sql(conn, statement, params=()):
    with conn.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall()


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
