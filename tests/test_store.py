"""The queue database on both backends: schema migrations and the msg table."""

from __future__ import annotations

import pytest

from smss.store import migrations
from smss.store import queue as msg_table
from smss.store.database import DatabaseError, DatabaseUrl, connect


@pytest.fixture
def conn(database_url):
    connection = connect(database_url)
    migrations.prepare(connection)
    yield connection
    connection.close()


def test_empty_database_is_initialised_and_checked(database_url):
    conn = connect(database_url)
    assert migrations.current_version(conn) == 0
    migrations.prepare(conn)
    assert migrations.current_version(conn) == migrations.latest_version(conn.dialect) >= 1
    migrations.check(conn)
    assert migrations.migrate(conn) == []  # nothing left to apply
    conn.close()


def test_outdated_database_is_refused_until_migrated(conn):
    with conn.transaction():
        conn.execute("DELETE FROM schema_version WHERE version > 0").close()
        conn.execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (0, 'old', 'x')"
        ).close()
    # the tables exist, so prepare() must not silently migrate
    with pytest.raises(migrations.SchemaError, match="run `smss migrate`"):
        migrations.prepare(conn)
    everything = [m.name for m in migrations.available(conn.dialect)]
    assert migrations.migrate(conn) == everything  # every statement is re-runnable
    migrations.check(conn)


def test_newer_database_is_refused(conn):
    with conn.transaction():
        conn.execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (999, 'future', 'x')"
        ).close()
    with pytest.raises(migrations.SchemaError, match="newer than this smss"):
        migrations.check(conn)


def test_insert_returns_ids_in_order(conn):
    messages = [msg_table.NewMessage(f"+42060833{i:04d}", f"text {i}", 1, "127.0.0.1")
                for i in range(1000)]  # more than one INSERT chunk
    with conn.transaction():
        ids = msg_table.insert(conn, messages)
    assert ids == sorted(ids) and len(set(ids)) == 1000
    rows = dict((r[0], (r[1], r[2])) for r in conn.read().query("SELECT id, phone, text FROM msg"))
    for message, message_id in zip(messages, ids):
        assert rows[message_id] == (message.phone, message.text)


def test_text_round_trips_in_full_unicode(conn):
    text = "Příliš žluťoučký kůň 🐎 Привет ∑ \\ ' \" ; # \n"
    with conn.transaction():
        [message_id] = msg_table.insert(conn, [msg_table.NewMessage("+420608337726", text)])
    assert msg_table.get(conn, message_id)["text"] == text


def test_rolled_back_insert_leaves_nothing(conn):
    with pytest.raises(RuntimeError):
        with conn.transaction():
            msg_table.insert(conn, [msg_table.NewMessage("+420608337726", "x")])
            raise RuntimeError("boom")
    assert msg_table.stats(conn).depth == 0


def test_ids_are_never_reused(conn):
    with conn.transaction():
        first = msg_table.insert(conn, [msg_table.NewMessage("+420608337726", "a")])[0]
        conn.execute("DELETE FROM msg WHERE id = ?", (first,)).close()
    with conn.transaction():
        second = msg_table.insert(conn, [msg_table.NewMessage("+420608337726", "b")])[0]
    assert second > first


def test_stats_and_last_accepted(conn):
    assert msg_table.stats(conn).depth == 0
    assert msg_table.last_accepted(conn) is None
    with conn.transaction():
        msg_table.insert(conn, [msg_table.NewMessage("+420608337726", "a")] * 3)
    stats = msg_table.stats(conn)
    assert (stats.depth, stats.due, stats.deferred, stats.claimed) == (3, 3, 0, 0)
    assert stats.oldest is not None and msg_table.last_accepted(conn) == stats.newest


def test_url_parsing_and_description():
    url = DatabaseUrl.parse("mysql://u%40x:p%3Aw@db.example:3307/smss?unix_socket=/run/m.sock")
    assert (url.user, url.password, url.host, url.port, url.database, url.unix_socket) == (
        "u@x", "p:w", "db.example", 3307, "smss", "/run/m.sock")
    assert "p:w" not in url.describe()
    assert DatabaseUrl.parse("sqlite:///var/lib/smss/smss.db").path == "/var/lib/smss/smss.db"
    for bad in ("postgres://x/y", "mysql://host/", "sqlite://"):
        with pytest.raises(DatabaseError):
            DatabaseUrl.parse(bad)


def test_missing_sqlite_directory_is_a_clear_error(tmp_path):
    with pytest.raises(DatabaseError, match="no directory"):
        connect(f"sqlite://{tmp_path}/absent/smss.db")


def test_unreachable_mysql_is_a_clear_error(tmp_path):
    with pytest.raises(DatabaseError, match="cannot open mysql://"):
        connect(f"mysql://u:p@localhost/x?unix_socket={tmp_path}/none.sock", connect_timeout=2)


def test_tls_verify_refuses_a_server_without_tls(mariadb):
    """tls = verify never falls back to plain text (the private server has no TLS)."""
    url = mariadb.create_database()
    assert connect(url, tls="off").read().query_one("SELECT 1") == (1,)
    with pytest.raises(DatabaseError):
        connect(url, tls="verify", connect_timeout=3)


def test_tls_setting_is_checked():
    from smss.config import ConfigError, parse_text

    with pytest.raises(ConfigError, match="tls"):
        parse_text("[database]\ntls = sometimes\n")
    assert parse_text("[database]\ntls = Verify\n").get("database", "tls") == "verify"


def test_mysql_connection_recovers_after_a_failed_reconnect(tmp_path):
    from support_mariadb import MariaDB

    server = MariaDB(str(tmp_path / "own"))
    server.start()
    try:
        conn = connect(server.create_database("recover"), connect_timeout=2)
        migrations.prepare(conn)
        server.stop()
        for _ in range(2):  # the reconnect fails, and so does the next try
            with pytest.raises(DatabaseError):
                msg_table.stats(conn)
        server.start()
        assert msg_table.stats(conn).depth == 0  # the same Connection works again
        conn.close()
    finally:
        server.cleanup()
