"""The listings behind the web pages: keyset paging on both databases, and that a
page stays cheap in a table of 100,000 rows (query plans and rows touched)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from smss.store import accounts, migrations, paging, received, sent
from smss.store import queue as msg_table
from smss.store.database import connect

BASE = datetime(2025, 3, 1, 8, 0, 0)
PHONES = ["+420608337726", "+420777123456", "+447911123456"]
WORDS = ["backup", "disk 100%", "under_score", "Záloha", "ping"]
STATUSES = ["sent", "sent", "failed", "expired"]
DELIVERIES = [None, "pending", "delivered", "failed"]


def _time(i: int, n: int) -> datetime:
    """Row i of n: three rows share each time (ties), n rows span about three days."""
    step = max(1, int(3 * 86400 / (n / 3)))
    return BASE + timedelta(seconds=(i // 3) * step)


def seed(conn, n: int) -> None:
    """n rows in each of msg, sms and rcv with spread numbers, states and times."""
    msg_rows, sms_rows, rcv_rows = [], [], []
    for i in range(1, n + 1):
        at = _time(i, n)
        phone = PHONES[i % len(PHONES)]
        text = f"message {i} {WORDS[i % len(WORDS)]}"
        claimed = "host:1" if i % 5 == 0 else None
        error = "CMS 38" if i % 4 == 0 else None
        msg_rows.append((i, phone, text, 1, "", at, i % 3, at + timedelta(minutes=i % 2),
                         error, claimed))
        sms_rows.append((i, phone, text, STATUSES[i % 4], at, 1, "", at, 1, "modem",
                         DELIVERIES[i % 4]))
        rcv_rows.append((i, phone, text, at, 1, "err" if i % 6 == 0 else None))
    with conn.transaction():
        conn.executemany(
            "INSERT INTO msg (id, phone, text, parts, client, created_at, attempts,"
            " next_attempt_at, last_error, claimed_by) VALUES (?,?,?,?,?,?,?,?,?,?)", msg_rows)
        conn.executemany(
            "INSERT INTO sms (id, phone, text, status, sent_at, parts, client, created_at,"
            " attempts, transport, delivery) VALUES (?,?,?,?,?,?,?,?,?,?,?)", sms_rows)
        conn.executemany(
            "INSERT INTO rcv (id, phone, text, received_at, parts, error)"
            " VALUES (?,?,?,?,?,?)", rcv_rows)


@pytest.fixture
def conn(database_url):
    connection = connect(database_url)
    migrations.prepare(connection)
    yield connection
    connection.close()


def _walk_older(fetch, limit):
    pages = [fetch(before=None, after=None, limit=limit)]
    while pages[-1].older is not None:
        assert len(pages) < 500
        pages.append(fetch(before=pages[-1].older, after=None, limit=limit))
    return pages


def _walk_newer(fetch, last, limit):
    pages = [last]
    while pages[-1].newer is not None:
        assert len(pages) < 500
        pages.append(fetch(before=None, after=pages[-1].newer, limit=limit))
    return pages


CASES = [
    ("msg", paging.Filters(), {}),
    ("msg", paging.Filters(phone="+420777123456"), {}),
    ("msg", paging.Filters(status="sending"), {}),
    ("msg", paging.Filters(status="error", digits="7911"), {}),
    ("sms", paging.Filters(), {}),
    ("sms", paging.Filters(status="failed"), {}),
    ("sms", paging.Filters(text="100%"), {}),  # LIKE wildcards are literal
    ("sms", paging.Filters(text="under_"), {}),
    ("sms", paging.Filters(phone="+420608337726", since=BASE + timedelta(hours=10),
                           until=BASE + timedelta(hours=50)), {"delivery": "delivered"}),
    ("rcv", paging.Filters(), {}),
    ("rcv", paging.Filters(status="error", text="záloha"), {}),
    ("rcv", paging.Filters(digits="608", since=BASE + timedelta(hours=20)), {}),
]


def _expected(table, filters, extra, n):
    rows = []
    for i in range(1, n + 1):
        at, phone = _time(i, n), PHONES[i % len(PHONES)]
        text = f"message {i} {WORDS[i % len(WORDS)]}"
        if filters.phone and phone != filters.phone:
            continue
        if filters.digits and filters.digits not in phone:
            continue
        if filters.text and filters.text.lower() not in text.lower():
            continue
        if filters.since and at < filters.since or filters.until and at >= filters.until:
            continue
        if table == "msg":
            keep = {None: True, "sending": i % 5 == 0, "error": i % 4 == 0}[filters.status]
        elif table == "sms":
            keep = filters.status in (None, STATUSES[i % 4])
            keep = keep and extra.get("delivery") in (None, DELIVERIES[i % 4])
        else:
            keep = filters.status is None or i % 6 == 0
        if keep:
            rows.append((at, i))
    return [i for _, i in sorted(rows, reverse=True)]


@pytest.mark.parametrize("table,filters,extra", CASES)
def test_paging_walks_every_row_once_in_both_directions(conn, table, filters, extra):
    n = 120
    seed(conn, n)
    if table == "rcv" and filters.text == "záloha" and conn.dialect == "sqlite":
        filters = paging.Filters(status="error", text="Záloha")  # SQLite folds ASCII only
    module = {"msg": msg_table, "sms": sent, "rcv": received}[table]

    def fetch(**kwargs):
        return module.page(conn, filters, **extra, **kwargs)

    expected = _expected(table, filters, extra, n)
    assert expected, "the case selects nothing: it would test nothing"
    pages = _walk_older(fetch, 7)
    assert [row["id"] for page in pages for row in page.rows] == expected
    assert all(len(page.rows) == 7 for page in pages[:-1])
    assert pages[0].newer is None and pages[-1].older is None
    back = _walk_newer(fetch, pages[-1], 7)
    seen = []
    for page in reversed(back):
        seen.extend(row["id"] for row in page.rows if row["id"] not in seen)
    assert seen == expected
    assert [row["id"] for row in back[-1].rows] == expected[:7]  # the newest end, full


def test_a_page_after_deleted_rows_and_a_cursor_past_the_end(conn):
    seed(conn, 30)
    first = msg_table.page(conn, paging.Filters(), limit=10)
    with conn.transaction():
        for row in first.rows:
            msg_table.delete(conn, row["id"])
    second = msg_table.page(conn, paging.Filters(), before=first.older, limit=10)
    assert second.newer is None  # nothing newer is left
    assert [r["id"] for r in second.rows] == _expected("msg", paging.Filters(), {}, 30)[10:20]
    past = paging.Cursor(BASE - timedelta(days=1), 1)
    empty = sent.page(conn, paging.Filters(), before=past, limit=10)
    assert empty.rows == [] and empty.newer == past and empty.older is None


def test_cursor_round_trip_and_garbage():
    cursor = paging.Cursor(datetime(2025, 3, 1, 8, 0, 7, 123456), 42)
    assert paging.Cursor.decode(cursor.encode()) == cursor
    for bad in ("", "x", "2025-42", "20250301080007123456-", "1-1", "20250301080007123456-1;"):
        with pytest.raises(ValueError):
            paging.Cursor.decode(bad)


def test_received_since_and_sent_parts(conn):
    seed(conn, 12)
    assert [r["id"] for r in received.since(conn, 0, 5)] == [1, 2, 3, 4, 5]
    assert [r["id"] for r in received.since(conn, 10, 5)] == [11, 12]
    assert received.since(conn, 12, 5) == []
    claimed = msg_table.Claimed(500, "+420608337726", "x" * 200, 2, "", None, BASE, 0, None)
    with conn.transaction():
        sent.record(conn, claimed, sent.SENT, attempts=1, transport="modem:sim",
                    references=["7", "8"], track_delivery=True)
    with conn.transaction():
        sent.report(conn, "modem:sim", "8", True, 0)
    parts = sent.parts(conn, 500)
    assert [(p["part"], p["reference"], p["delivery"]) for p in parts] == [
        (1, "7", "pending"), (2, "8", "delivered")]


def test_accounts(conn):
    assert accounts.set_user(conn, "alice", "h1") is True
    assert accounts.set_user(conn, "alice", "h2") is False
    assert accounts.get_user(conn, "alice").password_hash == "h2"
    accounts.update_hash(conn, "alice", "stale", "h3")  # the password changed meanwhile
    assert accounts.get_user(conn, "alice").password_hash == "h2"
    assert [u.name for u in accounts.users(conn)] == ["alice"]
    token_id = accounts.add_token(conn, "app", "a" * 64)
    assert accounts.find_token(conn, "a" * 64).id == token_id
    assert accounts.find_token(conn, "b" * 64) is None
    accounts.touch_token(conn, token_id, BASE)
    assert accounts.tokens(conn)[0].last_used_at == BASE
    assert accounts.delete_token(conn, "app") and not accounts.delete_token(conn, "app")
    assert accounts.delete_user(conn, "alice") and accounts.get_user(conn, "alice") is None


# -- 100,000 rows


# A page of 50 rows costs 1,000-3,000 SQLite VM steps here, whatever the cursor;
# reading past 90,000 index entries (OFFSET paging) costs about 180,000.
STEP_BUDGET = 10_000


class Recorder:
    """Counts SQLite virtual-machine steps and keeps the statements a page ran."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.steps = 0
        self.statements = []
        self._query = conn.query

    def __enter__(self):
        def query(sql, params=()):
            self.statements.append((sql, list(params)))
            return self._query(sql, params)

        def step():
            self.steps += 1
            return 0

        self.conn.query = query
        self.conn._raw.set_progress_handler(step, 1)
        return self

    def __exit__(self, *exc):
        self.conn._raw.set_progress_handler(None, 1)
        del self.conn.query


