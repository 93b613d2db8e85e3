"""What operators do, at the store level on both databases: a cancel and a
dispatcher's claim racing never both win, retry, delete, the audit trail, roles and
logins, the upgrade of a schema-2 database, the history counts behind the charts
(and that their queries read a covering index over the range only), and a CSV
export of 100,000 rows in bounded memory."""

from __future__ import annotations

import threading
import tracemalloc
from datetime import datetime, timedelta

import pytest

from smss.store import accounts, audit, migrations, paging, received, sent, sessions
from smss.store import queue as msg_table
from smss.store.database import connect, utcnow
from smss.web import charts, export, operations


@pytest.fixture
def conn(database_url):
    connection = connect(database_url)
    migrations.prepare(connection)
    yield connection
    connection.close()


def _queue(conn, count=1, phone="+420608337726"):
    with conn.transaction():
        return msg_table.insert(conn, [msg_table.NewMessage(phone, f"text {n}", 1, "10.0.0.1")
                                       for n in range(count)])


def _audit_rows(conn):
    return [(r["actor"], r["action"], r["target"]) for r in
            reversed(audit.page(conn, limit=1000).rows)]


# -- cancel and the dispatcher's claim


def _race(canceller, dispatcher, message_id):
    """A cancel and a claim started at the same moment; what each got."""
    gate = threading.Barrier(2)
    result = {}

    def cancel():
        gate.wait()
        try:
            operations.cancel(canceller, message_id, "web:alice")
            result["cancel"] = "done"
        except operations.Refused as refusal:
            result["cancel"] = refusal.status

    def claim():
        gate.wait()
        result["claim"] = [m.id for m in msg_table.claim(dispatcher, "host:1", 5)]

    threads = [threading.Thread(target=cancel), threading.Thread(target=claim)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


def test_a_cancel_and_a_claim_never_both_win(database_url):
    setup = connect(database_url)
    migrations.prepare(setup)
    canceller, dispatcher = connect(database_url), connect(database_url)
    outcomes = {"cancelled": 0, "claimed": 0}
    try:
        for _ in range(40):
            [message_id] = _queue(setup)
            result = _race(canceller, dispatcher, message_id)
            row = sent.get(setup, message_id)
            queued = msg_table.get(setup, message_id)
            if result["cancel"] == "done":
                assert result["claim"] == [], result  # the claim did not get it
                assert queued is None and row["status"] == sent.CANCELLED
                outcomes["cancelled"] += 1
            else:
                assert result == {"cancel": 409, "claim": [message_id]}, result
                assert queued["claimed_by"] == "host:1" and row is None
                with dispatcher.transaction():
                    msg_table.delete(dispatcher, message_id)  # as if sent; next round
                outcomes["claimed"] += 1
    finally:
        for connection in (setup, canceller, dispatcher):
            connection.close()
    assert outcomes["cancelled"] + outcomes["claimed"] == 40


def test_what_can_and_cannot_be_cancelled(conn):
    [waiting, taken] = _queue(conn, 2)
    assert [m.id for m in msg_table.claim(conn, "host:1", 1)] == [waiting]
    with pytest.raises(operations.Refused, match="being sent \\(by host:1\\)") as refused:
        operations.cancel(conn, waiting, "web:alice")
    assert refused.value.status == 409
    operations.cancel(conn, taken, "web:alice")
    row = sent.get(conn, taken)
    assert (row["status"], row["error"]) == ("cancelled", "cancelled by web:alice")
    with pytest.raises(operations.Refused, match="not queued any more: it is cancelled"):
        operations.cancel(conn, taken, "web:alice")
    for missing in (424242, 0, -1, 2**64):
        with pytest.raises(operations.Refused) as refused:
            operations.cancel(conn, missing, "web:alice")
        assert refused.value.status == 404
    assert msg_table.claim(conn, "host:2", 10) == []  # a cancelled message is never claimed
    assert _audit_rows(conn) == [("web:alice", "cancel", f"message {taken}")]


def test_retry_queues_a_new_message_naming_the_old_one_once(conn):
    [first, second] = _queue(conn, 2)
    claimed = {m.id: m for m in msg_table.claim(conn, "host:1", 2)}
    with conn.transaction():
        sent.record(conn, claimed[first], sent.FAILED, attempts=5, transport="gsm1",
                    error="+CMS ERROR: 38")
        msg_table.delete(conn, first)
        sent.record(conn, claimed[second], sent.SENT, attempts=1, transport="gsm1")
        msg_table.delete(conn, second)
    new_id = operations.retry(conn, first, "api:nagios")
    again = msg_table.get(conn, new_id)
    assert (again["phone"], again["text"], again["retry_of"]) == ("+420608337726", "text 0",
                                                                  first)
    assert again["client"] == "api:nagios" and again["attempts"] == 0
    assert sent.get(conn, first)["retried_as"] == new_id
    with pytest.raises(operations.Refused, match=f"sent again already, as {new_id}"):
        operations.retry(conn, first, "api:nagios")
    with pytest.raises(operations.Refused, match="was sent: only a failed"):
        operations.retry(conn, second, "api:nagios")
    with pytest.raises(operations.Refused, match="still queued"):
        operations.retry(conn, new_id, "api:nagios")
    # the retry travels on: sent, it names the message it sent again
    [claim] = msg_table.claim(conn, "host:1", 1)
    with conn.transaction():
        sent.record(conn, claim, sent.SENT, attempts=1, transport="gsm1")
        msg_table.delete(conn, claim.id)
    assert sent.get(conn, new_id)["retry_of"] == first
    operations.cancel(conn, _queue(conn)[0], "web:alice")
    assert [action for _, action, _ in _audit_rows(conn)] == ["retry", "cancel"]


def test_delete_received_and_the_audit(conn):
    with conn.transaction():
        ids = [received.insert(conn, received.Incoming("+420777123456", f"in {n}"))
               for n in range(3)]
    assert operations.delete_received(conn, [ids[0], ids[2], 999999], "web:dana") == [
        ids[0], ids[2]]
    assert [r["id"] for r in received.since(conn, 0, 10)] == [ids[1]]
    assert _audit_rows(conn) == [("web:dana", "delete", f"received {ids[0]}"),
                                 ("web:dana", "delete", f"received {ids[2]}")]


# -- users, roles, logins


def test_roles_the_last_admin_and_logins_ending(conn):
    assert accounts.set_user(conn, "root", "h1", accounts.ADMIN, actor="cli:root")
    assert accounts.set_user(conn, "dana", "h2")  # default: operator
    assert [(u.name, u.role) for u in accounts.users(conn)] == [("dana", "operator"),
                                                                 ("root", "admin")]
    with pytest.raises(accounts.LastAdmin):
        accounts.set_role(conn, "root", accounts.VIEWER, keep_an_admin=True)
    with pytest.raises(accounts.LastAdmin):
        accounts.delete_user(conn, "root", keep_an_admin=True)
    assert accounts.set_role(conn, "dana", accounts.ADMIN, keep_an_admin=True, actor="web:root")
    assert accounts.set_role(conn, "root", accounts.VIEWER, keep_an_admin=True)
    assert accounts.role_allows("admin", "operator") and not accounts.role_allows(
        "viewer", "operator")
    sessions.create(conn, "a" * 64, "dana", "127.0.0.1")
    sessions.create(conn, "b" * 64, "dana", "127.0.0.1")
    sessions.create(conn, "c" * 64, "root", "127.0.0.1")
    assert sessions.find(conn, "a" * 64).role == "admin"
    assert sessions.active_by_user(conn, utcnow() - timedelta(hours=1)) == {"dana": 2, "root": 1}
    accounts.update_hash(conn, "dana", "h2", "h2-rehashed")  # a rehash keeps the logins
    assert sessions.find(conn, "a" * 64) is not None
    accounts.set_user(conn, "dana", "h3")  # a new password ends them
    assert sessions.find(conn, "a" * 64) is None and sessions.find(conn, "b" * 64) is None
    assert accounts.get_user(conn, "dana").role == "admin"  # and keeps the role
    accounts.delete_user(conn, "root")
    assert sessions.find(conn, "c" * 64) is None
    sessions.create(conn, "d" * 64, "dana", "127.0.0.1")
    sessions.prune(conn, utcnow() + timedelta(seconds=1))
    assert sessions.find(conn, "d" * 64) is None
    assert accounts.add_token(conn, "grafana", "e" * 64, accounts.VIEWER, actor="web:dana")
    assert accounts.find_token(conn, "e" * 64).role == "viewer"
    assert [a for _, a, _ in _audit_rows(conn)] == ["user add", "user role", "token add"]


def _schema_two(conn):
    """A database as smss with schema 2 left it: a user and a token."""
    for migration in migrations.available(conn.dialect)[:2]:
        with conn.transaction():
            for statement in migration.statements():
                conn.execute(statement).close()
    with conn.transaction():
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL PRIMARY KEY,"
                     " name VARCHAR(128) NOT NULL, applied_at VARCHAR(32) NOT NULL)").close()
        for version in (1, 2):
            conn.execute("INSERT INTO schema_version VALUES (?, ?, ?)",
                         (version, f"{version:04d}", "x")).close()
        conn.execute("INSERT INTO web_user (name, password_hash, created_at, updated_at)"
                     " VALUES (?, ?, ?, ?)", ("alice", "h", utcnow(), utcnow())).close()
        conn.execute("INSERT INTO api_token (name, token_hash, created_at) VALUES (?, ?, ?)",
                     ("nagios", "f" * 64, utcnow())).close()


