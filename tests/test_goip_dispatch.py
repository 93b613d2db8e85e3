"""check_and_send end to end through a GoIP: [dispatcher] transport = goip, two lines, the
GoIP simulator's HTTP API for sending and node-smpp as its SMPP server for receiving;
one-shot passes as cron runs them."""

from __future__ import annotations

import pytest
from support_dispatch import site
from support_goip import running_goip
from support_smsc import Smsc, mo, require_node, ucs2

PHONE = "+420608337726"
LONG = "Dobrý den, tohle je dlouhá zpráva přes GoIP, která se nevejde do jedné SMS. " * 2


@pytest.fixture
def smsc():
    require_node()
    smsc = Smsc()
    smsc.set(users={"goip01": "pw", "goip02": "pw"})
    yield smsc
    smsc.close()


def test_sending_and_receiving_through_a_goip(tmp_path, smsc):
    with running_goip(send_seconds=0.05) as goip:
        settings = {"dispatcher": {"transport": "goip"},
                    "goip": {"url": goip.url, "lines": "1, 2", "poll_interval": "0.02",
                             "send_timeout": "10", "smpp_port": str(smsc.port),
                             "smpp_system_id": "goip", "smpp_password": "pw",
                             "spool": str(tmp_path / "goip-inbox")}}
        with site(tmp_path, modem=False, settings=settings) as s:
            first = s.enqueue(PHONE, "Ahoj z GoIP")
            second = s.enqueue("+420777123456", LONG, parts=2)
            goip.occupy(1, 0.3)  # someone else's job: ours must wait or take line 2
            done = s.run()
            assert done.returncode == 0, s.log()
            rows = s.rows("sms", "id, status, transport, refs, attempts")
            by_text = {job.text: job for job in goip.sent}
            assert rows == [
                (first, "sent", "goip:127.0.0.1/L1+L2", by_text["Ahoj z GoIP"].id, 1),
                (second, "sent", "goip:127.0.0.1/L1+L2", by_text[LONG].id, 1)]
            assert goip.lost == [] and s.rows("msg") == []

            smsc.deliver([mo(ucs2("Odpověď na L2: díky"), recipient="goip02")],
                         system_id="goip02")
            # cron's passes: the SMSC hands the message over once the pass has bound; if
            # that is after the pass read its inbox, the spool keeps it for the next one
            for _ in range(20):
                done = s.run()
                assert done.returncode == 0, s.log()
                if s.rows("rcv"):
                    break
            assert s.rows("rcv", "phone, text, transport") == [
                ("+420608337726", "Odpověď na L2: díky", "goip:127.0.0.1/L1+L2")]
            assert "came in on L2" in s.log()
            assert not (tmp_path / "goip-inbox.L2").read_text().strip()  # stored, then removed


def test_a_wrong_password_stops_the_pass_for_a_person(tmp_path):
    with running_goip(password="other") as goip:
        settings = {"dispatcher": {"transport": "goip"}, "goip": {"url": goip.url}}
        with site(tmp_path, modem=False, settings=settings) as s:
            s.enqueue(PHONE, "kept")
            done = s.run()
            assert done.returncode == 3, s.log()
            assert "check [goip] user and password" in s.log()
            assert s.rows("msg", "phone, attempts") == [(PHONE, 0)] and goip.accepted == []