BIG_CASES = [
    (msg_table, paging.Filters(), {}),
    (msg_table, paging.Filters(phone="+420777123456"), {}),
    (msg_table, paging.Filters(since=BASE + timedelta(days=1), until=BASE + timedelta(days=2)),
     {}),
    (sent, paging.Filters(), {}),
    (sent, paging.Filters(status="failed"), {}),
    (sent, paging.Filters(status="expired", since=BASE, until=BASE + timedelta(days=300)), {}),
    (sent, paging.Filters(), {"delivery": "delivered"}),
    (sent, paging.Filters(phone="+447911123456", since=BASE + timedelta(days=2)), {}),
    (sent, paging.Filters(text="backup"), {}),  # a common word: found within a few rows
    (received, paging.Filters(), {}),
    (received, paging.Filters(phone="+420608337726", until=BASE + timedelta(days=3)), {}),
]


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "smss.db"
    connection = connect(f"sqlite://{path}")
    migrations.prepare(connection)
    seed(connection, 100_000)
    yield connection
    connection.close()


@pytest.mark.parametrize("module,filters,extra", BIG_CASES)
def test_a_page_of_100k_rows_walks_an_index_and_touches_few_rows(big, module, filters, extra):
    first = module.page(big, filters, limit=50, **extra)
    deep = first
    for _ in range(3):  # a cursor far from the newest end
        deep = module.page(big, filters, before=deep.older, limit=50, **extra)
    cursors = [None, deep.older]
    middle = paging.Cursor(_time(50_000, 100_000), 50_000)  # one no page handed out
    if filters.since is None or filters.since < middle.at:
        cursors.append(middle)
    for cursor in cursors:
        with Recorder(big) as seen:
            page = module.page(big, filters, before=cursor, limit=50, **extra)
        assert len(page.rows) == 50
        assert seen.steps < STEP_BUDGET, f"{seen.steps} VM steps for one page"
        for sql, params in seen.statements:
            plan = " | ".join(row[3] for row in big.query("EXPLAIN QUERY PLAN " + sql, params))
            assert "TEMP B-TREE" not in plan, plan  # no sort of the matching rows
            assert "USING" in plan, plan  # an index or the primary key, never a bare scan