def test_an_upgrade_makes_the_users_admins_and_keeps_the_tokens_sending(database_url):
    conn = connect(database_url)
    try:
        _schema_two(conn)
        with pytest.raises(migrations.SchemaError, match="run `smss migrate`"):
            migrations.prepare(conn)
        migrations.migrate(conn)
        migrations.check(conn)
        assert accounts.get_user(conn, "alice").role == "admin"
        assert accounts.find_token(conn, "f" * 64).role == "operator"
    finally:
        conn.close()


# -- the history behind the charts

BASE = datetime(2025, 3, 30, 0, 0, 0)  # the night Europe/Prague went to summer time
STATUSES = [sent.SENT, sent.SENT, sent.FAILED, sent.EXPIRED, sent.CANCELLED]
DELIVERIES = [None, sent.PENDING, sent.DELIVERED, sent.UNDELIVERED]


def _seed(conn, n, span, start=BASE):
    """n rows in sms and rcv spread over ``span`` before ``start`` plus 2 days."""
    step = span / n
    sms_rows, rcv_rows = [], []
    for i in range(1, n + 1):
        at = start + step * i
        transport = ("gsm1", "gsm2")[i % 2] if i % 7 else ""
        status = STATUSES[i % 5]
        sms_rows.append((i, "+420608337726", "t", status, at, 1, "", at, 1, transport,
                         DELIVERIES[i % 4] if status == sent.SENT else None))
        rcv_rows.append((i, "+420777123456", "r", at, 1, ("gsm1", "gsm2")[i % 3 == 0]))
    with conn.transaction():
        conn.executemany(
            "INSERT INTO sms (id, phone, text, status, sent_at, parts, client, created_at,"
            " attempts, transport, delivery) VALUES (?,?,?,?,?,?,?,?,?,?,?)", sms_rows)
        conn.executemany("INSERT INTO rcv (id, phone, text, received_at, parts, transport)"
                         " VALUES (?,?,?,?,?,?)", rcv_rows)
    return sms_rows, rcv_rows


