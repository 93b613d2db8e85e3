"""Idempotency-Key on POST /api/v1/messages against a real `smss run` over HTTP: a retry
gets the first answer and stores nothing, another body under the same key is 422, two
requests racing with one key store once, a request that stored nothing leaves no key,
and keys are forgotten after 24 hours."""

from __future__ import annotations

import threading
from datetime import timedelta

import httpx
import pytest
from support_web import add_token, api, base_url, web_settings

from smss.store import idempotency
from smss.store.database import connect, utcnow

BODY = {"messages": [{"phone": "608337726", "text": "Backup failed"},
                     {"phone": "+420777123456", "text": "Záloha selhala"}]}


@pytest.fixture(params=["sqlite", "mysql"])
def web(request, server_factory, tmp_path):
    url = None
    if request.param == "mysql":
        url = request.getfixturevalue("mariadb").create_database()
    server = server_factory(url, web=web_settings(tmp_path))
    return server, base_url(server), add_token(server.config_path, "app")


def test_a_retry_gets_the_first_answer_and_stores_nothing(web):
    server, url, token = web
    with api(url, token) as client:
        first = client.post("/api/v1/messages", json=BODY, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == 200 and "idempotent-replayed" not in first.headers
        again = client.post("/api/v1/messages", json=BODY, headers={"Idempotency-Key": "k-1"})
        assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
        # the same content spelt differently is the same request
        respelt = client.post("/api/v1/messages", content=(
            b'{ "messages":[{"text":"Backup failed","phone":"608337726"},'
            b'{"text":"Z\\u00e1loha selhala","phone":"+420777123456"}] }'),
            headers={"Idempotency-Key": "k-1", "content-type": "application/json"})
        assert respelt.json() == first.json()
        # another body under the key: refused, nothing stored
        other = client.post("/api/v1/messages", json={"messages": [BODY["messages"][0]]},
                            headers={"Idempotency-Key": "k-1"})
        assert other.status_code == 422 and "different request" in other.json()["error"]
        # without a key, or with another, it is a new request
        assert client.post("/api/v1/messages", json=BODY).status_code == 200
        fresh = client.post("/api/v1/messages", json=BODY, headers={"Idempotency-Key": "k-2"})
    ids = [r["id"] for r in first.json()["results"]]
    assert [row[0] for row in server.queued()][:2] == ids
    assert len(server.queued()) == 6
    assert [r["id"] for r in fresh.json()["results"]] != ids


def test_a_partly_refused_request_is_answered_the_same_again(web):
    server, url, token = web
    body = {"messages": [{"phone": "608337726", "text": "good"}, {"phone": "12", "text": "x"}]}
    with api(url, token) as client:
        first = client.post("/api/v1/messages", json=body, headers={"Idempotency-Key": "p"})
        again = client.post("/api/v1/messages", json=body, headers={"Idempotency-Key": "p"})
    assert first.status_code == again.status_code == 422
    assert first.json() == again.json()
    assert [row[2] for row in server.queued()] == ["good"]


def test_keys_belong_to_their_token(web):
    server, url, token = web
    other = add_token(server.config_path, "other")
    with api(url, token) as one, api(url, other) as two:
        a = one.post("/api/v1/messages", json=BODY, headers={"Idempotency-Key": "shared"})
        b = two.post("/api/v1/messages", json=BODY, headers={"Idempotency-Key": "shared"})
    assert a.json() != b.json() and len(server.queued()) == 4


def test_requests_racing_with_one_key_store_once(web):
    server, url, token = web
    barrier = threading.Barrier(8)
    answers = []

    def one() -> None:
        with api(url, token) as client:
            barrier.wait()
            answers.append(client.post("/api/v1/messages", json=BODY,
                                       headers={"Idempotency-Key": "race"}))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(answers) == 8
    assert {a.status_code for a in answers} == {200}
    assert len({str(a.json()) for a in answers}) == 1
    assert sum(1 for a in answers if "idempotent-replayed" not in a.headers) == 1
    assert len(server.queued()) == 2


def test_bad_keys_are_400(web):
    server, url, token = web
    with api(url, token) as client:
        for key in ("", "x" * 256, "tab\tinside"):
            answer = client.post("/api/v1/messages", json=BODY, headers={"Idempotency-Key": key})
            assert answer.status_code == 400, key
        answer = client.post("/api/v1/messages", json=BODY,
                             headers={"Idempotency-Key": b"k" + b"\xc3\xa9"})
        assert answer.status_code == 400
    assert server.queued() == []


def test_a_request_that_stored_nothing_leaves_no_key(server_factory, tmp_path):
    import sqlite3

    server = server_factory(web=web_settings(tmp_path))
    url, token = base_url(server), add_token(server.config_path, "app")
    db = sqlite3.connect(server.db_url[len("sqlite://"):])
    db.execute("CREATE TRIGGER refuse BEFORE INSERT ON msg BEGIN"
               " SELECT RAISE(ABORT, 'the disk is full'); END")
    db.commit()
    with api(url, token) as client:
        failed = client.post("/api/v1/messages", json=BODY, headers={"Idempotency-Key": "d"})
        assert failed.status_code == 503
        assert [r["reply"] for r in failed.json()["results"]] == [
            "ERR 503 storage unavailable, not stored"] * 2
        db.execute("DROP TRIGGER refuse")
        db.commit()
        retry = client.post("/api/v1/messages", json=BODY, headers={"Idempotency-Key": "d"})
        assert retry.status_code == 200 and "idempotent-replayed" not in retry.headers
    db.close()
    assert len(server.queued()) == 2


def test_keys_are_forgotten_after_24_hours(web):
    server, url, token = web
    with api(url, token) as client:
        first = client.post("/api/v1/messages", json=BODY, headers={"Idempotency-Key": "old"})
        conn = connect(server.db_url)
        try:
            with conn.transaction():
                conn.execute("UPDATE idempotency_key SET created_at = ?",
                             (utcnow() - idempotency.LIFETIME - timedelta(seconds=1),)).close()
            again = client.post("/api/v1/messages", json=BODY,
                                headers={"Idempotency-Key": "old"})
            assert again.status_code == 200 and "idempotent-replayed" not in again.headers
            assert again.json() != first.json()
            with conn.transaction():
                conn.execute("UPDATE idempotency_key SET created_at = ?",
                             (utcnow() - idempotency.LIFETIME - timedelta(seconds=1),)).close()
            assert idempotency.prune(conn) == 1
            assert conn.read().query_one("SELECT COUNT(*) FROM idempotency_key")[0] == 0
        finally:
            conn.close()
    assert len(server.queued()) == 4


def test_the_header_is_in_the_openapi_description(web):
    server, url, token = web
    with httpx.Client(base_url=url, timeout=30) as client:
        spec = client.get("/api/v1/openapi.json").json()
    parameters = spec["paths"]["/api/v1/messages"]["post"]["parameters"]
    assert [(p["name"], p["in"]) for p in parameters] == [("Idempotency-Key", "header")]
