"""Roles and actions over real HTTP against `smss run`: what an admin, an operator
and a viewer may do on the pages and through the API, CSRF on every action, the
audit trail naming who acted, `smss user` / `smss token` with roles, and the CSV
export with the page's filters."""

from __future__ import annotations

import csv
import io
import re

import httpx
import pytest
from support_web import (
    PASSWORD,
    add_token,
    add_user,
    api,
    base_url,
    csrf_of,
    login,
    smss,
    web_settings,
)

from smss import cli
from smss.store import accounts, audit, received, sent, transports
from smss.store import queue as msg_table
from smss.store.database import connect


def _db(server):
    return connect(server.db_url)


def _seed(server):
    """Two queued messages, one failed, one received; a transport that reported."""
    conn = _db(server)
    try:
        with conn.transaction():
            queued = msg_table.insert(conn, [
                msg_table.NewMessage("+420608337726", "queued one"),
                msg_table.NewMessage("+420608337726", "queued two"),
                msg_table.NewMessage("+420777123456", "will fail")])
        failing = {m.id: m for m in msg_table.claim(conn, "host:1", 3)}[queued[2]]
        msg_table.release(conn, queued[:2])
        with conn.transaction():
            sent.record(conn, failing, sent.FAILED, attempts=5, transport="gsm1",
                        error="+CMS ERROR: 38")
            msg_table.delete(conn, failing.id)
            rcv = received.insert(conn, received.Incoming("+420777123456", "STAV"))
        transports.save(conn, "gsm1", "ok", signal_dbm=-70)
        return queued[0], queued[1], failing.id, rcv
    finally:
        conn.close()


@pytest.fixture
def web(server_factory, tmp_path):
    server = server_factory(web=web_settings(tmp_path))
    add_user(server.config_path, "root")  # the first user: admin
    add_user(server.config_path, "dana")  # then: operator
    result = smss(server.config_path, "user", "add", "noc", "--role", "viewer",
                  stdin=PASSWORD + "\n")
    assert result.returncode == 0 and "(viewer)" in result.stdout, result.stderr
    return server, base_url(server), _seed(server)


def _post(client, path, **data):
    page = client.get("/")
    return client.post(path, data=dict(data, csrf=csrf_of(page.text)))


def test_the_commands_give_roles(tmp_path, server_factory):
    server = server_factory(web=web_settings(tmp_path))
    config = server.config_path
    assert cli.ROLES == accounts.ROLES
    first = smss(config, "user", "add", "root", stdin=PASSWORD + "\n")
    assert first.returncode == 0 and "created user root (admin)" in first.stdout
    second = smss(config, "user", "add", "dana", stdin=PASSWORD + "\n")
    assert second.returncode == 0 and "(operator)" in second.stdout
    assert smss(config, "user", "add", "x", "--role", "boss", stdin=PASSWORD + "\n"
                ).returncode == 2
    assert smss(config, "user", "role", "dana", "viewer").returncode == 0
    assert smss(config, "user", "role", "nobody", "viewer").returncode == 1
    assert smss(config, "user", "list").stdout.splitlines()[0].startswith("dana\tviewer\t")
    assert smss(config, "user", "passwd", "dana", stdin="new password!\n").returncode == 0
    assert "dana\tviewer\t" in smss(config, "user", "list").stdout  # the role stays
    token = smss(config, "token", "add", "grafana", "--role", "viewer")
    assert token.returncode == 0 and "(viewer)" in token.stderr
    assert smss(config, "token", "list").stdout.startswith("grafana\tviewer\t")
    conn = _db(server)
    try:
        trail = [(r["actor"].split(":")[0], r["action"], r["target"])
                 for r in reversed(audit.page(conn).rows)]
    finally:
        conn.close()
    assert trail == [("cli", "user add", "user root"), ("cli", "user add", "user dana"),
                     ("cli", "user role", "user dana"), ("cli", "user password", "user dana"),
                     ("cli", "token add", "token grafana")]


