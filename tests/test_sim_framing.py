"""Byte-level input framing and AT line syntax of the simulator (pure code)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smss.sim import framing
from smss.sim.atparse import (
    EXEC,
    READ,
    SET,
    TEST,
    AtSyntaxError,
    parse_line,
    split_args,
    strip_prefix,
)


def events_of(chunks, body_after=None):
    """Feed ``chunks``; switch to body mode after a Line whose text is ``body_after``."""
    framer = framing.InputFramer()
    out = []
    for chunk in chunks:
        framer.feed(chunk)
        while True:
            event = framer.next_event()
            if event is None:
                break
            out.append(event)
            if isinstance(event, framing.Line) and event.text == body_after:
                framer.expect_body(reprompt=True)
    return out


def meaningful(events):
    """Events without the echo-only ones, and echo bytes joined."""
    kept = [e for e in events if not isinstance(e, framing.Echo)]
    raw = b"".join(e.raw for e in events)
    return kept, raw


STREAM = (b'ATE0\r\nAT+CMGF=1;+CSCS="GSM"\rAT+CMGS="+420608337726"\r\n'
          b"Ahoj\rsvete\x1aA/junk\x08\x08\rAT\r")


def test_stream_whole():
    kept, raw = meaningful(events_of([STREAM], body_after=b'AT+CMGS="+420608337726"'))
    assert raw == STREAM  # every byte is accounted for, in order (echo)
    assert kept == [
        framing.Line(b"ATE0", b"ATE0\r"),
        framing.Line(b'AT+CMGF=1;+CSCS="GSM"', b'\nAT+CMGF=1;+CSCS="GSM"\r'),
        framing.Line(b'AT+CMGS="+420608337726"', b'AT+CMGS="+420608337726"\r'),
        framing.Reprompt(b"\nAhoj\r"),
        framing.Body(b"Ahoj\nsvete", b"svete\x1a"),
        framing.Repeat(b"A/"),
        framing.Line(b"ju", b"junk\x08\x08\r"),
        framing.Line(b"AT", b"AT\r"),
    ]


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM)), max_size=12))
def test_stream_split_anywhere(cuts):
    """However the bytes are split across reads, the same events come out."""
    positions = sorted(set(cuts))
    chunks, start = [], 0
    for pos in positions:
        chunks.append(STREAM[start:pos])
        start = pos
    chunks.append(STREAM[start:])
    whole, _ = meaningful(events_of([STREAM], body_after=b'AT+CMGS="+420608337726"'))
    split, raw = meaningful(events_of(chunks, body_after=b'AT+CMGS="+420608337726"'))
    assert raw == STREAM
    assert [type(e) for e in split] == [type(e) for e in whole]
    assert [getattr(e, "text", getattr(e, "data", None)) for e in split] == [
        getattr(e, "text", getattr(e, "data", None)) for e in whole
    ]


def test_one_byte_at_a_time():
    chunks = [bytes([b]) for b in STREAM]
    kept, raw = meaningful(events_of(chunks, body_after=b'AT+CMGS="+420608337726"'))
    assert raw == STREAM
    assert kept[4] == framing.Body(b"Ahoj\nsvete", b"\x1a")


def test_escape_cancels_body():
    framer = framing.InputFramer()
    framer.expect_body(reprompt=False)
    framer.feed(b"0011\x1bAT\r")
    assert isinstance(framer.next_event(), framing.Cancel)
    assert framer.next_event() == framing.Line(b"AT", b"AT\r")


def test_pdu_body_keeps_cr_and_lf_without_reprompt():
    framer = framing.InputFramer()
    framer.expect_body(reprompt=False)
    framer.feed(b"\n0011\r\n22\x1a")
    event = framer.next_event()
    assert event == framing.Body(b"0011\r\n22", b"\n0011\r\n22\x1a")


def test_overlong_line_is_reported_once_and_skipped():
    framer = framing.InputFramer()
    framer.feed(b"AT" + b"X" * (framing.MAX_LINE + 10) + b"\rAT\r")
    events = []
    while (event := framer.next_event()) is not None:
        events.append(event)
    kept = [e for e in events if not isinstance(e, framing.Echo)]
    assert isinstance(kept[0], framing.Overflow) and not kept[0].body
    assert kept[1:] == [framing.Line(b"AT", b"AT\r")]


def test_overlong_body():
    framer = framing.InputFramer()
    framer.expect_body(reprompt=False)
    framer.feed(b"0" * (framing.MAX_BODY + 5) + b"\x1aAT\r")
    events = []
    while (event := framer.next_event()) is not None:
        events.append(event)
    kept = [e for e in events if not isinstance(e, framing.Echo)]
    assert isinstance(kept[0], framing.Overflow) and kept[0].body
    assert kept[1] == framing.Line(b"AT", b"AT\r")


# -- AT line syntax
def test_strip_prefix():
    assert strip_prefix("AT+CMGF=1") == "+CMGF=1"
    assert strip_prefix("at") == ""
    assert strip_prefix("xx\x00At+CSQ") == "+CSQ"
    assert strip_prefix("hello") is None


def test_parse_basic_and_extended():
    commands = parse_line('E0V1+CMEE=2;+CPMS="SM","ME";+CMGF?;+CNMI=?;I3&F S7=60 S3?+CGMI')
    assert [(c.name, c.kind, c.args) for c in commands] == [
        ("E", SET, "0"),
        ("V", SET, "1"),
        ("+CMEE", SET, "2"),
        ("+CPMS", SET, '"SM","ME"'),
        ("+CMGF", READ, ""),
        ("+CNMI", TEST, ""),
        ("I", SET, "3"),
        ("&F", EXEC, ""),
        ("S7", SET, "60"),
        ("S3", READ, ""),
        ("+CGMI", EXEC, ""),
    ]
    assert parse_line("")[0].label == "AT"
    assert parse_line("$TSSPCSW=?")[0].name == "$TSSPCSW"
    assert parse_line("D+420123;")[0].args == "+420123;"


def test_quoted_semicolon_stays_in_args():
    [command] = parse_line('+CUSD=1,"*100;#",15')
    assert command.args == '1,"*100;#",15'
    assert split_args(command.args) == ["1", "*100;#", "15"]


def test_split_args():
    assert split_args('1,"a,b",,15') == ["1", "a,b", None, "15"]
    assert split_args("") == []
    assert split_args('""') == [""]
    with pytest.raises(AtSyntaxError):
        split_args('"open')


@pytest.mark.parametrize("body", ['+CMGS="+420', "+", "!", "&"])
def test_bad_syntax(body):
    with pytest.raises(AtSyntaxError):
        parse_line(body)
