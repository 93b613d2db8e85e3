"""The Yeastar transport against the TG simulator (real WebCGI and AMI servers): sending by
WebCGI and AMI, delivery status, receiving (Czech, Cyrillic, multipart, other ports, the
spool across processes), wrong password, malformed answers, a dropped and a hung AMI
connection, and USSD both ways."""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import datetime
from typing import Iterator

import pytest
from support_yeastar import YeastarSim, running_yeastar

from smss import transports
from smss.config import parse_text
from smss.transports.base import DOWN, OPERATOR, PERMANENT, TEMPORARY, SendFailed, Sent
from smss.transports.yeastar import YeastarTransport

PHONE = "+420608337726"
CZECH = 'Příliš žluťoučký kůň & "spol." 100% #1; \\ konec'


def config_for(tg: YeastarSim, tmp_path, **keys: str):
    values = {"url": tg.url, "ami": tg.ami_address, "account": "apiuser", "password": "s3cret",
              "spool": str(tmp_path / "inbox"), "response_timeout": "5", "http_timeout": "5",
              "reconnect_delay": "0.05", "reconnect_max_delay": "0.2"}
    values.update(keys)
    body = "".join(f"{key} = {value}\n" for key, value in values.items() if value is not None)
    return parse_text(f"[dispatcher]\ntransport = yeastar\nlockfile = {tmp_path}/lock\n"
                      f"[yeastar]\n{body}")


@contextmanager
def opened(tg: YeastarSim, tmp_path, **keys) -> Iterator[YeastarTransport]:
    transport = transports.from_config(config_for(tg, tmp_path, **keys))
    assert isinstance(transport, YeastarTransport)
    transport.open()
    try:
        yield transport
    finally:
        transport.close()


def failure(call) -> SendFailed:
    with pytest.raises(SendFailed) as caught:
        call()
    return caught.value


