"""The manual's webhook verification snippets (Python, and shell with openssl) accept a
request smss really posted and refuse it tampered with or replayed."""

from __future__ import annotations

import os
import re
import subprocess

from conftest import REPO
from support_receiver import Receiver
from support_tools import missing

from smss.config import parse_text
from smss.events.record import Events
from smss.events.worker import DeliveryWorker
from smss.store import migrations, received
from smss.store.database import connect

PAGE = open(os.path.join(REPO, "docs", "integrations.md"), encoding="utf-8").read()
SECRET = "a-long-random-string-the-receiver-knows-too"


def snippet(language: str) -> str:
    blocks = re.findall(rf"```{language}\n(# verify an smss webhook.*?)```", PAGE, re.S)
    assert len(blocks) == 1, language
    return blocks[0]


def posted(tmp_path):
    """One request as smss posts it, caught by a real receiver."""
    db_url = f"sqlite://{tmp_path}/smss.db"
    conn = connect(db_url)
    migrations.prepare(conn)
    with Receiver() as receiver:
        config = parse_text(f"[database]\nurl = {db_url}\n[webhook:app]\nurl = {receiver.url}\n"
                            f"secret = {SECRET}\n[outbox]\npoll_interval = 0.05\n")
        with conn.transaction():
            Events.from_config(config).received(conn, 1, received.Incoming(
                "+420777123456", "Příliš žluťoučký kůň; \"quotes\" and\nlines"))
        conn.close()
        worker = DeliveryWorker(config)
        worker.start()
        try:
            receiver.wait_for(lambda r: len(r.ok()) == 1, what="the event")
        finally:
            worker.stop()
    return receiver.ok()[0]


def test_the_python_snippet_verifies_a_real_request(tmp_path):
    request = posted(tmp_path)
    scope: dict = {}
    exec(compile(snippet("python"), "integrations.md", "exec"), scope)  # noqa: S102
    verify = scope["verify"]
    stamp, signature = request.headers["x-smss-timestamp"], request.headers["x-smss-signature"]
    assert verify(SECRET.encode(), stamp, request.body, signature)
    changed = request.body.replace("kůň".encode(), b"kun")
    assert not verify(SECRET.encode(), stamp, changed, signature)
    assert not verify(b"wrong secret", stamp, request.body, signature)
    assert not verify(SECRET.encode(), str(int(stamp) - 3600), request.body, signature)


def test_the_shell_snippet_verifies_a_real_request(tmp_path):
    if not os.path.exists("/usr/bin/openssl"):
        missing("openssl is not installed (apt-get install openssl)")
    request = posted(tmp_path)
    body = tmp_path / "body.json"
    body.write_bytes(request.body)
    tampered = tmp_path / "tampered.json"
    tampered.write_bytes(request.body + b"\n")
    stamp, signature = request.headers["x-smss-timestamp"], request.headers["x-smss-signature"]

    def check(path, stamp=stamp, secret=SECRET) -> int:
        script = snippet("sh") + '\nverify "$1" "$2" "$3"\n'
        return subprocess.run(["sh", "-c", script, "verify", str(path), stamp, signature],
                              env=dict(os.environ, SMSS_WEBHOOK_SECRET=secret),
                              timeout=30).returncode

    assert check(body) == 0
    assert check(tampered) != 0
    assert check(body, secret="wrong secret") != 0
    assert check(body, stamp=str(int(stamp) - 3600)) != 0