def _expected(sms_rows, rcv_rows, buckets, transport=None):
    """Count the rows by hand into {bucket: {series: n}} (``buckets(at)`` names the
    bucket of a time, None outside the chart)."""
    counts = {}
    for row in sms_rows:
        _, _, _, status, at, *_, where, delivery = row
        key = buckets(at)
        if key is None or (transport and where != transport):
            continue
        bucket = counts.setdefault(key, {})
        if status == sent.SENT:
            bucket["sent"] = bucket.get("sent", 0) + 1
        if status in (sent.FAILED, sent.EXPIRED):
            bucket["failed"] = bucket.get("failed", 0) + 1
        if delivery == sent.DELIVERED:
            bucket["delivered"] = bucket.get("delivered", 0) + 1
    for _, _, _, at, _, where in rcv_rows:
        key = buckets(at)
        if key is None or (transport and where != transport):
            continue
        bucket = counts.setdefault(key, {})
        bucket["received"] = bucket.get("received", 0) + 1
    return counts


def _charted(chart):
    found = {}
    for index, key in enumerate(chart.keys):
        values = {name: chart.series[name][index] for name, _ in charts.SERIES
                  if chart.series[name][index]}
        if values:
            found[key] = values
    return found


@pytest.mark.parametrize("transport", [None, "gsm2"])
def test_the_chart_counts_are_the_rows_counted_by_hand(conn, transport):
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Europe/Prague")
    now = BASE + timedelta(days=31, hours=5, minutes=17)
    sms_rows, rcv_rows = _seed(conn, 3000, timedelta(days=32))
    history = charts.load(conn, now, zone, transport)
    hour_start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)

    def hour_of(at):
        if not hour_start <= at < now:
            return None
        return f"{at:%Y-%m-%dT%H}Z"

    first_day = (now + timedelta(hours=2)).date() - timedelta(days=29)  # CEST = UTC+2

    def day_of(at):
        local = at.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone)
        if local.date() < first_day or at >= now:
            return None
        return local.date().isoformat()

    assert _charted(history.hourly) == _expected(sms_rows, rcv_rows, hour_of, transport)
    assert _charted(history.daily) == _expected(sms_rows, rcv_rows, day_of, transport)
    assert len(history.hourly.keys) == 24 and len(history.daily.keys) == 30
    assert history.daily.keys[0] == first_day.isoformat()


