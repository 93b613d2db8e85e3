"""Sessions and the doors around them, over real HTTP against `smss run`: a logout
ends the session on the server, a login lasts `session_hours` without use, the
login throttle counts a try before the password is checked (per address and per
account), nothing a stranger sends reaches code that can fail, and cookies are
Secure (with HSTS) behind a TLS proxy listed in `trusted_proxies`."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import httpx
import pytest
from support_web import PASSWORD, add_user, base_url, csrf_of, login, smss, web_settings

from smss.store import queue as msg_table
from smss.store.database import connect, utcnow


@pytest.fixture
def web(server_factory, tmp_path):
    server = server_factory(web=web_settings(tmp_path))
    add_user(server.config_path, "alice")
    return server, base_url(server)


def test_a_cookie_copied_before_logout_gets_the_login_page_afterwards(web):
    server, url = web
    client = login(url, "alice")
    copied = client.cookies.get("smss_session")
    page = client.get("/queue")
    assert page.status_code == 200
    assert client.post("/logout", data={"csrf": csrf_of(page.text)}).status_code == 303
    with httpx.Client(base_url=url, timeout=30, cookies={"smss_session": copied}) as replay:
        answer = replay.get("/queue")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


def test_a_password_change_or_a_deleted_user_ends_the_sessions(web):
    server, url = web
    first, second = login(url, "alice"), login(url, "alice")
    result = smss(server.config_path, "user", "passwd", "alice", stdin="another password\n")
    assert result.returncode == 0, result.stderr
    assert first.get("/queue").status_code == 303 and second.get("/queue").status_code == 303
    third = login(url, "alice", "another password")
    assert third.get("/queue").status_code == 200
    assert smss(server.config_path, "user", "delete", "alice").returncode == 0
    assert third.get("/queue").status_code == 303


def test_a_login_lasts_session_hours_without_use_not_from_the_login(server_factory, tmp_path):
    # 0.004 h = 14.4 s: a client active every second for 20 s stays logged in.
    server = server_factory(web=web_settings(tmp_path, session_hours="0.004"))
    add_user(server.config_path, "alice")
    url = base_url(server)
    client = login(url, "alice")
    started = time.monotonic()
    while time.monotonic() - started < 20:
        answer = client.get("/queue")
        assert answer.status_code == 200, f"logged out after {time.monotonic() - started:.1f} s"
        time.sleep(1)
    # Idle for longer than session_hours (the last use moved back in the database).
    conn = connect(server.db_url)
    try:
        with conn.transaction():
            conn.execute("UPDATE web_session SET last_seen_at = ?",
                         (utcnow() - timedelta(seconds=15),)).close()
    finally:
        conn.close()
    answer = client.get("/queue")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


def _try_login(url, name, password, forwarded_for=None):
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    with httpx.Client(base_url=url, timeout=60, headers=headers) as client:
        token = csrf_of(client.get("/login").text)
        return client.post("/login", data={"name": name, "password": password,
                                           "csrf": token}).status_code


def test_parallel_wrong_passwords_get_no_more_checks_than_the_budget(server_factory, tmp_path):
    server = server_factory(web=web_settings(tmp_path, max_login_failures="5"))
    add_user(server.config_path, "alice")
    url = base_url(server)
    answers = []
    gate = threading.Barrier(40)

    def attempt(number):
        with httpx.Client(base_url=url, timeout=120) as client:
            token = csrf_of(client.get("/login").text)
            gate.wait()
            answers.append(client.post("/login", data={
                "name": "alice", "password": f"wrong {number}", "csrf": token}).status_code)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(set(answers)) == [401, 429]
    assert answers.count(401) == 5, answers
    assert _try_login(url, "alice", PASSWORD) == 429  # the budget is spent


def test_the_throttle_limits_each_address_and_each_account(server_factory, tmp_path):
    server = server_factory(web=web_settings(tmp_path, max_login_failures="3",
                                             trusted_proxies="127.0.0.1"))
    add_user(server.config_path, "alice")
    add_user(server.config_path, "bob")
    url = base_url(server)
    # one account from many addresses
    for number in range(3):
        assert _try_login(url, "alice", "guess", f"192.0.2.{number + 1}") == 401
    assert _try_login(url, "alice", PASSWORD, "192.0.2.50") == 429
    assert _try_login(url, "bob", PASSWORD, "192.0.2.1") == 303  # bob and that address: fine
    # one address trying many accounts
    for name in ("carol", "dave", "erin"):
        assert _try_login(url, name, "guess", "198.51.100.7") == 401
    assert _try_login(url, "bob", PASSWORD, "198.51.100.7") == 429
    assert _try_login(url, "bob", PASSWORD, "198.51.100.8") == 303


STRANGER_REQUESTS = [
    ("GET", "/sent?to=9999-12-31"),
    ("GET", "/sent?from=0001-01-01"),
    ("GET", "/queue?before=99991231235959999999-9999999999999999999"),
    ("GET", "/received?after=00010101000000000000-0"),
    ("GET", "/message/abc"),
    ("GET", "/message/99999999999999999999999"),
    ("GET", "/received/-1"),
]


def test_a_stranger_gets_the_login_page_whatever_the_input(web):
    server, url = web
    with httpx.Client(base_url=url, timeout=30) as client:
        for method, path in STRANGER_REQUESTS:
            answer = client.request(method, path)
            assert answer.status_code == 303, (path, answer.status_code, answer.text[:300])
            assert answer.headers["location"].startswith("/login")
        form = client.post("/send", content=b"\xff\xfe garbage",
                           headers={"content-type": "multipart/form-data; boundary=x"})
        assert form.status_code == 303, form.text[:300]
    assert " 500 " not in server.log() and "Traceback" not in server.log()


def test_bad_input_after_login_is_a_400_that_says_why(web):
    server, url = web
    conn = connect(server.db_url)
    try:
        with conn.transaction():
            msg_table.insert(conn, [msg_table.NewMessage("+420608337726", "queued")])
    finally:
        conn.close()
    client = login(url, "alice")
    for path, why in (("/sent?to=9999-12-31", "out of range"),
                      ("/queue?before=99991231235959999999-9999999999999999999", "page link"),
                      ("/received?after=00010101000000000000-0", "page link"),
                      ("/sent?status=bogus", "unknown state"),
                      ("/message/abc", "message_id")):
        answer = client.get(path)
        assert answer.status_code == 400, (path, answer.status_code)
        assert why in answer.text, (path, answer.text[-800:])
    assert client.get("/queue").status_code == 200
    assert " 500 " not in server.log() and "Traceback" not in server.log()


def test_the_api_checks_the_token_before_it_reads_the_body(web):
    server, url = web
    with httpx.Client(base_url=url, timeout=30) as client:
        for body in (b"{not json", b'{"messages": []}', b"x" * 1000):
            answer = client.post("/api/v1/messages", content=body,
                                 headers={"content-type": "application/json"})
            assert answer.status_code == 401, (body[:20], answer.status_code)
            answer = client.post("/api/v1/messages", content=body, headers={
                "content-type": "application/json", "authorization": "Bearer nonsense"})
            assert answer.status_code == 401


def test_behind_a_trusted_tls_proxy_cookies_are_secure_and_hsts_is_sent(server_factory,
                                                                       tmp_path):
    server = server_factory(web=web_settings(tmp_path, trusted_proxies="127.0.0.1"))
    add_user(server.config_path, "alice")
    url = base_url(server)
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    with httpx.Client(base_url=url, timeout=30, headers=proxied) as client:
        form = client.get("/login")
        assert form.headers["strict-transport-security"].startswith("max-age=")
        first = form.headers["set-cookie"]
        assert "; secure" in first.lower()
        # httpx keeps a Secure cookie for https only: hand it back as the browser would
        answer = client.post("/login", data={"name": "alice", "password": PASSWORD,
                                             "csrf": csrf_of(form.text)},
                             headers={"cookie": first.split(";", 1)[0]})
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"].lower()
        assert "; secure" in cookie and "httponly" in cookie
    with httpx.Client(base_url=url, timeout=30) as plain:  # plain HTTP on the loopback
        form = plain.get("/login")
        assert "strict-transport-security" not in form.headers
        answer = plain.post("/login", data={"name": "alice", "password": PASSWORD,
                                            "csrf": csrf_of(form.text)})
        assert "; secure" not in answer.headers["set-cookie"].lower()
