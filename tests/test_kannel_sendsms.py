"""``/cgi-bin/sendsms`` driven with the requests Kannel's user guide shows, against a real
`smss run` over HTTP on 127.0.0.1; dlr-urls reach a real local receiver with Kannel's
escapes filled in.

Sources (Kannel's own tree, doc/userguide/userguide.xml and gw/): the GET example
``/cgi-bin/sendsms?username=foo&password=bar&to=0123456&text=Hello+world`` ("Using the
HTTP interface to send SMS messages"), the "SMS Push reply codes" table (202 ``0:
Accepted for delivery``, 4xx, 503 ``Temporal failure, try again later.``), the "SMS Push
(send-sms) CGI Variables" and "X-Kannel Headers" tables, the answers of gw/smsbox.c
(``Authorization failed for sendsms``, ``Missing receiver number, rejected``, ...), the
"Parameters (Escape Codes)" table with gw/urltrans.c for the dlr-url, and gw/dlr.h for
the dlr-mask bits (1 delivered, 2 undelivered, 4 buffered, 8 SMSC ack, 16 SMSC nack).
"""

from __future__ import annotations

import time
from datetime import datetime
from urllib.parse import quote

import httpx
import pytest
from support_dispatch import site
from support_receiver import Receiver
from support_web import add_token, base_url, web_settings

from smss.events import kannel
from smss.store.database import connect


@pytest.fixture(params=["sqlite", "mysql"])
def web(request, server_factory, tmp_path):
    url = None
    if request.param == "mysql":
        url = request.getfixturevalue("mariadb").create_database()
    server = server_factory(url, web=web_settings(tmp_path))
    return server, base_url(server), add_token(server.config_path, "foo")


def _rows(server):
    conn = connect(server.db_url)
    try:
        return [tuple(r) for r in conn.read().query(
            "SELECT id, phone, text, client, route FROM msg ORDER BY id")]
    finally:
        conn.close()


# -- escapes (pure)


def _report(**changes):
    values = dict(type=1, answer="id:17 stat:DELIVRD", phone="+420608337726",
                  sender="00420777123456", smsc="modem:gsm1", message_id="17",
                  foreign_id="42", service="foo", time=datetime(1999, 9, 21, 14, 18, 5),
                  dlr_url="http://x/?a=%d")
    values.update(changes)
    return kannel.Report(**values)


def test_dlr_url_escapes_as_kannel_fills_them():
    # the user guide's example dlr-url (chapter on delivery reports of WAP push)
    pattern = ("http://193.53.0.56:8001/notification-dlr?smsc-id=%i&status=%d&answer=%A"
               "&to=%P&from=%p&ts=%t")
    assert kannel.fill(pattern, _report()) == (
        "http://193.53.0.56:8001/notification-dlr?smsc-id=modem%3Agsm1&status=1"
        "&answer=id%3A17+stat%3ADELIVRD&to=00420777123456&from=%2B420608337726"
        "&ts=1999-09-21+14:18:05")
    # %q/%Q turn a leading 00 into +; %T is the Unix time; %% a percent sign; %I %F %n
    assert kannel.fill("%q|%Q|%T|%%|%I|%F|%n", _report()) == (
        "%2B420608337726|%2B420777123456|937923485|%|17|42|foo")
    # words of the answer: %k the first, %s the next ones, %r the rest, %a all
    assert kannel.fill("%k/%s/%r/%a/%b", _report(answer="NACK/8 barred (x)")) == (
        "NACK%2F8/barred/(x)/NACK%2F8+barred+(x)/NACK%2F8+barred+(x)")
    # what smss has no value for is empty; an unknown escape stays; a lone % at the end too
    assert kannel.fill("a%Db%Bc%od%ue%#grp#param#f%zg%", _report()) == "abcdef%zg%"
    # octstr_url_encode keeps only letters, digits and -_.!~*'() as they are
    assert kannel.encode("a b&c=d/é-_.!~*'()") == "a+b%26c%3Dd%2F%C3%A9-_.!~*'()"


# -- sendsms


def test_the_user_guide_get_request_is_accepted_like_kannel(web):
    server, url, token = web
    with httpx.Client(base_url=url, timeout=30) as client:
        # verbatim, the guide's placeholder number is no number: refused like a bad field
        answer = client.get(f"/cgi-bin/sendsms?username=foo&password={quote(token)}"
                            "&to=0123456&text=Hello+world")
        assert answer.status_code == 400
        assert answer.text == "0123456: invalid phone number '0123456', rejected"
        answer = client.get(f"/cgi-bin/sendsms?username=foo&password={quote(token)}"
                            "&to=123456789&text=Hello+world")
        assert answer.status_code == 202 and answer.text == "0: Accepted for delivery"
        assert answer.headers["content-type"].startswith("text/html")
        # `user`/`pass` are Kannel's short names; `to` may list several numbers
        answer = client.get("/cgi-bin/sendsms", params={
            "user": "foo", "pass": token, "to": "608337726 +420777123456",
            "text": "Záloha selhala", "from": "12345"})
        assert answer.status_code == 202, answer.text
    ids = [int(i) for i in answer.headers["x-smss-id"].split(",")]
    rows = _rows(server)
    assert [(r[1], r[2]) for r in rows] == [
        ("+420123456789", "Hello world"), ("+420608337726", "Záloha selhala"),
        ("+420777123456", "Záloha selhala")]
    assert [r[0] for r in rows[1:]] == ids
    assert rows[0][3] == "kannel:foo@127.0.0.1"