def test_what_each_role_may_do_on_the_pages(web):
    server, url, (first, second, failed, rcv) = web
    viewer, operator, admin = login(url, "noc"), login(url, "dana"), login(url, "root")
    for path in ("/", "/queue", "/sent", "/received", f"/message/{first}",
                 f"/received/{rcv}", "/transports/gsm1", "/queue.csv"):
        assert viewer.get(path).status_code == 200, path
    home = viewer.get("/").text
    assert 'href="/send"' not in home and "Pause" not in home and 'href="/users"' not in home
    assert "Cancel this message" not in viewer.get(f"/message/{first}").text
    for path in ("/send", "/users", "/tokens", "/audit"):
        answer = viewer.get(path)
        assert answer.status_code == 403 and "needs the role" in answer.text, path
    refused = [_post(viewer, f"/message/{first}/cancel"), _post(viewer, f"/message/{failed}/retry"),
               _post(viewer, f"/received/{rcv}/reply", text="x"),
               _post(viewer, "/received/delete", id=str(rcv), confirm="yes"),
               _post(viewer, "/send", numbers="608337726", text="x"),
               _post(viewer, "/transports/gsm1/pause")]
    assert [r.status_code for r in refused] == [403] * 6
    assert [r[2] for r in server.queued()] == ["queued one", "queued two"]

    assert "Cancel this message" in operator.get(f"/message/{first}").text
    cancelled = _post(operator, f"/message/{first}/cancel")
    assert cancelled.status_code == 303
    assert "cancelled: it will not be sent" in operator.get(cancelled.headers["location"]).text
    retried = _post(operator, f"/message/{failed}/retry")
    assert retried.status_code == 303
    new_id = int(retried.headers["location"].rsplit("/", 1)[1])
    page = operator.get(f"/message/{new_id}").text
    assert f"queued again as {new_id}" in page and f'href="/message/{failed}"' in page
    assert _post(operator, "/transports/gsm1/pause").status_code == 403
    assert operator.get("/users").status_code == 403

    assert _post(admin, "/transports/gsm1/pause").status_code == 303
    assert "paused: the dispatcher sends nothing" in admin.get("/transports/gsm1").text
    assert _post(admin, "/transports/gsm1/pause").status_code == 303  # already: no change
    assert _post(admin, "/transports/nowhere/pause").status_code == 404
    assert _post(admin, "/transports/gsm1/resume").status_code == 303
    trail = admin.get("/audit").text
    for actor, action in (("web:dana", "cancel"), ("web:dana", "retry"), ("web:root", "pause"),
                          ("web:root", "resume")):
        assert re.search(rf"{actor}</td>\s*<td[^>]*>{action}<", trail), (actor, action)
    assert len(re.findall(r">pause<", trail)) == 1


def test_every_action_needs_the_forms_csrf_token(web):
    server, url, (first, second, failed, rcv) = web
    admin = login(url, "root")
    for path, data in ((f"/message/{first}/cancel", {}), (f"/message/{failed}/retry", {}),
                       (f"/received/{rcv}/reply", {"text": "x"}),
                       ("/received/delete", {"id": str(rcv), "confirm": "yes"}),
                       ("/transports/gsm1/pause", {}), ("/users", {"name": "eve",
                        "role": "admin", "password": PASSWORD, "again": PASSWORD}),
                       ("/users/dana/role", {"role": "admin"}),
                       ("/users/dana/delete", {"confirm": "yes"}),
                       ("/tokens", {"name": "t", "role": "admin"}),
                       ("/logout", {})):
        for token in (None, "forged"):
            answer = admin.post(path, data=dict(data, **({"csrf": token} if token else {})))
            assert answer.status_code == 403 and "Form expired" in answer.text, path
    conn = _db(server)
    try:
        assert msg_table.get(conn, first) is not None and received.get(conn, rcv) is not None
        assert [r["actor"] for r in audit.page(conn).rows if not r["actor"].startswith(
            "cli:")] == []  # only the fixture's `smss user add`
        assert transports.get(conn, "gsm1").paused_at is None
    finally:
        conn.close()


