"""The HTTP API against a real `smss run` process (web interface enabled), over
real HTTP on 127.0.0.1: the same answers as the TCP door, tokens, status by id
through a real dispatcher pass, received messages, limits and outages."""

from __future__ import annotations

import time

import httpx
import pytest
from support_dispatch import site
from support_web import add_token, api, base_url, smss, web_settings

from smss.spooler.protocol import format_record

# (phone, text): what both doors must judge alike
CORPUS = [
    ("420608337726", "AHOJ"),
    ("+420 608 337 726", "spaces in the number"),
    ("00420777123456", "00 prefix"),
    ("608337726", "national"),
    ("447911123456", "UK without +"),
    ("12", "too short"),
    ("abc", "letters"),
    ("", "no number"),
    ("+420608337726", ""),
    ("+420608337726", "   "),
    ("+420608337726", "Příliš žluťoučký kůň úpěl ďábelské ódy"),
    ("+420608337726", "emoji 🎉 and €uro {braces}"),
    ("+420608337726", "x" * 1530),  # 10 parts: the most allowed
    ("+420608337726", "x" * 1531),  # 11 parts
    ("+420608337726", "ř" * 670),  # UCS2, 10 parts
    ("+420608337726", "ř" * 671),
    ("+420608337726", "a" * 8200),  # longer than max_record_bytes
    ("+420608337726", "line one\nline two; # and \\ backslash"),
    ("4603", "short number, not allowed"),
]


def _tcp_answers(server, corpus):
    payload = b"".join(format_record(phone, text) + b"\n" for phone, text in corpus)
    return server.send(payload)


@pytest.fixture(params=["sqlite", "mysql"])
def web(request, server_factory, tmp_path):
    url = None
    if request.param == "mysql":
        url = request.getfixturevalue("mariadb").create_database()
    server = server_factory(url, web=web_settings(tmp_path),
                            server={"max_errors_per_connection": "100"})
    return server, base_url(server), add_token(server.config_path, "monitoring")


def test_send_answers_exactly_like_the_tcp_door(web):
    server, url, token = web
    tcp = _tcp_answers(server, CORPUS)
    assert len(tcp) == len(CORPUS)
    with api(url, token) as client:
        answer = client.post("/api/v1/messages", json={
            "messages": [{"phone": phone, "text": text} for phone, text in CORPUS]})
    body = answer.json()
    replies = [r["reply"] for r in body["results"]]
    assert [r.split()[0] for r in replies] == [r.split()[0] for r in tcp]
    assert [r for r in replies if r.startswith("ERR")] == [r for r in tcp if r.startswith("ERR")]
    assert {r.split()[1] for r in tcp if r.startswith("ERR")} == {"413", "422"}
    first_error = next(r for r in body["results"] if not r["ok"])
    assert answer.status_code == first_error["code"] == 422 and body["ok"] is False
    for result in body["results"]:
        assert result["ok"] == (result["id"] is not None) == (result["code"] is None)
        assert result["reply"] == (f"OK {result['id']}" if result["ok"]
                                   else f"ERR {result['code']} {result['error']}")
    # the rows each door stored are the same, apart from id and client
    rows = server.queued()
    tcp_ids = [int(r.split()[1]) for r in tcp if r.startswith("OK")]
    api_ids = [r["id"] for r in body["results"] if r["ok"]]
    by_id = {row[0]: row[1:] for row in rows}
    assert [by_id[i] for i in tcp_ids] == [by_id[i] for i in api_ids]
    assert len(rows) == len(tcp_ids) + len(api_ids)


def test_all_good_is_200_and_the_client_is_recorded(web):
    server, url, token = web
    with api(url, token) as client:
        answer = client.post("/api/v1/messages", json={"messages": [
            {"phone": "608337726", "text": "one"}, {"phone": "+420777123456", "text": "two"}]})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["ok"] is True
        ids = [r["id"] for r in body["results"]]
        status = client.get(f"/api/v1/messages/{ids[0]}").json()
    assert status["state"] == "queued" and status["phone"] == "+420608337726"
    assert status["created_at"].endswith("Z") and status["delivery"] is None
    from smss.store import queue as msg_table
    from smss.store.database import connect

    conn = connect(server.db_url)
    try:
        assert msg_table.get(conn, ids[1])["client"] == "api:monitoring@127.0.0.1"
    finally:
        conn.close()