def test_refusals_answer_like_kannel_and_store_nothing(web):
    server, url, token = web
    good = {"username": "foo", "password": token, "to": "608337726", "text": "x"}
    cases = [
        ({**good, "password": "bar"}, 403, "Authorization failed for sendsms"),
        ({**good, "username": "other"}, 403, "Authorization failed for sendsms"),
        ({"to": "608337726", "text": "x"}, 403, "Authorization failed for sendsms"),
        ({k: v for k, v in good.items() if k != "to"}, 400, "Missing receiver number, rejected"),
        ({**good, "to": ""}, 400, "Empty receiver number not allowed, rejected"),
        ({**good, "to": "608337726 12"}, 400, None),  # one bad number: nothing stored
        ({**good, "text": ""}, 400, None),
        ({**good, "coding": "1"}, 400, "8-bit (binary) messages are not supported, rejected"),
        ({**good, "coding": "7"}, 400, "Coding field misformed, rejected"),
        ({**good, "udh": "\x06\x05\x04\x0b\x84\x23\xf0"}, 400, None),
        ({**good, "dlr-mask": "abc"}, 400, "DLR-Mask field misformed, rejected"),
        ({**good, "dlr-mask": "64"}, 400, "DLR-Mask field misformed, rejected"),
        ({**good, "dlr-mask": "31", "dlr-url": "ftp://x/"}, 400,
         "DLR-URL field misformed, rejected"),
        ({**good, "charset": "no-such-charset"}, 400, "Charset or body misformed, rejected"),
        ({**good, "smsc": "nowhere"}, 400, None),  # no such transport to pin
    ]
    with httpx.Client(base_url=url, timeout=30) as client:
        for params, status, text in cases:
            answer = client.get("/cgi-bin/sendsms", params=params)
            assert answer.status_code == status, (params, answer.text)
            if text:
                assert answer.text == text, params
            else:
                assert answer.text.endswith(", rejected"), (params, answer.text)
        answer = client.post("/cgi-bin/sendsms", content=b"<sms/>", headers={
            "content-type": "text/xml", "x-kannel-username": "foo", "x-kannel-password": token,
            "x-kannel-to": "608337726"})
        assert answer.status_code == 415 and answer.text == "Unsupported content-type, rejected"
    assert _rows(server) == []


def test_charsets_and_codings(web):
    server, url, token = web
    auth = f"username=foo&password={quote(token)}&to=608337726"
    with httpx.Client(base_url=url, timeout=30) as client:
        # the default: UTF-8
        assert client.get(f"/cgi-bin/sendsms?{auth}&text=%C5%99%C3%AD").status_code == 202
        # charset names the text's encoding (ISO-8859-2: 0xF8 is ř)
        assert client.get(f"/cgi-bin/sendsms?{auth}&charset=ISO-8859-2&text=%F8%ED"
                          ).status_code == 202
        # coding=2 without charset: the text is UTF-16BE (Kannel's default for UCS-2)
        assert client.get(f"/cgi-bin/sendsms?{auth}&coding=2&text=%01%59%00%ED"
                          ).status_code == 202
        # coding=2 with a charset: converted from that charset
        assert client.get(f"/cgi-bin/sendsms?{auth}&coding=2&charset=UTF-8&text=%C5%99%C3%AD"
                          ).status_code == 202
    assert [r[2] for r in _rows(server)] == ["ří"] * 4


def test_post_as_a_form_and_as_kannel_does_it_with_x_kannel_headers(web):
    server, url, token = web
    with httpx.Client(base_url=url, timeout=30) as client:
        answer = client.post("/cgi-bin/sendsms", data={
            "username": "foo", "password": token, "to": "608337726", "text": "form body"})
        assert answer.status_code == 202 and answer.text == "0: Accepted for delivery"
        # gw/smsbox.c smsbox_sendsms_post: text/plain body, the rest in X-Kannel headers,
        # the charset from Content-Type
        answer = client.post("/cgi-bin/sendsms", content="Příliš žluťoučký".encode("cp1250"),
                             headers={"content-type": "text/plain; charset=windows-1250",
                                      "x-kannel-username": "foo", "x-kannel-password": token,
                                      "x-kannel-to": "777123456", "x-kannel-from": "12345"})
        assert answer.status_code == 202, answer.text
        answer = client.post("/cgi-bin/sendsms", content=b"\x00\x01", headers={
            "content-type": "application/octet-stream", "x-kannel-username": "foo",
            "x-kannel-password": token, "x-kannel-to": "777123456"})
        assert answer.status_code == 400  # an octet-stream body is 8-bit data
    assert [(r[1], r[2]) for r in _rows(server)] == [
        ("+420608337726", "form body"), ("+420777123456", "Příliš žluťoučký")]