def test_delete_asks_first_and_reply_goes_to_the_sender(web):
    server, url, (first, second, failed, rcv) = web
    operator = login(url, "dana")
    ask = _post(operator, "/received/delete", id=str(rcv), back="/received?text=STAV")
    assert ask.status_code == 200 and "Delete 1 received message?" in ask.text
    assert "STAV" in ask.text
    assert received.get(_db(server), rcv) is not None  # nothing deleted yet
    done = operator.post("/received/delete", data={"csrf": csrf_of(ask.text), "id": str(rcv),
                                                   "confirm": "yes", "back": "/received?text=STAV"})
    assert done.status_code == 303 and done.headers["location"] == "/received?text=STAV"
    assert "Deleted 1 received message." in operator.get("/received").text
    assert received.get(_db(server), rcv) is None
    conn = _db(server)
    try:
        with conn.transaction():
            other = received.insert(conn, received.Incoming("+420731000111", "Kdy přijdeš?"))
    finally:
        conn.close()
    replied = _post(operator, f"/received/{other}/reply", text="Za hodinu.\r\nDana")
    assert replied.status_code == 303
    assert server.queued()[-1][1:] == ("+420731000111", "Za hodinu.\nDana")
    empty = _post(operator, f"/received/{other}/reply", text="   ")
    assert empty.status_code == 303
    assert "Reply not sent: ERR 422 empty text" in operator.get(empty.headers["location"]).text


def test_an_admin_manages_users_and_tokens_in_the_browser_forms(web):
    server, url, _ = web
    admin = login(url, "root")
    made = _post(admin, "/users", name="eve", role="viewer", password=PASSWORD, again=PASSWORD)
    assert made.status_code == 303 and "User eve (viewer) created." in admin.get("/users").text
    eve = login(url, "eve")
    assert eve.get("/").status_code == 200 and eve.get("/send").status_code == 403
    assert _post(admin, "/users/eve/role", role="operator").status_code == 303
    assert eve.get("/send").status_code == 200  # the role counts at once
    assert _post(admin, "/users/eve/password", password="another one", again="another one"
                 ).status_code == 303
    assert eve.get("/send").status_code == 303  # the new password ended eve's login
    last = _post(admin, "/users/root/role", role="viewer")
    assert "root is the last admin" in admin.get(last.headers["location"]).text
    confirm = _post(admin, "/users/eve/delete")
    assert confirm.status_code == 200 and "Delete the user eve?" in confirm.text
    assert _post(admin, "/users/eve/delete", confirm="yes").status_code == 303
    assert "eve" not in [u.name for u in accounts.users(_db(server))]

    page = _post(admin, "/tokens", name="grafana", role="viewer")
    token = re.search(r'<code id="new-token" class="token">([^<]+)</code>', page.text).group(1)
    assert "shown only this once" in page.text and "set-cookie" not in page.headers
    with api(url, token) as client:
        assert client.get("/api/v1/received").status_code == 200
        assert client.post("/api/v1/messages", json={"messages": [
            {"phone": "608337726", "text": "x"}]}).status_code == 403  # a viewer token
    assert token not in admin.get("/tokens").text  # shown once
    assert _post(admin, "/tokens/grafana/delete", confirm="yes").status_code == 303
    with api(url, token) as client:
        assert client.get("/api/v1/received").status_code == 401


