"""``python3 -m smss.web.screenshots DIR``: pictures of every page for the manual.

Makes a throw-away SQLite queue with example messages (through the ``smss.store``
functions the gateway itself uses; the history of the charts, 30 days of
messages and a day of modem samples, is written as rows with past times),
an admin, an operator and a token, and serves the web interface from this process
on 127.0.0.1, logs in with headless Chromium (Debian's ``chromium`` driven by
Playwright: ``pip install playwright``; no ``playwright install`` needed) and
saves ``desktop-PAGE.png`` (1280 px wide, the whole page) and ``phone-PAGE.png``
(390 x 844, what a phone shows first) for each page.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from datetime import datetime, timedelta
from typing import Dict, List, Optional

from smss.config import parse_text
from smss.gsm.alphabet import plan_parts
from smss.store import accounts, migrations, received, sent, transports
from smss.store import queue as msg_table
from smss.store.database import Connection, connect, utcnow
from smss.web import operations
from smss.web.passwords import hash_password, new_token
from smss.web.server import ThreadedWebServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--font-render-hinting=none"]
USER, PASSWORD = "admin", "demo password"
MODEM = "modem:/dev/ttyUSB0"

PAGES = [("status", "/"), ("transport", "/transports/" + MODEM), ("queue", "/queue"),
         ("sent", "/sent"), ("received", "/received"), ("message", "/message/{message}"),
         ("failed", "/message/{failed}"),
         ("send", "/send"), ("users", "/users"), ("tokens", "/tokens"), ("audit", "/audit")]
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}

CONFIG = """\
[database]
url = sqlite://{folder}/smss.db
[server]
kick_command =
[web]
listen = 127.0.0.1
port = 0
secret_file = {folder}/web-secret
timezone = Europe/Prague
page_size = 12
"""


def seed(conn: Connection) -> Dict[str, int]:
    """Example rows in every table; returns the ids of a sent multipart message
    (``message``) and of a failed one (``failed``)."""
    def queue(phone: str, text: str) -> int:
        parts = plan_parts(text).count
        with conn.transaction():
            [message_id] = msg_table.insert(conn, [msg_table.NewMessage(
                phone, text, parts, "10.0.0.21")])
        return message_id

    def send(phone: str, text: str, status: str, error: Optional[str] = None,
             delivered: Optional[bool] = True) -> int:
        message_id = queue(phone, text)
        [claimed] = msg_table.claim(conn, "gateway:4242", 1)
        references = [str(40 + message_id * 3 + n) for n in range(claimed.parts)]
        with conn.transaction():
            sent.record(conn, claimed, status, attempts=1 if status == sent.SENT else 3,
                        transport=MODEM, references=references if status == sent.SENT else (),
                        error=error, track_delivery=True)
            msg_table.delete(conn, message_id)
        if status == sent.SENT and delivered is not None:
            with conn.transaction():
                for reference in references:
                    sent.report(conn, MODEM, reference, delivered, 0 if delivered else 0x46)
        return message_id

    send("+420608337726", "Zálohování db1 dokončeno: 412 GB za 2 h 13 min", sent.SENT)
    send("+420777123456", "nagios: PROBLEM web2 HTTP is CRITICAL (connection refused)",
         sent.SENT)
    failed = send("+421905123456", "Test z nové brány", sent.FAILED,
                  "+CMS ERROR: 1 unassigned number")
    multipart = send("+420608337726", "Noční dávka selhala na serveru app3. " * 4, sent.SENT,
                     delivered=None)
    send("+420731000111", "Power restored in rack B4 after 14 min on UPS", sent.SENT)
    expired = send("+447911123456", "Disk /var on mail1 is 97 % full", sent.EXPIRED,
                   "expired: not sent within 86400 s")
    send("+420608337726", "RAID degraded on storage2: disk 3 failed", sent.SENT,
         delivered=False)

    queue("+420606111222", "Certificate for shop.example.cz expires in 5 days")
    [claimed] = msg_table.claim(conn, "gateway:4242", 1)  # the one being sent right now
    retry = queue("+420777123456", "Backup of fileserver failed: rsync exit 23")
    msg_table.defer(conn, retry, 2, utcnow() + timedelta(minutes=4),
                    "+CMS ERROR: 38 network out of order")
    queue("+420608337726", "UPS on battery in server room 2")
    queue("+420731000111", "Záložní zdroj: baterie vybitá, výměna do pátku")
    operations.cancel(conn, queue("+420606111222", "Test, please ignore"), "web:dana")
    operations.retry(conn, expired, "web:admin")

    for phone, text in (
        ("+420777123456", "STAV"),
        ("+420608337726", "Beru, jdu se na to podívat."),
        ("+420731000111", "12345 678"),
        ("+4915112345678", "Danke, das Problem ist behoben. Die Datensicherung läuft wieder "
                           "normal und der nächste Lauf ist für heute Nacht geplant. " * 2),
    ):
        parts = plan_parts(text).count
        with conn.transaction():
            received.insert(conn, received.Incoming(phone, text, sent_at=utcnow(), parts=parts,
                                                    smsc="+420603052000", transport=MODEM))
    seed_history(conn, utcnow())
    transports.save(conn, MODEM, "ok", signal_dbm=-71, registration="home",
                    operator="T-Mobile CZ")
    return {"message": multipart, "failed": failed}


def seed_history(conn: Connection, now: datetime) -> None:
    """30 days of sent and received messages (more by day than by night) and a day of
    the modem's signal, as rows with past times, for the charts."""
    rng = random.Random(2021)
    sms_rows, rcv_rows = [], []
    next_id = 100000
    for hours_ago in range(30 * 24, 0, -1):
        hour = now - timedelta(hours=hours_ago)
        busy = 8 <= (hour.hour + 1) % 24 <= 18
        for _ in range(rng.randint(2, 9) if busy else rng.randint(0, 2)):
            at = hour + timedelta(minutes=rng.randint(0, 59))
            roll = rng.random()
            status = sent.FAILED if roll < 0.05 else sent.EXPIRED if roll < 0.07 else sent.SENT
            delivery = (sent.DELIVERED if rng.random() < 0.9 else sent.PENDING) \
                if status == sent.SENT else None
            next_id += 1
            sms_rows.append((next_id, "+420608337726", "nagios: check", status, at, 1,
                             "10.0.0.21", at, 1, MODEM if status != sent.EXPIRED else "",
                             delivery, "+CMS ERROR: 38" if status == sent.FAILED else None))
        for _ in range(rng.randint(0, 3) if busy else rng.randint(0, 1)):
            rcv_rows.append(("+420777123456", "OK", hour + timedelta(minutes=rng.randint(0, 59)),
                             1, MODEM))
    samples = []
    signal = -71
    for minutes_ago in range(24 * 60, 0, -5):
        at = now - timedelta(minutes=minutes_ago)
        signal = max(-95, min(-61, signal + rng.randint(-3, 3)))
        lost = 14 * 60 < minutes_ago <= 14 * 60 + 20
        samples.append((MODEM, at, "down" if lost else "ok", None if lost else signal,
                        "modem not answering (AT timeout)" if lost else None))
    with conn.transaction():
        conn.executemany(
            "INSERT INTO sms (id, phone, text, status, sent_at, parts, client, created_at,"
            " attempts, transport, delivery, error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", sms_rows)
        conn.executemany(
            "INSERT INTO rcv (phone, text, received_at, parts, transport) VALUES (?,?,?,?,?)",
            rcv_rows)
        conn.executemany(
            "INSERT INTO transport_sample (name, at, state, signal_dbm, error)"
            " VALUES (?,?,?,?,?)", samples)


