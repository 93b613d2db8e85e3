"""The operator's day in headless Chromium, against `smss run` and real dispatcher
passes through the modem simulator: cancel, retry, reply, delete after
confirmation, pause and resume the modem; what a viewer and an admin see and do
(users, tokens, the audit trail); and the charts, whose every number is checked
against the table rows of the Sent and Received pages that made it."""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import httpx
import pytest
from conftest import ServerProcess
from support_dispatch import site
from support_web import PASSWORD, add_user, api, base_url, chromium, smss, web_settings
from test_web_browser import DESKTOP, PHONE

from smss.store.database import connect, utcnow

ZONE = "Europe/Prague"


@pytest.fixture
def gateway(tmp_path):
    """A database, the modem simulator, `smss run` with the web interface, three users."""
    with site(tmp_path, status_report_delay=0.05) as s:
        folder = tmp_path / "server"
        folder.mkdir()
        server = ServerProcess(folder, s.db_url, {"web": web_settings(folder, timezone=ZONE)})
        server.start()
        try:
            add_user(server.config_path, "root")  # the first: admin
            add_user(server.config_path, "dana")  # operator
            add_user(server.config_path, "noc", role="viewer")
            yield s, server, base_url(server)
        finally:
            server.stop()


def log_in(browser, url, name, viewport=DESKTOP):
    page = browser.new_context(viewport=viewport).new_page()
    page.goto(url + "/login")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/")
    return page


def sent_texts(s):
    return sorted(part["text"] for part in s.sim.control.sent())


def test_an_operator_cancels_retries_replies_and_deletes(gateway):
    s, server, url = gateway
    with chromium() as browser:
        page = log_in(browser, url, "dana")
        # cancel: send two, cancel one before the dispatcher runs
        page.goto(url + "/send")
        page.fill("#numbers", "608337726\n777123456")
        page.fill("#text", "Záloha selhala")
        page.click("#send-form button[type=submit]")
        page.wait_for_url(url + "/queue")
        page.click("tbody tr >> nth=0 >> a")
        cancelled_id = int(page.url.rsplit("/", 1)[1])
        page.click("text=Cancel this message")
        page.wait_for_url(f"{url}/message/{cancelled_id}")
        assert "it will not be sent" in page.text_content(".flash.ok")
        assert page.text_content("h1 .badge") == "cancelled"
        assert page.locator("text=Cancel this message").count() == 0
        assert s.run().returncode == 0, s.log()
        assert sent_texts(s) == ["Záloha selhala"]  # only the other one
        assert [row[0] for row in s.rows("sms", "status", f"WHERE id = {cancelled_id}")] == [
            "cancelled"]

        # retry: a message the network refuses for good, then sent again
        s.sim.control.set_fault("cms_error", code=8, count=1)  # operator barring: permanent
        page.goto(url + "/send")
        page.fill("#numbers", "+420731000111")
        page.fill("#text", "Druhý pokus")
        page.click("#send-form button[type=submit]")
        page.wait_for_url(url + "/queue")
        assert s.run().returncode == 0, s.log()
        page.goto(url + "/sent?status=failed")
        page.click("tbody tr >> nth=0 >> a")
        failed_id = int(page.url.rsplit("/", 1)[1])
        page.click("text=Send again")
        page.wait_for_url(re.compile(r".*/message/\d+$"))
        retry_id = int(page.url.rsplit("/", 1)[1])
        assert retry_id != failed_id
        assert f"queued again as {retry_id}" in page.text_content(".flash.ok")
        assert page.locator(f"dl a[href='/message/{failed_id}']").count() == 1  # names the old
        assert s.run().returncode == 0, s.log()
        page.reload()
        assert page.text_content("h1 .badge") == "sent"
        assert sent_texts(s).count("Druhý pokus") == 1
        page.goto(f"{url}/message/{failed_id}")
        assert "Sent again as" in page.text_content("dl")
        assert page.locator("text=Send again").count() == 0  # once

        # reply to a received message, with the part counter
        s.sim.control.inject("+420777123456", "Kdy to bude hotové?")
        assert s.run().returncode == 0, s.log()
        page.goto(url + "/received")
        page.click("tbody tr >> nth=0 >> td >> nth=1 >> a")
        page.fill("#text", "Do hodiny. Dana")
        assert page.get_attribute("#counter", "data-parts") == "1"
        page.click("#send-form button[type=submit]")
        page.wait_for_url(re.compile(r".*/message/\d+$"))
        assert "Reply to +420777123456 queued" in page.text_content(".flash.ok")
        assert s.run().returncode == 0, s.log()
        assert "Do hodiny. Dana" in sent_texts(s)

        # delete received messages, after the confirmation page
        s.sim.control.inject("+420608337726", "Spam spam spam")
        assert s.run().returncode == 0, s.log()
        page.goto(url + "/received")
        assert page.locator("tbody tr").count() == 2
        page.check("tbody tr >> nth=0 >> input[type=checkbox]")
        page.check("tbody tr >> nth=1 >> input[type=checkbox]")
        page.click("text=Delete selected…")
        page.wait_for_url(url + "/received/delete")
        assert page.text_content("h1") == "Delete 2 received messages?"
        assert "Spam spam spam" in page.text_content("table")
        assert len(s.rows("rcv")) == 2  # nothing deleted before the answer
        page.click("button.danger")
        page.wait_for_url(url + "/received")
        assert "Deleted 2 received messages." in page.text_content(".flash.ok")
        assert s.rows("rcv") == []

    trail = s.rows("audit", "actor, action", "WHERE actor LIKE 'web:%'")
    assert trail == [("web:dana", "cancel"), ("web:dana", "retry"), ("web:dana", "reply"),
                     ("web:dana", "delete"), ("web:dana", "delete")]