def until(condition, timeout: float = 10.0):
    """Poll ``condition`` until it is true and return its value; fail the test when it is
    not within ``timeout`` (a safety net, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout:g}s: {condition}")
        time.sleep(0.01)


def fetch_until(transport, count: int, kind: str = "messages"):
    """What ``fetch`` hands out (each item once: undeleted items come again) once there
    are ``count``."""
    found = {}

    def more():
        for item in getattr(transport.fetch(), kind):
            found.setdefault(item.handles, item)
        return len(found) >= count

    until(more)
    return list(found.values())


@pytest.fixture
def tg() -> Iterator[YeastarSim]:
    with running_yeastar(ussd_answers={"*100#": "Ваш баланс 36.3 р.",
                                       "*101#": "Zůstatek: 120,50 Kč"}) as sim:
        yield sim


# -- sending

def test_webcgi_send(tg, tmp_path):
    with opened(tg, tmp_path, ami=None, ports="2") as transport:
        assert transport.tracks_delivery is False
        sent = transport.send(PHONE, CZECH)
    assert sent == Sent((), 1, "")
    assert [(s.via, s.port, s.number, s.text) for s in tg.sent] == [("webcgi", 2, PHONE, CZECH)]


def test_webcgi_wrong_password_needs_a_person(tg, tmp_path):
    with opened(tg, tmp_path, ami=None, password="password") as transport:
        problem = failure(lambda: transport.send(PHONE, "x"))
    assert problem.kind == OPERATOR and "Authentication failed" in problem.reason
    assert "change it" in problem.reason and tg.sent == []


def test_webcgi_malformed_answer_may_have_been_sent(tg, tmp_path):
    tg.set_fault("webcgi_malformed")
    with opened(tg, tmp_path, ami=None) as transport:
        problem = failure(lambda: transport.send(PHONE, "x"))
    assert problem.kind == TEMPORARY and problem.maybe_sent
    assert "unexpected WebCGI answer: '<html>" in problem.reason


def test_webcgi_refusal_is_temporary(tg, tmp_path):
    with opened(tg, tmp_path, ami=None, ports="7") as transport:
        problem = failure(lambda: transport.send(PHONE, "x"))
    assert problem.kind == TEMPORARY and not problem.maybe_sent
    assert "Port 7 not exist" in problem.reason


def test_nothing_listening_is_down(tmp_path):
    with running_yeastar() as tg:
        config = config_for(tg, tmp_path)
    problem = failure(transports.from_config(config).open)
    assert problem.kind == DOWN and "cannot connect to AMI" in problem.reason
    transport = transports.from_config(config.with_overrides(yeastar={"ami": ""}))
    transport.open()
    problem = failure(lambda: transport.send(PHONE, "x"))
    assert problem.kind == DOWN and not problem.maybe_sent


def test_ami_send_and_delivery_status(tg, tmp_path):
    with opened(tg, tmp_path, ports="1, 3") as transport:
        assert transport.tracks_delivery is True
        first = transport.send(PHONE, CZECH)
        second = transport.send(PHONE, "line one\nline two")
        reports = fetch_until(transport, 2, "reports")
    assert [(s.via, s.port, s.number, s.text) for s in tg.sent] == [
        ("ami", 1, PHONE, CZECH), ("ami", 3, PHONE, "line one\nline two")]
    assert first.references == (tg.sent[0].id,) and second.references == (tg.sent[1].id,)
    assert {(r.reference, r.delivered, r.status_code) for r in reports} == {
        (tg.sent[0].id, True, 1), (tg.sent[1].id, True, 1)}


@pytest.mark.parametrize("text", [
    "call +420777123456 (ops)", "100% sure that %41 is not A", 'say "hi" \\ bye',
    "line one\r\nline two\nthree", "Příliš žluťoučký kůň 😀 Ещё ответ",
])
def test_ami_texts_arrive_exactly(tg, tmp_path, text):
    from smss.gsm.alphabet import plan_parts

    with opened(tg, tmp_path) as transport:
        sent = transport.send(PHONE, text)
    [arrived] = tg.sent
    assert arrived.text == text and sent.parts == plan_parts(text).count


def test_ami_failed_delivery(tmp_path):
    with running_yeastar(delivered=False) as tg, opened(tg, tmp_path) as transport:
        sent = transport.send(PHONE, "x")
        [report] = fetch_until(transport, 1, "reports")
        transport.delete(report.handles)
        assert transport.fetch().reports == []
    assert (report.reference, report.delivered, report.status_code) == (sent.references[0],
                                                                         False, 0)


def test_ami_wrong_password_needs_a_person(tg, tmp_path):
    problem = failure(transports.from_config(config_for(tg, tmp_path, password="admin")).open)
    assert problem.kind == OPERATOR and "Authentication failed" in problem.reason


def test_ami_malformed_answer_and_an_unknown_span(tg, tmp_path):
    with opened(tg, tmp_path, ports="9") as transport:
        problem = failure(lambda: transport.send(PHONE, "x"))
        assert problem.kind == TEMPORARY and "GSM span 10 does not exist" in problem.reason
    with opened(tg, tmp_path) as transport:
        tg.set_fault("malformed")
        problem = failure(lambda: transport.send(PHONE, "x"))
        assert problem.kind == TEMPORARY and problem.maybe_sent
        assert "unexpected AMI answer" in problem.reason
        assert failure(lambda: transport.send("12 34", "x")).kind == PERMANENT


def test_noise_drops_the_link_and_the_next_send_reconnects(tg, tmp_path):
    with opened(tg, tmp_path) as transport:
        tg.set_fault("noise")
        problem = failure(lambda: transport.send(PHONE, "first"))
        assert problem.kind == DOWN and problem.maybe_sent
        until(lambda: not transport.state().registration.startswith("AMI connected"))
        assert "protocol error" in transport.state().registration
        transport.send(PHONE, "second")
    assert [s.text for s in tg.sent] == ["second"] and tg.logins == 2


# -- receiving

def test_receiving_czech_with_the_tgs_clock(tg, tmp_path):
    with opened(tg, tmp_path, timezone="Europe/Prague") as transport:
        tg.wait_listening()
        assert tg.receive(1, "+420777123456", "Příliš žluťoučký kůň úpěl") == 1
        assert transport.wait(10) is True
        [message] = transport.fetch().messages
        assert (message.phone, message.text, message.parts) == (
            "+420777123456", "Příliš žluťoučký kůň úpěl", 1)
        assert message.sent_at == datetime(2016, 7, 15, 15, 49, 55)  # 17:49:55 CEST
        assert message.smsc == "+79997456321" and message.error is None
        transport.delete(message.handles)
        assert transport.fetch().messages == []


@pytest.mark.parametrize("space, bom, single_index", [
    ("+", True, 0),  # the traced TG200 (gebv/yeastar-tg-sms api/README.md)
    ("+", False, 0), ("%20", True, 1),  # seed 004: %20 and Index 1 of 1
    ("%20", False, 1), ("+", True, 1), ("%20", True, 0),
])
def test_receiving_every_form_of_the_content(tg, tmp_path, space, bom, single_index):
    text = "Привет! Баланс 100 руб. + 5% C++ "
    with opened(tg, tmp_path) as transport:
        tg.wait_listening()
        tg.receive(1, "+79991234567", text, space=space, bom=bom, single_index=single_index)
        [message] = fetch_until(transport, 1)
    assert (message.text, message.error, message.raw_pdu, message.parts) == (text, None, None, 1)


@pytest.mark.parametrize("space, bom", [("+", True), ("%20", False)])
def test_receiving_a_long_message_in_each_form(tg, tmp_path, space, bom):
    text = "Очень длинное сообщение, " * 6
    with opened(tg, tmp_path) as transport:
        tg.wait_listening()
        tg.receive(1, "+79991234567", text, parts=2, space=space, bom=bom, order=[2, 1])
        [message] = fetch_until(transport, 1)
    assert (message.text, message.parts, message.error) == (text, 2, None)


def test_receiving_multipart_cyrillic_out_of_order(tg, tmp_path):
    text = "Привет! Это длинное сообщение, которое пришло в трёх частях. " * 3
    with opened(tg, tmp_path) as transport:
        tg.wait_listening()
        tg.receive(1, "+79991234567", text, parts=3, order=[2, 3, 1])
        [message] = fetch_until(transport, 1)
    assert message.text == text and message.parts == 3 and len(message.handles) == 3


def test_an_incomplete_multipart_waits_then_is_kept_with_what_came(tg, tmp_path):
    with opened(tg, tmp_path) as transport:
        tg.wait_listening()
        tg.receive(1, "+420777", "first half second half", parts=2, order=[1])
        until(lambda: len(transport._spool) == 1)
        assert transport.fetch().messages == []
    config = config_for(tg, tmp_path).with_overrides(dispatcher={"multipart_timeout": "0"})
    transport = transports.from_config(config)
    transport.open()
    try:
        [message] = transport.fetch().messages
    finally:
        transport.close()
    assert message.text == "first half " and message.error == "incomplete: 1 of 2 parts arrived"


def test_other_ports_are_left_to_their_transport(tg, tmp_path):
    with opened(tg, tmp_path, ports="1") as mine, opened(tg, tmp_path / "other",
                                                        ports="2") as other:
        tg.wait_listening(2)
        tg.receive(2, "+420777", "for port 2")
        [message] = fetch_until(other, 1)
        assert message.text == "for port 2"
        assert mine.fetch().messages == []


def test_received_events_survive_the_process(tg, tmp_path):
    with opened(tg, tmp_path) as transport:
        tg.wait_listening()
        tg.receive(1, "+420777", "keep me")
        fetch_until(transport, 1)  # fetched, never deleted: the pass died before
    tg.drop()
    with running_yeastar() as gone:
        config = config_for(gone, tmp_path)
    transport = transports.from_config(config.with_overrides(yeastar={"send_via": "webcgi"}))
    transport.open()  # AMI unreachable: receiving is down, the spool is still read
    try:
        [message] = transport.fetch().messages
        assert message.text == "keep me"
        transport.delete(message.handles)
        problem = failure(transport.fetch)  # nothing left: now the link problem shows
        assert problem.kind == DOWN
    finally:
        transport.close()


def test_what_arrives_while_nobody_listens_stays_on_the_tg(tg, tmp_path):
    assert tg.receive(1, "+420777", "unheard") == 0
    assert tg.web_inbox == [(1, "+420777", "unheard")]


def test_a_dropped_connection_is_reconnected_and_receiving_goes_on(tg, tmp_path):
    with opened(tg, tmp_path) as transport:
        tg.wait_listening()
        tg.drop()
        until(lambda: "down" in transport.state().registration)
        assert transport.wait(0.3) is False  # reconnects meanwhile
        until(lambda: tg.listening())
        assert tg.logins == 2
        tg.receive(1, "+420777", "after the drop")
        [message] = fetch_until(transport, 1)
    assert message.text == "after the drop"


def test_a_hung_gateway_is_found_by_keepalive_and_reconnected(tg, tmp_path):
    with opened(tg, tmp_path, keepalive="0.1", response_timeout="0.3") as transport:
        tg.wait_listening()
        tg.silence()
        until(lambda: transport.wait(0.05) or tg.logins >= 2)
        assert tg.logins == 2
        assert any(action.get("Action") == "Ping" and action["session"] == "1"
                   for action in tg.actions)
        tg.receive(1, "+420777", "after the hang")
        [message] = fetch_until(transport, 1)
    assert message.text == "after the hang"


def test_webcgi_sending_with_ami_receiving(tg, tmp_path):
    with opened(tg, tmp_path, send_via="webcgi") as transport:
        transport.send(PHONE, "by webcgi")
        tg.wait_listening()
        tg.receive(1, "+420777", "by ami")
        [message] = fetch_until(transport, 1)
    assert [s.via for s in tg.sent] == ["webcgi"] and message.text == "by ami"


# -- USSD

def test_ussd_through_ami_decoded_from_ucs2(tg, tmp_path):
    with opened(tg, tmp_path, ports="2") as transport:
        assert transport.ussd("*100#", 5) == "Ваш баланс 36.3 р."
    assert tg.ussd == [("ami", 2, "*100#")]


def test_ussd_through_webcgi(tg, tmp_path):
    with opened(tg, tmp_path, ami=None) as transport:
        assert transport.ussd("*101#", 5) == "Zůstatek: 120,50 Kč"
    assert tg.ussd == [("webcgi", 1, "*101#")]


def test_a_ussd_only_transport_takes_no_sms(tg, tmp_path):
    config = config_for(tg, tmp_path)
    transport = transports.from_config(config, receive=False)
    transport.open()
    try:
        tg.wait_listening()
        tg.receive(1, "+420777", "not for USSD")
        assert transport.ussd("*100#", 5) == "Ваш баланс 36.3 р."
        assert transport.fetch().messages == []
    finally:
        transport.close()
    assert not (tmp_path / "inbox").exists()


@pytest.mark.parametrize("via", ["ami", "webcgi"])
def test_transliteration_goes_as_the_parts_were_counted(tg, tmp_path, via):
    """[messages] transliterate = yes: the TG gets the plain letters, and the parts are
    the ones smss.spooler.validate stored in msg (and the web form's counter showed)."""
    from smss.spooler.protocol import Record
    from smss.spooler.validate import Rules, check

    config = config_for(tg, tmp_path, send_via=via).with_overrides(
        messages={"transliterate": "yes"})
    text = "Příliš žluťoučký kůň úpěl ďábelské ódy. " * 3  # 120 characters: 2 UCS2 SMS
    counted = check(Record(PHONE, text), Rules.from_config(config)).parts
    transport = transports.from_config(config)
    transport.open()
    try:
        sent = transport.send(PHONE, text)
    finally:
        transport.close()
    [arrived] = tg.sent
    assert arrived.text == "Prilis zlutoucky kun upel dabelské ody. " * 3  # é is GSM-7
    assert sent.parts == counted == 1
