"""Webhooks against real local HTTP receivers: every event arrives (at least once, the
event id telling repeats apart), every signature verifies, a receiver that fails, is down
or is slow never holds up sending or receiving, and what could not be delivered within
max_age is shown as failed in `smss status` and on the status page."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from support_dispatch import site
from support_receiver import Receiver
from support_web import add_user, base_url, login, web_settings

from smss.config import parse_text
from smss.events import signing
from smss.events.record import Events
from smss.events.worker import DeliveryWorker
from smss.store import migrations, outbox, received, tallies
from smss.store.database import connect, utcnow

SECRET = "s3cret-shared-with-the-receiver"


def _hook(receiver, **extra):
    values = {"url": receiver.url, "secret": SECRET, "events": "received, delivery, failed"}
    values.update(extra)
    return values


FAST = {"poll_interval": "0.1", "retry_delay": "0.2", "retry_max_delay": "1"}


def _events(receiver):
    """Delivered events by id (a repeat of an id is the same event)."""
    found = {}
    for request in receiver.ok():
        body = json.loads(request.body)
        assert request.headers["x-smss-event-id"] == body["id"]
        assert request.headers["x-smss-event"] == body["type"]
        found[body["id"]] = body
    return found


def _check_signature(request):
    stamp = request.headers["x-smss-timestamp"]
    expected = hmac.new(SECRET.encode(), stamp.encode() + b"." + request.body,
                        hashlib.sha256).hexdigest()
    assert request.headers["x-smss-signature"] == "sha256=" + expected
    assert signing.verify(SECRET, stamp, request.body, request.headers["x-smss-signature"])
    assert not signing.verify(SECRET, stamp, request.body + b" ",
                              request.headers["x-smss-signature"])
    assert not signing.verify("another secret", stamp, request.body,
                              request.headers["x-smss-signature"])


def _stop(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait(condition, what, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_signatures_and_replays():
    body = b'{"id": "x"}'
    stamp = str(int(time.time()))
    signature = signing.sign(SECRET, stamp, body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert signing.verify(SECRET, stamp, body, signature)
    # a recorded request replayed ten minutes later is refused by the timestamp
    assert not signing.verify(SECRET, stamp, body, signature, now=time.time() + 600)
    assert not signing.verify(SECRET, "not a time", body, signature)


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_every_event_arrives_signed_through_a_receiver_that_fails_first(
        backend, tmp_path, request):
    db_url = request.getfixturevalue("mariadb").create_database() if backend == "mysql" else None
    with Receiver(fail_first=3) as receiver, site(
            tmp_path, db_url, status_report_delay=0.05,
            settings={"webhook:app": _hook(receiver), "outbox": FAST,
                      "dispatcher": {"poll_interval": "0.3"}}) as s:
        s.sim.control.set_fault("cms_error", code=1, count=1)  # the first send fails for good
        refused = s.enqueue("+420777123456", "nope")
        sent = s.enqueue("+420608337726", "hello")
        loop = s.start("--loop")  # the worker runs inside check_and_send --loop
        try:
            _wait(lambda: s.rows("sms", "delivery", f"WHERE id = {sent}") == [("delivered",)],
                  "the message delivered")
            s.sim.control.inject("+420777123456", "Odpověď")
            receiver.wait_for(lambda r: len(_events(r)) >= 3, what="three events")
        finally:
            _stop(loop)
        events = _events(receiver)
        by_type = {body["type"]: body for body in events.values()}
        assert sorted(by_type) == ["delivery", "failed", "received"], events
        assert len(events) == 3
        assert [r.status for r in receiver.requests[:3]] == [500, 500, 500]
        for request in receiver.ok():
            _check_signature(request)
            assert request.method == "POST" and request.path == "/hook"
            assert request.headers["content-type"] == "application/json"
        failed = by_type["failed"]["data"]
        assert (failed["id"], failed["phone"], failed["status"]) == (refused, "+420777123456",
                                                                     "failed")
        assert failed["error"] and failed["text"] == "nope"
        delivery = by_type["delivery"]["data"]
        assert (delivery["id"], delivery["delivery"], delivery["part"]) == (sent, "delivered", 1)
        came = by_type["received"]["data"]
        assert (came["phone"], came["text"]) == ("+420777123456", "Odpověď")
        assert came["id"] == s.rows("rcv", "id")[0][0]
        assert by_type["received"]["created_at"].endswith("Z")
        assert s.rows("outbox", "COUNT(*)") == [(0,)]  # delivered events leave the outbox
        conn = s.connect()
        try:
            counted = {(t.name, t.transport, t.detail): t.value
                       for t in tallies.all_tallies(conn)}
        finally:
            conn.close()
        assert counted[("events", "webhook:app", "delivered")] == 3


def test_a_slow_receiver_never_holds_up_sending_or_receiving(tmp_path):
    with Receiver() as receiver, site(
            tmp_path, settings={"webhook:app": _hook(receiver, timeout="2", events="received"),
                                "outbox": FAST,
                                "dispatcher": {"poll_interval": "0.3"}}) as s:
        receiver.hold.clear()  # every request waits: longer than the webhook's timeout
        loop = s.start("--loop")
        try:
            s.sim.control.inject("+420777123456", "first")
            receiver.wait_for(lambda r: r.held >= 1, what="a post waiting on the receiver")
            # while the receiver sits on it, the dispatcher sends and receives as usual
            message = s.enqueue("+420608337726", "goes out all the same")
            s.sim.control.inject("+420777123456", "second")
            _wait(lambda: s.rows("sms", "status", f"WHERE id = {message}") == [("sent",)]
                  and len(s.rows("rcv", "id")) == 2, "sent and received meanwhile")
            assert receiver.held >= 1 and receiver.ok() == []
            receiver.wait_for(lambda r: len(r.requests) >= 3,
                              what="an attempt that timed out, tried again")
            receiver.hold.set()
            receiver.wait_for(lambda r: len(_events(r)) >= 2, what="both received events")
        finally:
            receiver.hold.set()
            _stop(loop)
        events = _events(receiver)
        assert sorted(body["data"]["text"] for body in events.values()) == ["first", "second"]
        # the attempts that timed out carried the same event id as the one that got through
        ids = [r.headers["x-smss-event-id"] for r in receiver.requests]
        assert set(ids) == set(events) and len(ids) > len(set(ids))
        for request in receiver.ok():
            _check_signature(request)


@pytest.mark.slow
def test_a_receiver_down_for_a_minute_gets_every_event_afterwards(tmp_path):
    """Only `smss run` runs (the dispatcher is cron's one-shot check_and_send): its worker
    posts what the passes stored while the receiver was down."""
    from conftest import ServerProcess

    with Receiver() as receiver, site(tmp_path, status_report_delay=0.05, settings={
            "webhook:app": _hook(receiver), "outbox": FAST}) as s:
        receiver.down()
        folder = tmp_path / "server"
        folder.mkdir()
        server = ServerProcess(folder, s.db_url, {"webhook:app": _hook(receiver),
                                                  "outbox": FAST})
        server.start()
        try:
            went_down = time.monotonic()
            message = s.enqueue("+420608337726", "while the receiver is down")
            s.sim.control.inject("+420777123456", "also while it is down")
            assert s.run().returncode == 0, s.log()
            _wait(lambda: (s.run().returncode == 0 and s.rows(
                "sms", "delivery", f"WHERE id = {message}") == [("delivered",)]),
                "the delivery report applied")
            _wait(lambda: (s.rows("outbox", "MIN(attempts)")[0][0] or 0) >= 2,
                  "attempts against the closed port")
            status = subprocess.run([sys.executable, "-m", "smss.cli", "-c", server.config_path,
                                     "status"], capture_output=True, text=True, timeout=60)
            assert "events to webhook:app: 2 pending" in status.stdout, status.stdout
            time.sleep(max(0.0, 60 - (time.monotonic() - went_down)))  # down for a minute
            receiver.up()
            receiver.wait_for(lambda r: len(_events(r)) >= 2, what="both events after the outage")
        finally:
            server.stop()
        assert sorted(b["type"] for b in _events(receiver).values()) == ["delivery", "received"]
        assert "connection refused" in server.log().lower() or "refused" in server.log()
        for request in receiver.ok():
            _check_signature(request)


def test_given_up_after_max_age_and_shown_as_failed(tmp_path):
    from conftest import ServerProcess

    with Receiver(status=500) as receiver, site(tmp_path, settings={
            "webhook:app": _hook(receiver, max_age="1"), "outbox": FAST}) as s:
        folder = tmp_path / "server"
        folder.mkdir()
        server = ServerProcess(folder, s.db_url, {
            "webhook:app": _hook(receiver, max_age="1"), "outbox": FAST,
            "web": web_settings(folder)})
        server.start()
        try:
            s.sim.control.inject("+420777123456", "nobody takes this")
            assert s.run().returncode == 0, s.log()
            _wait(lambda: s.rows("outbox", "state") == [("failed",)], "the event given up")
            assert len(receiver.requests) >= 2  # tried again before giving up
            status = subprocess.run([sys.executable, "-m", "smss.cli", "-c", server.config_path,
                                     "status"], capture_output=True, text=True, timeout=60)
            assert "events to webhook:app: 0 pending, 1 failed in the last 7 days" in (
                status.stdout), status.stdout
            assert "last failed:" in status.stdout and "HTTP 500" in status.stdout
            add_user(server.config_path, "alice")
            client = login(base_url(server), "alice")
            try:
                page = client.get("/").text
            finally:
                client.close()
            assert "webhook:app" in page and "1 failed" in page and "HTTP 500" in page
            event_id = s.rows("outbox", "event_id")[0][0]
            assert event_id in page
        finally:
            server.stop()


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_two_workers_never_post_one_event_at_the_same_time(backend, tmp_path, request):
    db_url = (request.getfixturevalue("mariadb").create_database() if backend == "mysql"
              else f"sqlite://{tmp_path}/smss.db")
    conn = connect(db_url)
    migrations.prepare(conn)
    with Receiver() as receiver:
        config = parse_text(f"""
[database]
url = {db_url}
[webhook:app]
url = {receiver.url}
secret = {SECRET}
[outbox]
poll_interval = 0.05
""")
        events = Events.from_config(config)
        with conn.transaction():
            for number in range(60):
                events.received(conn, number + 1, received.Incoming("+420777123456",
                                                                    f"n{number}"))
        # and one whose worker died holding its claim: it is posted again
        with conn.transaction():
            events.received(conn, 99, received.Incoming("+420777123456", "orphan"))
        newest = conn.read().query_one("SELECT MAX(id) FROM outbox")[0]
        with conn.transaction():
            conn.execute("UPDATE outbox SET claimed_by = 'gone:1', claimed_at = ? WHERE id = ?",
                         (utcnow() - timedelta(hours=1), newest)).close()
        workers = [DeliveryWorker(config, owner=f"test:{n}") for n in range(2)]
        for worker in workers:
            worker.start()
        try:
            receiver.wait_for(lambda r: len(_events(r)) == 61, what="61 events")
            _wait(lambda: conn.read().query_one("SELECT COUNT(*) FROM outbox")[0] == 0,
                  "the outbox emptied")
        finally:
            for worker in workers:
                worker.stop()
    ids = [r.headers["x-smss-event-id"] for r in receiver.requests]
    assert len(ids) == len(set(ids)) == 61  # each posted once: the claims kept them apart
    assert max(receiver.concurrent_max.values()) == 1
    conn.close()


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_an_event_exists_exactly_when_its_cause_was_committed(backend, tmp_path, request):
    db_url = (request.getfixturevalue("mariadb").create_database() if backend == "mysql"
              else f"sqlite://{tmp_path}/smss.db")
    conn = connect(db_url)
    migrations.prepare(conn)
    events = Events((("app", frozenset({"received"})),))
    incoming = received.Incoming("+420777123456", "x", transport="t")
    with pytest.raises(RuntimeError):
        with conn.transaction():
            rcv_id = received.insert(conn, incoming)
            events.received(conn, rcv_id, incoming)
            raise RuntimeError("the pass died before the commit")
    assert conn.read().query_one("SELECT COUNT(*) FROM outbox")[0] == 0
    assert tallies.all_tallies(conn) == []
    with conn.transaction():
        rcv_id = received.insert(conn, incoming)
        events.received(conn, rcv_id, incoming)
    rows = outbox.summary(conn)
    assert [(r.target, r.pending) for r in rows] == [("webhook:app", 1)]
    conn.close()


def test_webhook_sections_are_checked_at_start():
    from smss.config import ConfigError

    good = "[webhook:app]\nurl = http://127.0.0.1:9/x\nsecret = k\n"
    assert parse_text(good).webhooks()["app"]["events"] == ("received", "delivery", "failed")
    for text, message in [
        ("[webhook]\nurl = http://x/\nsecret = k\n", "needs a name"),
        ("[webhook:app]\nurl = ftp://x/\nsecret = k\n", "url"),
        ("[webhook:app]\nurl = http://x/\n", "secret"),
        ("[webhook:app]\nurl = http://x/\nsecret = k\nevents = sent\n", "unknown event"),
        ("[webhook:app]\nurl = http://x/\nsecret = k\ncolour = red\n", "unknown key"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_text(text)