def test_an_admin_pauses_and_resumes_the_modem(gateway):
    s, server, url = gateway
    s.enqueue("+420608337726", "first")
    assert s.run().returncode == 0, s.log()  # the modem reports its state
    with chromium() as browser:
        page = log_in(browser, url, "root")
        page.click("table.transports >> text=Pause")
        page.wait_for_url(re.compile(r".*/transports/modem.*"))
        assert "paused: the dispatcher sends nothing" in page.text_content(".flash.ok")
        assert "paused" in page.text_content("h1")
        s.enqueue("+420608337726", "while paused")
        s.sim.control.inject("+420777123456", "Příjem běží dál")
        assert s.run().returncode == 0, s.log()
        assert sent_texts(s) == ["first"]
        assert [row[0] for row in s.rows("rcv", "text")] == ["Příjem běží dál"]
        status = smss(server.config_path, "status")
        assert "paused by web:root since" in status.stdout
        page.goto(url + "/")
        assert page.locator("table.transports .badge.warn", has_text="paused").count() == 1
        operator = log_in(browser, url, "dana")
        assert operator.locator("table.transports >> text=Resume").count() == 0  # admins only
        page.click("table.transports >> text=Resume")
        page.wait_for_url(re.compile(r".*/transports/modem.*"))
        assert s.run().returncode == 0, s.log()
        assert sent_texts(s) == ["first", "while paused"]
        page.goto(url + "/audit")
        rows = [(r["Who"], r["Action"]) for r in _cells(page) if r["Who"].startswith("web:")]
        assert rows == [("web:root", "resume"), ("web:root", "pause")]