def make(outdir: str, chromium: str = CHROMIUM) -> List[str]:
    """Take the pictures into ``outdir``; returns the files written."""
    from playwright.sync_api import sync_playwright

    os.makedirs(outdir, exist_ok=True)
    written: List[str] = []
    with tempfile.TemporaryDirectory(prefix="smss-screens-") as folder:
        config = parse_text(CONFIG.format(folder=folder))
        conn = connect(config.get("database", "url"))
        try:
            migrations.prepare(conn)
            ids = seed(conn)
            accounts.set_user(conn, USER, hash_password(PASSWORD), accounts.ADMIN)
            accounts.set_user(conn, "dana", hash_password(PASSWORD), accounts.OPERATOR)
            accounts.set_user(conn, "noc", hash_password(PASSWORD), accounts.VIEWER)
            accounts.add_token(conn, "nagios", new_token()[1], accounts.OPERATOR,
                               actor="cli:root")
            accounts.add_token(conn, "grafana", new_token()[1], accounts.VIEWER,
                               actor="web:admin")
        finally:
            conn.close()
        with ThreadedWebServer(config) as server, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                for device, viewport in VIEWPORTS.items():
                    phone = device == "phone"
                    context = browser.new_context(viewport=viewport, is_mobile=phone,
                                                  has_touch=phone, device_scale_factor=1,
                                                  locale="en-GB")
                    page = context.new_page()
                    page.goto(server.url + "/login")
                    written.append(_shot(page, outdir, device, "login", full=False))
                    page.fill("#name", USER)
                    page.fill("#password", PASSWORD)
                    page.click("button[type=submit]")
                    page.wait_for_url(server.url + "/")
                    for name, path in PAGES:
                        page.goto(server.url + path.format(**ids))
                        if name == "send":
                            page.fill("#numbers", "+420608337726\n777 123 456")
                            page.fill("#text", "Příliš žluťoučký kůň úpěl ďábelské ódy.")
                            page.wait_for_selector("#counter[data-encoding=ucs2]")
                        written.append(_shot(page, outdir, device, name, full=not phone))
                    context.close()
            finally:
                browser.close()
    return written


def _shot(page, outdir: str, device: str, name: str, full: bool) -> str:
    path = os.path.join(outdir, f"{device}-{name}.png")
    page.screenshot(path=path, full_page=full)
    return path


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m smss.web.screenshots",
                                     description="screenshots of the web interface")
    parser.add_argument("outdir", help="folder for the PNG files (docs/screenshots)")
    parser.add_argument("--chromium", default=CHROMIUM, help="the Chromium binary")
    args = parser.parse_args(argv)
    for path in make(args.outdir, args.chromium):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