# -- a million rows: the chart queries read the covering index over their range

STEPS_PER_ROW = 40  # reading one index entry and counting it in its group: about 27


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """100,000 rows over 100 days (1,000 a day): a chart's 30 days are 30% of them."""
    path = tmp_path_factory.mktemp("big") / "smss.db"
    connection = connect(f"sqlite://{path}")
    migrations.prepare(connection)
    _seed(connection, 100_000, timedelta(days=100), BASE - timedelta(days=70))
    yield connection
    connection.close()


def _steps(conn, work, *args):
    """SQLite virtual-machine steps (to the thousand) that ``work(conn, *args)`` costs."""
    count = [0]

    def step():
        count[0] += 1
        return 0

    conn._raw.set_progress_handler(step, 1000)
    try:
        work(conn, *args)
    finally:
        conn._raw.set_progress_handler(None, 1000)
    return count[0] * 1000


def test_the_chart_queries_read_a_covering_index_over_their_range(big):
    now = BASE + timedelta(days=30)
    for module, index in ((sent, "sms_chart"), (received, "rcv_chart")):
        statements = []
        original = big.query

        def query(sql, params=(), statements=statements, original=original):
            statements.append((sql, list(params)))
            return original(sql, params)

        big.query = query
        try:
            module.hourly(big, now - timedelta(days=1))
        finally:
            del big.query
        [(sql, params)] = statements
        plan = " | ".join(row[3] for row in big.query("EXPLAIN QUERY PLAN " + sql, params))
        assert f"USING COVERING INDEX {index}" in plan, plan
        # The cost follows the rows in the range (1,000 a day), not the table's size.
        day = _steps(big, module.hourly, now - timedelta(days=1), now)
        month = _steps(big, module.hourly, now - timedelta(days=30), now)
        everything = _steps(big, module.hourly, BASE - timedelta(days=400))
        assert day < STEPS_PER_ROW * 1_000, day
        assert month < STEPS_PER_ROW * 30_000, month
        assert day * 10 < month < everything / 2, (day, month, everything)


@pytest.mark.mariadb
def test_mariadb_reads_the_chart_queries_from_the_covering_index(mariadb):
    conn = connect(mariadb.create_database())
    try:
        migrations.prepare(conn)
        _seed(conn, 20_000, timedelta(days=100), BASE - timedelta(days=70))
        conn.execute("ANALYZE TABLE sms, rcv").close()
        for module, index in ((sent, "sms_chart"), (received, "rcv_chart")):
            calls = []
            original = conn.query

            def query(sql, params=(), calls=calls, original=original):
                calls.append((sql, list(params)))
                return original(sql, params)

            conn.query = query
            try:
                module.hourly(conn, BASE)  # 30 of 100 days
            finally:
                del conn.query
            [(sql, params)] = calls
            [row] = conn.query("EXPLAIN " + sql, params)
            access, key, rows, extra = row[3], row[5], int(row[8]), str(row[9] or "")
            assert key == index and access == "range", row
            assert "Using index" in extra, row  # covering: no table row is read
            assert rows < 20_000 * 0.6, row  # the range, not the table
    finally:
        conn.close()


