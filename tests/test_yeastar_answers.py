"""Yeastar's answers and events parsed (pure): WebCGI answers, ReceivedSMS and UpdateSMSSend
events as seed 004 shows them, multipart grouping, CLI commands and their quoting."""

from __future__ import annotations

import shlex
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smss.gateways import yeastar as y

SEED_EVENT = {"Total": "1", "Recvtime": "2016-07-15 17:49:55", "ID": "", "Event": "ReceivedSMS",
              "Privilege": "all,smscommand", "Index": "1", "GsmSpan": "4",
              "Sender": "+79991234567", "Smsc": "+79997456321",
              "Content": "%EF%BB%BF%D0%9A%D1%83-%D0%BA%D1%83"}


@pytest.mark.parametrize("body, ok, message, req", [
    ("Response: Success\r\nMessage: Commit successfully!\r\n", True, "Commit successfully!", ""),
    ("Response: Success Message: Commit successfully!", True, "Commit successfully!", ""),
    ("Request: 1,*100#\r\nResponse: Success\r\nMessage: Баланс: 36.3 р.\r\n", True,
     "Баланс: 36.3 р.", "1,*100#"),
    ("Request: 1,*100# Response: Success Message: Ваш баланс 36.3", True, "Ваш баланс 36.3",
     "1,*100#"),
    ("Response: Error\r\nMessage: Authentication failed\r\n", False, "Authentication failed", ""),
])
def test_webcgi_answers(body, ok, message, req):
    answer = y.parse_webcgi(body)
    assert (answer.ok, answer.message, answer.request) == (ok, message, req)


@pytest.mark.parametrize("body", ["", "<html>404</html>", "Message: hello"])
def test_webcgi_garbage_is_a_clear_error(body):
    with pytest.raises(y.YeastarAnswerError, match="unexpected WebCGI answer"):
        y.parse_webcgi(body)


def test_auth_failures():
    assert y.is_auth_failure("Authentication failed")
    assert y.is_auth_failure("Permission denied")
    assert not y.is_auth_failure("Port 3 is not ready")


def test_the_seed_event():
    sms = y.parse_received(SEED_EVENT)
    assert sms == y.ReceivedSms(4, "+79991234567", "Ку-ку", datetime(2016, 7, 15, 17, 49, 55),
                                1, 1, "", "+79997456321")
    assert sms.port == 3


@pytest.mark.parametrize("content, text", [
    ("%EF%BB%BFP%C5%99%C3%ADli%C5%A1%20%C5%BElu%C5%A5ou%C4%8Dk%C3%BD%20k%C5%AF%C5%88",
     "Příliš žluťoučký kůň"),
    ("plain+text%2B1", "plain+text+1"),  # + is not a space here
    ("caf%E9", "café"),  # not UTF-8: kept as Latin-1, not lost
    ("", ""),
])
def test_content_decoding(content, text):
    assert y.decode_content(content) == text


@pytest.mark.parametrize("change, problem", [
    ({"GsmSpan": ""}, "GsmSpan"), ({"GsmSpan": "x"}, "GsmSpan"),
    ({"Index": "3", "Total": "2"}, "part 3 of 2"), ({"Total": "-1"}, "Total"),
])
def test_unreadable_events(change, problem):
    with pytest.raises(ValueError, match=problem):
        y.parse_received(dict(SEED_EVENT, **change))


def test_odd_clock_does_not_lose_the_message():
    assert y.parse_received(dict(SEED_EVENT, Recvtime="15/07/2016")).recvtime is None


def test_update_sms_send():
    status = y.parse_send_status({"ID": "11111", "Event": "UpdateSMSSend", "Status": "1",
                                  "Smsc": "+79991234567"})
    assert status == y.SendStatus("11111", True, 1, "+79991234567")
    assert not y.parse_send_status({"ID": "7", "Status": "0"}).delivered
    with pytest.raises(ValueError):
        y.parse_send_status({"ID": "", "Status": "1"})


def part(index, total, text, sender="+420777", span=2, sms_id=""):
    return y.ReceivedSms(span, sender, text, None, index, total, sms_id)


def test_assemble_multipart_in_any_order_with_a_second_message_alike():
    items = [("a", part(2, 2, "world")), ("b", part(1, 1, "single")), ("c", part(1, 2, "hello ")),
             ("d", part(2, 2, "again")), ("e", part(1, 2, "once ", span=3)),
             ("f", part(1, 2, "and "))]
    groups = y.assemble(items)
    assert [(g.handles, [p.text for p in g.parts], g.complete) for g in groups] == [
        (("a", "c"), ["hello ", "world"], True),
        (("b",), ["single"], True),
        (("d", "f"), ["and ", "again"], True),
        (("e",), ["once "], False),
    ]


@given(st.lists(st.text(max_size=5), min_size=1, max_size=6), st.randoms())
def test_assemble_finds_every_part_whatever_the_order(texts, random):
    items = [(str(n), part(n, len(texts), t)) for n, t in enumerate(texts, 1)]
    random.shuffle(items)
    [group] = y.assemble(items)
    assert group.complete and "".join(p.text for p in group.parts) == "".join(texts)


def cli_args(command: str):
    """How the TG's CLI splits a command: double quotes, backslash escapes (an independent
    reading through shlex in POSIX mode, which treats them the same way)."""
    return shlex.split(command, posix=True)


@given(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=80))
def test_sms_command_carries_any_text_as_one_argument(text):
    command = y.sms_command(2, "+420608337726", text, "123456789")
    args = cli_args(command)
    assert args == ["gsm", "send", "sms", "2", "+420608337726", text, "123456789"]


def test_sms_command_line_breaks_and_bad_numbers():
    assert cli_args(y.sms_command(3, "123", "a\r\nb\nc", "1"))[5] == "a b c"
    with pytest.raises(ValueError):
        y.sms_command(2, "123 456", "x", "1")
    assert y.ussd_command(2, "*100#") == 'gsm send ussd 2 "*100#"'


def test_ussd_from_output():
    assert y.ussd_from_output(["USSD Responses:0", "USSD Message: 0041"]) == "0041"
    assert y.ussd_from_output([], [("USSD Message", "0042")]) == "0042"
    assert y.ussd_from_output(["nothing here"]) is None