def test_the_step_count_would_catch_an_offset_page(big):
    """The measure above can fail: OFFSET paging of the same table costs far more."""
    with Recorder(big) as seen:
        big.query("SELECT id FROM sms ORDER BY sent_at DESC, id DESC LIMIT 50 OFFSET 90000")
    assert seen.steps > STEP_BUDGET * 10


@pytest.mark.mariadb
def test_mariadb_plans_use_the_indexes_without_filesort(mariadb):
    conn = connect(mariadb.create_database())
    try:
        migrations.prepare(conn)
        seed(conn, 20_000)
        conn.execute("ANALYZE TABLE msg, sms, rcv").close()
        for module, filters, extra in BIG_CASES:
            calls = []
            original = conn.query

            def query(sql, params=(), calls=calls, original=original):
                calls.append((sql, list(params)))
                return original(sql, params)

            middle = paging.Cursor(_time(10_000, 20_000), 10_000)
            if filters.since is not None and filters.since >= middle.at:
                middle = None
            conn.query = query
            try:
                page = module.page(conn, filters, before=middle, limit=50, **extra)
            finally:
                del conn.query
            assert len(page.rows) == 50
            for sql, params in calls:
                for row in conn.query("EXPLAIN " + sql, params):
                    key, extra_info = row[5], str(row[9] or "")
                    assert key, f"no index: {sql} {row}"
                    assert "filesort" not in extra_info, f"{sql}: {row}"
    finally:
        conn.close()


def test_random_cursor_pages_match_a_full_sort(conn):
    """Any cursor (not only those the pages handed out) gives the next rows in order."""
    seed(conn, 60)
    everything = _expected("sms", paging.Filters(), {}, 60)
    times = {i: _time(i, 60) for i in range(1, 61)}
    rng = random.Random(7)
    for _ in range(20):
        anchor = rng.randint(1, 60)
        cursor = paging.Cursor(times[anchor], anchor)
        page = sent.page(conn, paging.Filters(), before=cursor, limit=5)
        position = everything.index(anchor)
        assert [r["id"] for r in page.rows] == everything[position + 1:position + 6]