def test_tokens_are_required_and_can_be_revoked(web):
    server, url, token = web
    body = {"messages": [{"phone": "608337726", "text": "x"}]}
    with httpx.Client(base_url=url, timeout=30) as client:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": token},
                        {"Authorization": f"Basic {token}"}):
            answer = client.post("/api/v1/messages", json=body, headers=headers)
            assert answer.status_code == 401, headers
            assert answer.headers["www-authenticate"] == "Bearer"
            assert client.get("/api/v1/received", headers=headers).status_code == 401
            assert client.get("/api/v1/messages/1", headers=headers).status_code == 401
    # a login cookie is no API credential
    with httpx.Client(base_url=url, timeout=30, cookies={"smss_session": "x"}) as client:
        assert client.get("/api/v1/received").status_code == 401
    assert server.queued() == []
    with api(url, token) as client:
        assert client.post("/api/v1/messages", json=body).status_code == 200
    listed = smss(server.config_path, "token", "list")
    assert listed.stdout.startswith("monitoring\t") and "last used never" not in listed.stdout
    assert smss(server.config_path, "token", "delete", "monitoring").returncode == 0
    with api(url, token) as client:
        assert client.post("/api/v1/messages", json=body).status_code == 401


def test_requests_the_api_cannot_read_are_400_and_store_nothing(web):
    server, url, token = web
    with api(url, token) as client:
        for payload in ([], {}, {"messages": []}, {"messages": [{"phone": "608337726"}]},
                        {"messages": [{"phone": 608337726, "text": "number, not string"}]},
                        {"messages": [{"phone": "608337726", "text": "x", "extra": 1}]},
                        {"messages": "#608337726;x"}):
            answer = client.post("/api/v1/messages", json=payload)
            assert answer.status_code == 400, (payload, answer.text)
            assert answer.json()["error"].startswith("cannot read the request")
        answer = client.post("/api/v1/messages", content=b"{not json",
                             headers={"content-type": "application/json"})
        assert answer.status_code == 400
        for path in ("/api/v1/messages/abc", "/api/v1/messages/0",
                     "/api/v1/messages/99999999999999999999", "/api/v1/received?since=-1",
                     "/api/v1/received?limit=0", "/api/v1/received?limit=1001"):
            assert client.get(path).status_code == 400, path
        assert client.get("/api/v1/messages/424242").status_code == 404
    assert server.queued() == []


def test_request_limits(server_factory, tmp_path):
    server = server_factory(web=web_settings(tmp_path), server={
        "max_records_per_connection": "3", "max_record_bytes": "200"})
    url, token = base_url(server), add_token(server.config_path, "app")
    message = {"phone": "608337726", "text": "x"}
    with api(url, token) as client:
        answer = client.post("/api/v1/messages", json={"messages": [message] * 4})
        assert answer.status_code == 429 and "at most 3" in answer.json()["error"]
        # the body limit: 64 KiB plus room for a full batch of the longest records
        big = {"messages": [{"phone": "608337726", "text": "y" * 70_000}]}
        assert client.post("/api/v1/messages", json=big).status_code == 413

        def chunks():
            yield b'{"messages": [{"phone": "608337726", "text": "'
            for _ in range(100):
                yield b"z" * 1000
            yield b'"}]}'

        chunked = client.post("/api/v1/messages", content=chunks(),
                              headers={"content-type": "application/json"})
        assert chunked.status_code == 413
        answer = client.post("/api/v1/messages", json={"messages": [
            message, {"phone": "608337726", "text": "w" * 300}]})
        assert answer.status_code == 413
        assert answer.json()["results"][1]["reply"] == (
            "ERR 413 record longer than 200 bytes, skipped")
    assert [row[2] for row in server.queued()] == ["x"]