def test_storage_unavailable_is_kannels_temporary_failure(server_factory, tmp_path):
    import sqlite3

    server = server_factory(web=web_settings(tmp_path))
    url, token = base_url(server), add_token(server.config_path, "foo")
    db = sqlite3.connect(server.db_url[len("sqlite://"):])
    db.execute("CREATE TRIGGER refuse BEFORE INSERT ON msg BEGIN"
               " SELECT RAISE(ABORT, 'the disk is full'); END")
    db.commit()
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            answer = client.get("/cgi-bin/sendsms", params={
                "username": "foo", "password": token, "to": "608337726", "text": "x",
                "dlr-mask": "31", "dlr-url": "http://127.0.0.1:9/dlr"})
        assert answer.status_code == 503 and answer.text == "Temporal failure, try again later."
        assert db.execute("SELECT COUNT(*) FROM dlr_request").fetchone()[0] == 0
    finally:
        db.close()


def _smss_run(s, tmp_path, **sections):
    from conftest import ServerProcess

    folder = tmp_path / "server"
    folder.mkdir()
    settings = {"web": web_settings(folder), "outbox": {"poll_interval": "0.1",
                                                         "retry_delay": "0.2"}}
    settings.update(sections)
    server = ServerProcess(folder, s.db_url, settings)
    server.start()
    return server


def _wait(condition, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_dlr_url_is_called_for_each_report_the_mask_asks_for(tmp_path):
    with Receiver(path="/dlr") as receiver, site(tmp_path, status_report_delay=0.05) as s:
        server = _smss_run(s, tmp_path)
        try:
            url, token = base_url(server), add_token(server.config_path, "foo")
            dlr = (f"{receiver.url}?type=%d&answer=%A&to=%p&from=%P&smsc=%i&id=%I&ref=%F"
                   "&user=%n&ts=%T")
            with httpx.Client(base_url=url, timeout=30) as client:
                # one the SIM refuses for good (+CMS ERROR 1: unassigned number): sent first
                refused = client.get("/cgi-bin/sendsms", params={
                    "username": "foo", "password": token, "to": "777123456", "text": "nope",
                    "dlr-mask": "16", "dlr-url": f"{receiver.url}?type=%d&answer=%A&id=%I"})
                assert refused.status_code == 202
                answer = client.get("/cgi-bin/sendsms", params={
                    "username": "foo", "password": token, "to": "608337726", "from": "Alerts",
                    "text": "report me", "dlr-mask": "31", "dlr-url": dlr})
                assert answer.status_code == 202
                message_id = answer.headers["x-smss-id"]
                # a mask without 8 or 16: no call for the sending itself
                quiet = client.get("/cgi-bin/sendsms", params={
                    "username": "foo", "password": token, "to": "608337726", "text": "quiet",
                    "dlr-mask": "1", "dlr-url": f"{receiver.url}?type=%d&id=%I"})
            s.sim.control.set_fault("cms_error", code=1, count=1)
            assert s.run().returncode == 0, s.log()  # the first fails for good, two are sent

            def delivered():  # a pass applies the reports the SIM holds by then
                assert s.run().returncode == 0, s.log()
                return [row[0] for row in s.rows("sms", "delivery", "WHERE status = 'sent'")
                        ] == ["delivered", "delivered"]

            _wait(delivered, "both sent messages delivered")
            receiver.wait_for(lambda r: len(r.ok()) >= 4, what="four dlr-url calls")
            time.sleep(0.5)  # nothing more may come (a wrong mask would add calls)
            calls = {(r.param("id"), r.param("type")): r for r in receiver.ok()}
            quiet_id = quiet.headers["x-smss-id"]
            refused_id = refused.headers["x-smss-id"]
            assert sorted(calls) == sorted([(message_id, "8"), (message_id, "1"),
                                            (refused_id, "16"), (quiet_id, "1")])
            acked = calls[(message_id, "8")]
            assert acked.param("answer") == "ACK/" and acked.param("to") == "+420608337726"
            assert acked.param("from") == "Alerts" and acked.param("user") == "foo"
            assert acked.param("smsc") and acked.param("ref")
            assert abs(int(acked.param("ts")) - time.time()) < 3600
            assert calls[(message_id, "1")].param("answer") == "Success"
            assert calls[(refused_id, "16")].param("answer").startswith("NACK/")
            assert all(r.method == "GET" for r in receiver.ok())
        finally:
            server.stop()