def test_a_viewer_reads_and_an_admin_manages_users_and_tokens(gateway):
    s, server, url = gateway
    message = s.enqueue("+420608337726", "queued")
    with chromium() as browser:
        viewer = log_in(browser, url, "noc")
        nav = viewer.text_content("nav.nav")
        assert "Queue" in nav and "Send" not in nav and "Users" not in nav
        assert "viewer" in viewer.text_content(".who")
        viewer.goto(f"{url}/message/{message}")
        assert viewer.locator("form.inline button").count() == 0  # no action offered
        viewer.goto(url + "/send")
        assert viewer.text_content("h1") == "Not allowed"
        assert "noc (viewer)" in viewer.text_content(".panel")
        viewer.goto(url + "/users")
        assert viewer.text_content("h1") == "Not allowed"

        admin = log_in(browser, url, "root")
        admin.click("nav.nav >> text=Users")
        admin.fill("#u-name", "eve")
        admin.select_option("#u-role", "viewer")
        admin.fill("#u-password", PASSWORD)
        admin.fill("#u-again", PASSWORD)
        admin.click("#add-user button[type=submit]")
        assert "User eve (viewer) created." in admin.text_content(".flash.ok")
        row = admin.locator("tr[data-user=eve]")
        assert row.locator(".badge").text_content() == "viewer"
        row.locator("select[name=role]").select_option("operator")
        row.locator("text=Set role").click()
        assert "eve is now operator." in admin.text_content(".flash.ok")
        eve = log_in(browser, url, "eve")
        assert "Send" in eve.text_content("nav.nav")
        admin.locator("tr[data-user=eve] >> text=Delete…").click()
        assert admin.text_content("h1") == "Delete user eve?"
        admin.click("button.danger")
        assert "User eve deleted." in admin.text_content(".flash.ok")
        eve.reload()
        assert "/login" in eve.url  # the deleted user's login ended

        admin.click("nav.nav >> text=Tokens")
        admin.fill("#t-name", "nagios")
        admin.click("#add-token button[type=submit]")
        token = admin.text_content("#new-token")
        assert token.startswith("smss_")
        with api(url, token) as client:
            answer = client.post("/api/v1/messages", json={"messages": [
                {"phone": "608337726", "text": "from nagios"}]})
            assert answer.status_code == 200, answer.text
        admin.goto(url + "/tokens")
        assert admin.locator("#new-token").count() == 0  # shown once
        assert token not in admin.content()
        assert admin.locator("tr[data-token=nagios] .badge").text_content() == "operator"
        admin.goto(url + "/audit")
        trail = admin.text_content("tbody")
        for expected in ("user add", "user role", "user delete", "token add"):
            assert expected in trail
        assert "web:root" in trail
        admin.set_viewport_size(PHONE)
        for path in ("/users", "/tokens", "/audit", "/transports/x", "/"):
            admin.goto(url + path)
            overflow = admin.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{path} is {overflow} px wider than the phone"


# -- the charts against the rows


def _seed_history(db_url, now, count=400):
    """Sent and received rows at random times of the last 31 days, two transports."""
    rng = random.Random(7)
    sms_rows, rcv_rows = [], []
    for number in range(count):
        at = now - timedelta(minutes=rng.randint(1, 31 * 24 * 60))
        status = rng.choice(["sent", "sent", "sent", "failed", "expired", "cancelled"])
        delivery = rng.choice([None, "pending", "delivered", "delivered"]) \
            if status == "sent" else None
        via = rng.choice(["gsm1", "gsm2"]) if status in ("sent", "failed") else ""
        sms_rows.append((10_000 + number, "+420608337726", f"m{number}", status, at, 1, "", at,
                         1, via, delivery))
        if rng.random() < 0.6:
            rcv_rows.append(("+420777123456", f"r{number}", now - timedelta(
                minutes=rng.randint(1, 31 * 24 * 60)), 1, rng.choice(["gsm1", "gsm2"])))
    conn = connect(db_url)
    try:
        with conn.transaction():
            conn.executemany(
                "INSERT INTO sms (id, phone, text, status, sent_at, parts, client, created_at,"
                " attempts, transport, delivery) VALUES (?,?,?,?,?,?,?,?,?,?,?)", sms_rows)
            conn.executemany("INSERT INTO rcv (phone, text, received_at, parts, transport)"
                             " VALUES (?,?,?,?,?)", rcv_rows)
    finally:
        conn.close()
    from smss.store import transports

    conn = connect(db_url)
    try:
        for name in ("gsm1", "gsm2"):
            transports.save(conn, name, "ok", signal_dbm=-70)
    finally:
        conn.close()


def _cells(page):
    return page.eval_on_selector_all(
        "tbody tr", "rows => rows.map(r => Object.fromEntries(Array.from(r.cells).map("
                    "c => [c.dataset.label, c.textContent.trim()])))")


def _bars(page, chart_id):
    found = {}
    for bucket, series, value in page.eval_on_selector_all(
            f"#{chart_id} rect.bar",
            "els => els.map(e => [e.dataset.bucket, e.dataset.series, +e.dataset.value])"):
        found[(bucket, series)] = value
    return found


