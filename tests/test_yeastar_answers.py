"""Yeastar's answers and events parsed (pure): WebCGI answers, ReceivedSMS and UpdateSMSSend
events as seed 004 and a public AMI trace show them, multipart grouping, CLI commands and
their quoting."""

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

# A TG200's events as a Go AMI client logged them (github.com/gebv/yeastar-tg-sms,
# api/README.md, 2025): a single message is Index 0 of Total 1 with an empty ID; Content
# is form-encoded (a space is "+"), each part with its own byte-order mark; a long
# message is Index 1..Total with one numeric ID.
TRACE_SINGLE = {"Event": "ReceivedSMS", "Privilege": "all,smscommand", "ID": "", "GsmSpan": "2",
                "Sender": "+79xxxxxxxxx", "Recvtime": "2025-03-06 05:01:07", "Index": "0",
                "Total": "1", "Smsc": "+79xxxxxxxxx",
                "Content": "%EF%BB%BF%D0%95%D1%89%D1%91+%D0%BE%D1%82%D0%B2%D0%B5%D1%82+"}
TRACE_PARTS = [dict(TRACE_SINGLE, ID="244", Recvtime="2025-03-06 06:12:09", Index="1", Total="2",
                    Content="%EF%BB%BF%D0%9E%D1%87%D0%B5%D0%BD%D1%8C+%D0%B4%D0%BB%D0%B8%D0%BD%D0"
                    "%BD%D0%BE%D0%B5+%D1%81%D0%BE%D0%BE%D0%B1%D1%89"),
               dict(TRACE_SINGLE, ID="244", Recvtime="2025-03-06 06:12:09", Index="2", Total="2",
                    Content="%EF%BB%BF%D0%B5%D0%BD%D0%B8%D0%B5+")]


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
    ("plain+text%2B1", "plain text+1"),  # form encoding: "+" is a space, "%2B" a plus
    ("%EF%BB%BF%D0%95%D1%89%D1%91+%D0%BE%D1%82%D0%B2%D0%B5%D1%82+", "Ещё ответ "),  # the trace
    ("%D0%95%D1%89%D1%91%20%D0%BE%D1%82%D0%B2%D0%B5%D1%82", "Ещё ответ"),  # %20, no BOM
    ("%EF%BB%BF", ""),
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


def test_the_traced_single_message_is_index_0_of_1():
    sms = y.parse_received(TRACE_SINGLE)
    assert (sms.text, sms.index, sms.total, sms.span, sms.id) == ("Ещё ответ ", 1, 1, 2, "")
    [group] = y.assemble([("h", sms)])
    assert group.complete


def test_the_traced_long_message_is_joined():
    parts = [(str(n), y.parse_received(fields)) for n, fields in enumerate(TRACE_PARTS)]
    [group] = y.assemble(list(reversed(parts)))
    assert group.complete and group.handles == ("1", "0")
    assert "".join(p.text for p in group.parts) == "Очень длинное сообщение "


@pytest.mark.parametrize("index, total", [("0", "2"), ("0", "0")])
def test_index_0_is_only_a_whole_single_message(index, total):
    if total == "2":
        with pytest.raises(ValueError, match="part 0 of 2"):
            y.parse_received(dict(SEED_EVENT, Index=index, Total=total))
    else:
        assert y.parse_received(dict(SEED_EVENT, Index=index, Total=total)).total == 1


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


def tg_reads(argument: str) -> str:
    """The TG URL-decodes the message argument of ``gsm send sms`` as a form value ("+" is
    a space, %XX a byte of UTF-8): every public client percent-encodes it (the Go client's
    url.QueryEscape, traced as "Test+message"; a Node.js connector's encodeURIComponent,
    github.com/enterprisealxtexh/yeastar-sms-connect; a PHP client's urlencode)."""
    from urllib.parse import unquote_plus

    return unquote_plus(argument, encoding="utf-8", errors="strict")


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=80))
def test_sms_command_carries_any_text_as_one_argument(text):
    command = y.sms_command(2, "+420608337726", text, "123456789")
    args = cli_args(command)
    assert args[:5] + args[6:] == ["gsm", "send", "sms", "2", "+420608337726", "123456789"]
    assert tg_reads(args[5]) == text


@pytest.mark.parametrize("text", ["call +420777123456 (ops)", "100% sure: %41 is not A",
                                  'say "hi" \\ bye', "a\r\nb\nc", "Příliš žluťoučký kůň 😀"])
def test_what_the_tg_reads_is_the_text(text):
    argument = cli_args(y.sms_command(3, "123", text, "1"))[5]
    assert tg_reads(argument) == text and argument.isascii()


def test_bad_numbers_and_ussd():
    with pytest.raises(ValueError):
        y.sms_command(2, "123 456", "x", "1")
    assert y.ussd_command(2, "*100#") == 'gsm send ussd 2 "*100#"'


def test_ussd_from_output():
    assert y.ussd_from_output(["USSD Responses:0", "USSD Message: 0041"]) == "0041"
    assert y.ussd_from_output([], [("USSD Message", "0042")]) == "0042"
    assert y.ussd_from_output(["nothing here"]) is None
