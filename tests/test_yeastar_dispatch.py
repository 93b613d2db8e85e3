"""check_and_send end to end through a Yeastar TG named in a [transport:NAME] section:
``--loop`` holding the AMI session (sending, delivery status, receiving as events come,
a dropped connection), and a one-shot pass over WebCGI."""

from __future__ import annotations

import signal
import time

from support_dispatch import site
from support_yeastar import running_yeastar

PHONE = "+420608337726"


def until(condition, timeout: float = 30.0):
    """Poll ``condition`` until it is true (a safety net, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_loop_sends_tracks_delivery_and_receives(tmp_path):
    with running_yeastar() as tg:
        settings = {"dispatcher": {"poll_interval": "0.2"},
                    "transport:tg": {"type": "yeastar", "ami": tg.ami_address,
                                     "account": "apiuser", "password": "s3cret", "ports": "2",
                                     "timezone": "UTC", "reconnect_delay": "0.05",
                                     "spool": str(tmp_path / "tg-inbox")}}
        with site(tmp_path, modem=False, settings=settings) as s:
            s.write_config()
            loop = s.start("--loop")
            try:
                message = s.enqueue(PHONE, "Ahoj přes Yeastar")
                assert until(lambda: s.rows("sms", "status", f"WHERE id = {message}")), s.log()
                [(status, transport, refs)] = s.rows("sms", "status, transport, refs")
                [sent] = tg.sent
                assert (status, transport, refs) == ("sent", "tg", sent.id)
                assert (sent.via, sent.port, sent.text) == ("ami", 2, "Ahoj přes Yeastar")
                assert until(lambda: s.rows("sms", "delivery") == [("delivered",)]), s.log()

                tg.wait_listening()
                assert tg.receive(2, "+79991234567", "Ку-ку, как дела? " * 10, parts=2) == 1
                assert until(lambda: s.rows("rcv")), s.log()
                assert s.rows("rcv", "phone, text, parts, transport, sent_at") == [
                    ("+79991234567", "Ку-ку, как дела? " * 10, 2, "tg",
                     "2016-07-15 17:49:55.000000")]

                tg.drop()  # the loop reconnects and keeps listening
                assert until(lambda: tg.logins >= 2 and tg.listening()), s.log()
                tg.receive(2, "+420777123456", "Po výpadku")
                assert until(lambda: len(s.rows("rcv")) == 2), s.log()
            finally:
                loop.send_signal(signal.SIGTERM)
                assert loop.wait(30) == 0
            assert s.rows("rcv", "text", "WHERE id = 2") == [("Po výpadku",)]
            assert "AMI link down" in s.log()


def test_one_shot_pass_over_webcgi(tmp_path):
    with running_yeastar() as tg:
        settings = {"transport:tg-web": {"type": "yeastar", "url": tg.url,
                                         "account": "apiuser", "password": "s3cret"}}
        with site(tmp_path, modem=False, settings=settings) as s:
            s.write_config()
            s.enqueue(PHONE, "Přes WebCGI")
            done = s.run()
            assert done.returncode == 0, s.log()
            assert s.rows("sms", "status, transport, refs, delivery") == [
                ("sent", "tg-web", "", None)]
            assert [(t.via, t.port, t.number, t.text) for t in tg.sent] == [
                ("webcgi", 1, PHONE, "Přes WebCGI")]


def test_sigterm_during_a_rate_limit_wait_stops_at_once_and_leaves_no_claim(tmp_path):
    with running_yeastar() as tg:
        settings = {"transport:tg-web": {"type": "yeastar", "url": tg.url, "rate_limit": "1",
                                         "account": "apiuser", "password": "s3cret"}}
        with site(tmp_path, modem=False, settings=settings) as s:
            s.write_config()
            first = s.enqueue(PHONE, "first")
            second = s.enqueue(PHONE, "second: waits a minute for the rate limit")
            pass_ = s.start()
            try:
                assert until(lambda: "rate limit: 1 SMS in the last minute" in s.log()), s.log()
                pass_.send_signal(signal.SIGTERM)
                assert pass_.wait(30) == 0  # within the minute: it did not wait it out
            finally:
                if pass_.poll() is None:
                    pass_.kill()
                    pass_.wait()
            assert s.rows("sms", "id, status") == [(first, "sent")]
            assert s.rows("msg", "id, attempts, claimed_by, send_started_at") == [
                (second, 0, None, None)]
            assert [t.text for t in tg.sent] == ["first"]