def test_the_api_actions_and_token_roles(web):
    server, url, (first, second, failed, rcv) = web
    viewer = smss(server.config_path, "token", "add", "grafana", "--role", "viewer").stdout.strip()
    operator = add_token(server.config_path, "nagios")  # the default role: operator
    admin = smss(server.config_path, "token", "add", "ops", "--role", "admin").stdout.strip()
    with api(url, viewer) as client:
        assert client.post(f"/api/v1/messages/{first}/cancel").status_code == 403
        kannel = client.get("/cgi-bin/sendsms", params={  # Kannel's door: a viewer cannot send
            "username": "grafana", "password": viewer, "to": "608337726", "text": "x"})
        assert kannel.status_code == 403 and "Authorization failed" in kannel.text
        assert client.delete(f"/api/v1/received/{rcv}").status_code == 403
        listed = client.get("/api/v1/transports").json()
        assert [(t["name"], t["paused"], t["signal_dbm"]) for t in listed] == [
            ("gsm1", False, -70)]
    with api(url, operator) as client:
        answer = client.post(f"/api/v1/messages/{first}/cancel")
        assert answer.status_code == 200 and answer.json() == {"id": first, "state": "cancelled"}
        assert client.get(f"/api/v1/messages/{first}").json()["state"] == "cancelled"
        again = client.post(f"/api/v1/messages/{first}/cancel")
        assert again.status_code == 409 and "not queued any more" in again.json()["error"]
        assert client.post("/api/v1/messages/424242/cancel").status_code == 404
        retried = client.post(f"/api/v1/messages/{failed}/retry")
        assert retried.status_code == 200
        new_id = retried.json()["id"]
        assert retried.json()["retry_of"] == failed
        assert client.get(f"/api/v1/messages/{failed}").json()["retried_as"] == new_id
        assert client.get(f"/api/v1/messages/{new_id}").json()["retry_of"] == failed
        assert client.post(f"/api/v1/messages/{failed}/retry").status_code == 409
        reply = client.post(f"/api/v1/received/{rcv}/reply", json={"text": "Beru"})
        assert reply.status_code == 200 and reply.json()["reply"].startswith("OK ")
        bad = client.post(f"/api/v1/received/{rcv}/reply", json={"txt": "Beru"})
        assert bad.status_code == 400 and "cannot read the request" in bad.json()["error"]
        assert client.delete(f"/api/v1/received/{rcv}").json() == {"id": rcv, "deleted": True}
        assert client.delete(f"/api/v1/received/{rcv}").status_code == 404
        assert client.post("/api/v1/transports/gsm1/pause").status_code == 403
    with api(url, admin) as client:
        paused = client.post("/api/v1/transports/gsm1/pause")
        assert paused.status_code == 200 and paused.json()["paused"] is True
        assert paused.json()["paused_by"] == "api:ops"
        assert client.post("/api/v1/transports/nowhere/pause").status_code == 404
        assert client.post("/api/v1/transports/gsm1/resume").json()["paused"] is False
    conn = _db(server)
    try:
        trail = [(r["actor"], r["action"]) for r in reversed(audit.page(conn).rows)
                 if r["actor"].startswith("api:")]
    finally:
        conn.close()
    assert trail == [("api:nagios", "cancel"), ("api:nagios", "retry"), ("api:nagios", "reply"),
                     ("api:nagios", "delete"), ("api:ops", "pause"), ("api:ops", "resume")]


def test_the_csv_export_has_the_pages_filters(web):
    server, url, (first, second, failed, rcv) = web
    with httpx.Client(base_url=url, timeout=30) as stranger:
        assert stranger.get("/sent.csv").status_code == 303
    viewer = login(url, "noc")
    answer = viewer.get("/queue.csv", params={"text": "two"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert re.match(r'attachment; filename="smss-queue-\d{8}-\d{4}\.csv"',
                    answer.headers["content-disposition"])
    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert [(r["id"], r["text"], r["state"]) for r in rows] == [(str(second), "queued two", "due")]
    rows = list(csv.DictReader(io.StringIO(viewer.get("/sent.csv", params={
        "status": "failed"}).content.decode("utf-8-sig"))))
    assert [(r["id"], r["status"], r["error"], r["transport"]) for r in rows] == [
        (str(failed), "failed", "'+CMS ERROR: 38", "gsm1")]  # a spreadsheet would run it
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$", rows[0]["sent_at"])
    assert viewer.get("/received.csv", params={"to": "9999-12-31"}).status_code == 400
    assert 'href="/sent.csv?status=failed"' in viewer.get("/sent?status=failed").text