def _export_peak(conn, filters):
    """(bytes written, lines, peak bytes allocated while writing them)."""
    from zoneinfo import ZoneInfo

    rows = sent.every(conn, filters, chunk=export.CHUNK)
    pieces = export.csv_lines(rows, export.SENT_COLUMNS, ZoneInfo("Europe/Prague"))
    header = next(pieces)
    assert header.decode("utf-8-sig").startswith("id,sent_at,phone,text,status")
    tracemalloc.start()
    try:
        total = lines = 0
        for piece in pieces:
            total += len(piece)
            lines += piece.count(b"\r\n")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return total, lines, peak


def test_a_csv_of_100k_rows_streams_in_bounded_memory(big):
    start = BASE - timedelta(days=70)
    small = _export_peak(big, paging.Filters(until=start + timedelta(days=10)))
    whole = _export_peak(big, paging.Filters())
    assert small[1] == 9_999 and whole[1] == 100_000  # rows at start + i * 0.001 day
    # Memory holds one chunk of rows (about 2 MB), whether 10,000 or 100,000 go out.
    assert whole[2] < small[2] * 1.5, (small, whole)
    assert whole[2] < whole[0] / 4, whole


def test_csv_cells_a_spreadsheet_would_run_are_defused():
    from datetime import timezone

    rows = iter([{"id": 1, "received_at": datetime(2025, 3, 1, 8, 0, 7), "phone": "+420777",
                  "text": "=HYPERLINK(\"http://evil.example\")", "parts": 1, "sent_at": None,
                  "smsc": "", "transport": "gsm1", "error": "-1"}])
    body = b"".join(export.csv_lines(rows, export.RECEIVED_COLUMNS, timezone.utc))
    line = body.decode("utf-8-sig").splitlines()[1]
    assert line == ('1,2025-03-01T08:00:07+00:00,+420777,"\'=HYPERLINK(""http://evil.example"")"'
                    ",1,,,gsm1,'-1")


def test_the_hour_cache_reads_the_last_hours_again_and_the_rest_every_ttl(conn):
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Europe/Prague")
    now = BASE + timedelta(days=31, hours=5, minutes=17)
    _seed(conn, 2000, timedelta(days=32))
    cache = charts.HourCache(ttl=3600)
    assert charts.load(conn, now, zone, cache=cache) == charts.load(conn, now, zone)

    def received_at(at):
        with conn.transaction():
            received.insert(conn, received.Incoming("+420777123456", "late"))
            conn.execute("UPDATE rcv SET received_at = ? WHERE text = 'late' AND"
                         " received_at > ?", (at, now)).close()

    before = charts.load(conn, now, zone).hourly.total("received")
    received_at(now - timedelta(minutes=10))  # the current hour: read on every page
    received_at(now - timedelta(hours=5))  # an older hour: from the cache until it expires
    assert charts.load(conn, now, zone, cache=cache).hourly.total("received") == before + 1
    assert charts.load(conn, now, zone).hourly.total("received") == before + 2
    assert charts.load(conn, now, zone, cache=charts.HourCache(ttl=0)).hourly.total(
        "received") == before + 2


def test_a_cancel_is_told_like_a_message_given_up(conn):
    import json

    from smss.events.record import Events
    from smss.store import outbox, tallies

    [message_id] = _queue(conn)
    events = Events(webhooks=(("ops", frozenset({"failed"})), ("inbox", frozenset({"received"}))))
    operations.cancel(conn, message_id, "api:nagios", events)
    counted = {(t.name, t.detail): t.value for t in tallies.all_tallies(conn)}
    assert counted[("messages", "cancelled")] == 1
    [told] = outbox.claim(conn, "webhook:ops", "test", 10)
    body = json.loads(told.payload)
    assert body["type"] == "failed"
    assert (body["data"]["id"], body["data"]["status"], body["data"]["error"]) == (
        message_id, "cancelled", "cancelled by api:nagios")
    assert outbox.claim(conn, "webhook:inbox", "test", 10) == []
