"""The web pages over real HTTP (no browser): logins, CSRF, what a stranger sees,
the send form's answers, filters.  The browser tests are in test_web_browser.py."""

from __future__ import annotations

import re

import httpx
import pytest
from support_web import PASSWORD, add_user, base_url, csrf_of, login, smss, web_settings

from smss.store import queue as msg_table
from smss.store import received
from smss.store.database import connect

PAGES = ["/", "/queue", "/sent", "/received", "/send", "/message/1", "/received/1",
         "/queue?number=608337726", "/sent?status=failed"]


@pytest.fixture
def web(server_factory, tmp_path):
    server = server_factory(web=web_settings(tmp_path, max_login_failures="3"))
    add_user(server.config_path, "alice")
    conn = connect(server.db_url)
    try:
        with conn.transaction():
            msg_table.insert(conn, [msg_table.NewMessage("+420608337726", "secret queued text")])
            received.insert(conn, received.Incoming("+420777123456", "secret received text"))
    finally:
        conn.close()
    return server, base_url(server)


def test_a_stranger_sees_nothing_but_the_login_form(web):
    server, url = web
    with httpx.Client(base_url=url, timeout=30) as client:
        for path in PAGES:
            answer = client.get(path)
            assert answer.status_code == 303, path
            location = answer.headers["location"]
            assert location.startswith("/login"), location
            assert "secret" not in answer.text and "+420" not in answer.text
        assert client.get("/queue?number=1").headers["location"] == (
            "/login?next=%2Fqueue%3Fnumber%3D1")
        form = client.get("/login")
        assert form.status_code == 200 and "secret" not in form.text
        assert 'name="password"' in form.text
        sent = client.post("/send", data={"numbers": "608337726", "text": "sneaky",
                                          "csrf": csrf_of(form.text)})
        assert sent.status_code == 303 and sent.headers["location"].startswith("/login")
        assert client.get("/static/smss.css").status_code == 200
    assert [row[2] for row in server.queued()] == ["secret queued text"]


def test_login_logout_and_the_cookie(web):
    server, url = web
    with httpx.Client(base_url=url, timeout=30) as client:
        form = client.get("/login?next=/sent")
        token = csrf_of(form.text)
        wrong = client.post("/login", data={"name": "alice", "password": "nope",
                                            "csrf": token, "next": "/sent"})
        assert wrong.status_code == 401 and "Wrong user or password" in wrong.text
        unknown = client.post("/login", data={"name": "bob", "password": PASSWORD,
                                              "csrf": token, "next": "/sent"})
        assert unknown.status_code == 401 and "Wrong user or password" in unknown.text
        no_csrf = client.post("/login", data={"name": "alice", "password": PASSWORD})
        assert no_csrf.status_code == 403
        good = client.post("/login", data={"name": "alice", "password": PASSWORD,
                                           "csrf": token, "next": "/sent"})
        assert good.status_code == 303 and good.headers["location"] == "/sent"
        cookie = good.headers["set-cookie"]
        assert "smss_session=" in cookie and "httponly" in cookie.lower()
        assert "samesite=lax" in cookie.lower()
        page = client.get("/queue")
        assert page.status_code == 200 and "secret queued text" in page.text
        assert page.headers["cache-control"] == "no-store"
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        assert client.post("/logout", data={}).status_code == 403  # no CSRF token: refused
        assert client.get("/queue").status_code == 200
        out = client.post("/logout", data={"csrf": csrf_of(page.text)})
        assert out.status_code == 303
        assert client.get("/queue").status_code == 303


def test_a_login_cookie_does_not_outlive_a_password_change_or_the_user(web):
    server, url = web
    client = login(url, "alice")
    old_cookie = client.cookies.get("smss_session")
    result = smss(server.config_path, "user", "passwd", "alice", stdin="another password\n")
    assert result.returncode == 0, result.stderr
    assert client.get("/queue").status_code == 303
    with httpx.Client(base_url=url, timeout=30, cookies={"smss_session": old_cookie}) as replay:
        assert replay.get("/queue").status_code == 303
    client = login(url, "alice", "another password")
    assert client.get("/queue").status_code == 200
    assert smss(server.config_path, "user", "delete", "alice").returncode == 0
    assert client.get("/queue").status_code == 303