def _numbers_table(page, chart_id):
    """The "Numbers" table printed under the chart of ``chart_id``."""
    table = page.locator(f"figure:has(#{chart_id}) table.chart-table")
    found = {}
    for bucket, values in table.evaluate(
            "t => Array.from(t.tBodies[0].rows).map(r => [r.dataset.bucket, "
            "Array.from(r.cells).slice(1).map(c => [c.dataset.series, +c.textContent])])"):
        for series, value in values:
            found[(bucket, series)] = value
    return found


def _buckets_of(local_text, zone):
    """The hourly key (UTC hour) and the daily key (local day) of a time as the table
    shows it."""
    local = datetime.strptime(local_text[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=zone)
    utc = local.astimezone(timezone.utc)
    return f"{utc:%Y-%m-%dT%H}Z", local.date().isoformat()


def _expected(sent_rows, received_rows, zone, transport=None):
    counts = Counter()
    for row in sent_rows:
        if transport and row["Via"] != transport:
            continue
        hour, day = _buckets_of(row["Sent"], zone)
        status = row["Status"]
        kinds = (["sent"] if status == "sent" else []) + (
            ["failed"] if status in ("failed", "expired") else []) + (
            ["delivered"] if row["Delivery"].startswith("delivered") else [])
        for kind in kinds:
            counts[(hour, kind)] += 1
            counts[(day, kind)] += 1
    for row in received_rows:
        if transport and row["Via"] != transport:
            continue
        hour, day = _buckets_of(row["Received"], zone)
        counts[(hour, "received")] += 1
        counts[(day, "received")] += 1
    return counts


def test_every_chart_number_is_the_rows_of_the_tables(server_factory, tmp_path):
    server = server_factory(web=web_settings(tmp_path, timezone=ZONE, page_size="1000"))
    add_user(server.config_path, "noc", role="viewer")
    url = base_url(server)
    _seed_history(server.db_url, utcnow())
    zone = ZoneInfo(ZONE)
    with chromium() as browser:
        page = log_in(browser, url, "noc")
        page.goto(url + "/sent")
        sent_rows = _cells(page)
        page.goto(url + "/received")
        received_rows = _cells(page)
        assert len(sent_rows) == 400 and 150 < len(received_rows) < 400
        for transport, key in ((None, "all"), ("gsm2", "t")):
            page.goto(url + "/" + (f"?transport={transport}" if transport else ""))
            expected = _expected(sent_rows, received_rows, zone, transport)
            checked = 0
            for unit in ("hourly", "daily"):
                chart_id = f"chart-{key}-{unit}"
                bars = _bars(page, chart_id)
                assert len(bars) == (24 if unit == "hourly" else 30) * 4
                assert bars == _numbers_table(page, chart_id)
                for (bucket, series), value in bars.items():
                    assert value == expected.get((bucket, series), 0), (unit, bucket, series)
                    checked += value
            assert checked > 100  # the window holds rows, so the comparison means something
            legend = page.text_content(f"figure:has(#chart-{key}-daily) .legend")
            total_sent = sum(v for (b, s), v in _bars(page, f"chart-{key}-daily").items()
                             if s == "sent")
            assert f"sent {total_sent}" in legend
        # the transport's own page draws the same numbers, and its signal
        page.goto(url + "/transports/gsm2")
        page.goto(url + "/?transport=gsm2")
        on_status = _bars(page, "chart-t-daily")
        page.goto(url + "/transports/gsm2")
        assert _bars(page, "chart-t-daily") == on_status
        points = page.eval_on_selector_all("#chart-signal circle.point", "els => els.length")
        assert points == 1  # one sample so far
        # the charts need no script: the same numbers without JavaScript
        plain = browser.new_context(viewport=DESKTOP, java_script_enabled=False).new_page()
        plain.goto(url + "/login")
        plain.fill("#name", "noc")
        plain.fill("#password", PASSWORD)
        plain.click("button[type=submit]")
        plain.wait_for_url(url + "/")
        page.goto(url + "/")
        assert _bars(plain, "chart-all-daily") == _bars(page, "chart-all-daily")
    with httpx.Client(base_url=url, timeout=30) as stranger:
        assert stranger.get("/transports/gsm2").status_code == 303