def test_status_and_received_through_a_real_dispatcher_pass(tmp_path):
    with site(tmp_path, status_report_delay=0.05) as s:
        from conftest import ServerProcess

        folder = tmp_path / "server"
        folder.mkdir()
        server = ServerProcess(folder, s.db_url, {"web": web_settings(folder)})
        server.start()
        try:
            url, token = base_url(server), add_token(server.config_path, "app")
            with api(url, token) as client:
                sent = client.post("/api/v1/messages", json={"messages": [
                    {"phone": "+420608337726", "text": "report me"},
                    {"phone": "+420608337726", "text": "Dlouhá zpráva " * 10}]}).json()
                single, multi = (r["id"] for r in sent["results"])
                assert client.get(f"/api/v1/messages/{single}").json()["state"] == "queued"
                assert s.run().returncode == 0, s.log()
                after = client.get(f"/api/v1/messages/{multi}").json()
                assert after["state"] == "sent" and after["parts"] == 3
                assert after["delivery"] == "pending" and after["transport"]
                deadline = time.monotonic() + 20
                while len(s.sim.control.storage()) < 4 and time.monotonic() < deadline:
                    time.sleep(0.05)
                s.sim.control.inject("+420777123456", "Odpověď: OK")
                assert s.run().returncode == 0, s.log()
                done = client.get(f"/api/v1/messages/{single}").json()
                assert done["delivery"] == "delivered" and done["delivered_at"].endswith("Z")
                assert client.get(f"/api/v1/messages/{multi}").json()["delivery"] == "delivered"
                page = client.get("/api/v1/received", params={"since": 0}).json()
                assert [(m["phone"], m["text"]) for m in page["messages"]] == [
                    ("+420777123456", "Odpověď: OK")]
                assert page["last_id"] == page["messages"][0]["id"]
                again = client.get("/api/v1/received", params={"since": page["last_id"]}).json()
                assert again == {"messages": [], "last_id": page["last_id"]}
        finally:
            server.stop()


def test_sending_kicks_the_dispatcher(server_factory, tmp_path):
    marker = tmp_path / "passes"
    script = tmp_path / "fake-dispatcher"
    script.write_text(f"#!/bin/sh\necho pass >> {marker}\n")
    script.chmod(0o755)
    server = server_factory(web=web_settings(tmp_path), server={"kick_command": str(script)})
    with api(base_url(server), add_token(server.config_path, "app")) as client:
        answer = client.post("/api/v1/messages", json={"messages": [
            {"phone": "608337726", "text": "kick"}]})
    assert answer.status_code == 200
    deadline = time.monotonic() + 20
    while not (marker.exists() and "pass" in marker.read_text()):
        assert time.monotonic() < deadline, "no dispatcher pass was started"
        time.sleep(0.05)


def test_a_commit_that_fails_is_err_503_never_ok(server_factory, tmp_path):
    import sqlite3

    server = server_factory(web=web_settings(tmp_path))
    url, token = base_url(server), add_token(server.config_path, "app")
    path = server.db_url[len("sqlite://"):]
    db = sqlite3.connect(path)
    db.execute("CREATE TRIGGER refuse BEFORE INSERT ON msg BEGIN"
               " SELECT RAISE(ABORT, 'the disk is full'); END")
    db.commit()
    message = {"messages": [{"phone": "608337726", "text": "refused"},
                            {"phone": "608337726", "text": "refused too"}]}
    with api(url, token) as client:
        answer = client.post("/api/v1/messages", json=message)
        assert answer.status_code == 503
        assert [r["reply"] for r in answer.json()["results"]] == [
            "ERR 503 storage unavailable, not stored"] * 2
        assert server.send(b"#608337726;tcp too") == ["ERR 503 storage unavailable, not stored"]
        db.execute("DROP TRIGGER refuse")
        db.commit()
        assert client.post("/api/v1/messages", json=message).status_code == 200
    db.close()
    assert [row[2] for row in server.queued()] == ["refused", "refused too"]


@pytest.mark.mariadb
def test_storage_outage_is_503_not_ok_then_recovers(server_factory, tmp_path):
    from support_mariadb import MariaDB

    database = MariaDB(str(tmp_path / "own-mariadb"))
    database.start()
    try:
        server = server_factory(database.create_database("outage"), web=web_settings(tmp_path))
        url, token = base_url(server), add_token(server.config_path, "app")
        message = {"messages": [{"phone": "608337726", "text": "before"}]}
        with api(url, token) as client:
            assert client.post("/api/v1/messages", json=message).status_code == 200
            with api(url, token) as other:
                # a second client keeps its pooled connection into the outage
                assert other.get("/api/v1/received").status_code == 200
            database.stop()
            # the token cannot be checked: 503 before anything is tried
            answer = client.post("/api/v1/messages", json=message)
            assert answer.status_code == 503 and answer.headers["retry-after"]
            database.start()
            message["messages"][0]["text"] = "after"
            assert client.post("/api/v1/messages", json=message).status_code == 200
        assert [row[2] for row in server.queued()] == ["before", "after"]
    finally:
        database.cleanup()