def test_failed_logins_make_an_address_wait(web):
    server, url = web
    with httpx.Client(base_url=url, timeout=30) as client:
        token = csrf_of(client.get("/login").text)
        for _ in range(3):
            answer = client.post("/login", data={"name": "alice", "password": "guess",
                                                 "csrf": token})
            assert answer.status_code == 401
        answer = client.post("/login", data={"name": "alice", "password": PASSWORD,
                                             "csrf": token})
        assert answer.status_code == 429 and "Too many failed logins" in answer.text


def test_next_never_leaves_the_site(web):
    server, url = web
    with httpx.Client(base_url=url, timeout=30) as client:
        token = csrf_of(client.get("/login").text)
        for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", "queue"):
            answer = client.post("/login", data={"name": "alice", "password": PASSWORD,
                                                 "csrf": token, "next": target})
            assert answer.headers["location"] == "/", target
            client.cookies.clear()
            token = csrf_of(client.get("/login").text)


def test_the_send_form_stores_the_good_numbers_and_keeps_the_bad(web):
    server, url = web
    client = login(url, "alice")
    form = client.get("/send")
    token = csrf_of(form.text)
    assert client.post("/send", data={"numbers": "608337726", "text": "x"}).status_code == 403
    assert client.post("/send", data={"numbers": "608337726", "text": "x",
                                      "csrf": "forged"}).status_code == 403
    answer = client.post("/send", data={
        "numbers": "608337726, +420 777 123 456\n12;\n", "csrf": token,
        "text": "Dobrý den,\r\nzáloha selhala."})
    assert answer.status_code == 422
    assert "ERR 422" in answer.text and "invalid phone number" in answer.text
    assert re.search(r'<textarea id="numbers"[^>]*>12</textarea>', answer.text)
    assert "Queued 2 messages" in answer.text
    rows = server.queued()
    assert [(r[1], r[2]) for r in rows[1:]] == [
        ("+420608337726", "Dobrý den,\nzáloha selhala."),  # CRLF from the browser -> LF
        ("+420777123456", "Dobrý den,\nzáloha selhala.")]
    conn = connect(server.db_url)
    try:
        assert msg_table.get(conn, rows[1][0])["client"] == "web:alice@127.0.0.1"
    finally:
        conn.close()
    good = client.post("/send", data={"numbers": "608337726", "text": "ok", "csrf": token})
    assert good.status_code == 303 and good.headers["location"] == "/queue"
    queue = client.get("/queue")
    assert "Queued 1 message:" in queue.text
    assert "Queued 1 message:" not in client.get("/queue").text  # a flash shows once


def test_filters_that_make_no_sense_are_explained(web):
    server, url = web
    client = login(url, "alice")
    answer = client.get("/sent", params={"status": "bogus", "from": "yesterday",
                                         "number": "abc", "before": "garbage"})
    assert answer.status_code == 400
    for problem in ("unknown state", "not a date", "has no digits", "page link is broken"):
        assert problem in answer.text
    found = client.get("/queue", params={"number": "+420 608 337 726"})
    assert "secret queued text" in found.text
    assert "secret queued text" not in client.get("/queue", params={"number": "777"}).text
    assert "secret received text" in client.get("/received", params={"number": "777"}).text
    assert "secret received text" in client.get("/received", params={"text": "RECEIVED"}).text
    assert client.get("/message/424242").status_code == 404
    assert client.get("/message/1").status_code == 200
    assert "secret received text" in client.get("/received/1").text


def test_the_pager_links_walk_the_filtered_list(server_factory, tmp_path):
    server = server_factory(web=web_settings(tmp_path, page_size="2"))
    add_user(server.config_path, "alice")
    conn = connect(server.db_url)
    try:
        with conn.transaction():
            msg_table.insert(conn, [msg_table.NewMessage(
                "+420608337726" if i % 2 else "+420777123456", f"item {i}") for i in range(7)])
    finally:
        conn.close()
    client = login(base_url(server), "alice")
    seen, href = [], "/queue?number=608337726"
    while href:
        page = client.get(href.replace("&amp;", "&"))
        seen += re.findall(r"item (\d)", page.text)
        older = re.search(r'href="([^"]+)" rel="next"', page.text)
        href = "/queue" + older.group(1) if older else None
    assert seen == ["5", "3", "1"]
    newer = re.search(r'href="([^"]+)" rel="prev"', page.text)
    assert "number=608337726" in newer.group(1)
    back = client.get("/queue" + newer.group(1).replace("&amp;", "&"))
    assert re.findall(r"item (\d)", back.text) == ["5", "3"]
