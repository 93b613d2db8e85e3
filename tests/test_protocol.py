"""The pure record parser: every input is also replayed one byte at a time."""

from __future__ import annotations

from typing import List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smss.spooler.protocol import (
    BAD_SYNTAX,
    TOO_LONG,
    Record,
    RecordError,
    RecordParser,
    escape_text,
    format_record,
)


def parse_whole(data: bytes, **kwargs) -> list:
    parser = RecordParser(**kwargs)
    return parser.feed(data) + parser.close()


def parse_bytewise(data: bytes, **kwargs) -> list:
    parser = RecordParser(**kwargs)
    events: List = []
    for i in range(len(data)):
        events += parser.feed(data[i : i + 1])
    return events + parser.close()


def parse(data: bytes, **kwargs) -> list:
    """Both ways must agree; return the events."""
    whole = parse_whole(data, **kwargs)
    assert parse_bytewise(data, **kwargs) == whole
    return whole


CASES = [
    (b"#420608337726;AHOJ", [Record("420608337726", "AHOJ")]),
    (b"#420608337726;AHOJ#420777123456;Cau",
     [Record("420608337726", "AHOJ"), Record("420777123456", "Cau")]),
    (b"#1;a\r\n#2;b\n#3;c\r#4;d",
     [Record("1", "a"), Record("2", "b"), Record("3", "c"), Record("4", "d")]),
    (b"#1;a\\#b\\;c\\\\d\\ne\\rf", [Record("1", "a#b;c\\d\ne\rf")]),
    (b"#1;C:\\backup\\x failed", [Record("1", "C:\\backup\\x failed")]),
    (b"#1;a;b;c", [Record("1", "a;b;c")]),
    (b"#1;ends with backslash\\", [Record("1", "ends with backslash\\")]),
    (b"#1;backslash then newline\\\n#2;x",
     [Record("1", "backslash then newline\\"), Record("2", "x")]),
    (b"\r\n  \t#1;x\r\n\r\n", [Record("1", "x")]),
    (b"#1;a\r\0#2;b\r\0", [Record("1", "a"), Record("2", "b")]),  # telnet's CR NUL
    (b"#", []),
    (b"##1;x#", [Record("1", "x")]),
    (b"#1;", [Record("1", "")]),
    (b"#12345", [RecordError(BAD_SYNTAX, "missing ';' between phone number and text")]),
    (b"#12345#1;x", [RecordError(BAD_SYNTAX, "missing ';' between phone number and text"),
                     Record("1", "x")]),
    (b"hello\r\n#1;x", [RecordError(BAD_SYNTAX, "expected '#' at the start of a record"),
                        Record("1", "x")]),
    (b"junk#1;x", [RecordError(BAD_SYNTAX, "expected '#' at the start of a record"),
                   Record("1", "x")]),
    ("#1;Příliš žluťoučký kůň".encode(), [Record("1", "Příliš žluťoučký kůň")]),
    ("#1;Příliš žluťoučký kůň".encode("cp1250"), [Record("1", "Příliš žluťoučký kůň")]),
    ("#1;Привет 👋".encode(), [Record("1", "Привет 👋")]),
    # UTF-8 and cp1250 mixed in one record: each byte run decoded on its own
    ("#1;ž".encode() + "ž".encode("cp1250"), [Record("1", "žž")]),
]


@pytest.mark.parametrize("data,expected", CASES)
def test_records(data, expected):
    assert parse(data) == expected


def test_legacy_encoding_is_configurable():
    data = "#1;Привет".encode("cp1251")
    assert parse(data, legacy_encoding="cp1251") == [Record("1", "Привет")]


def test_record_longer_than_limit_is_skipped_and_the_next_one_kept():
    data = b"#1;" + b"x" * 100 + b"\\#still skipped#2;ok"
    events = parse(data, max_record_bytes=50)
    assert events == [RecordError(TOO_LONG, "record longer than 50 bytes, skipped"),
                      Record("2", "ok")]


def test_record_of_exactly_the_limit_is_kept():
    data = b"#1;" + b"x" * 47  # 50 bytes with '#', '1' and ';'
    assert parse(data, max_record_bytes=50) == [Record("1", "x" * 47)]
    assert parse(data + b"y", max_record_bytes=50)[0].code == TOO_LONG


def test_ten_megabyte_line_is_not_buffered():
    parser = RecordParser(max_record_bytes=8192)
    events = parser.feed(b"#1;")
    chunk = b"a" * 65536
    for _ in range(160):  # 10 MiB
        events += parser.feed(chunk)
    assert len(parser._text) == 0 and len(parser._phone) == 0
    events += parser.feed(b"\r\n#2;after")
    events += parser.close()
    assert events == [RecordError(TOO_LONG, "record longer than 8192 bytes, skipped"),
                      Record("2", "after")]


def test_binary_garbage_outside_records_gives_one_error_per_run():
    garbage = bytes(b for b in range(256) if b not in b"\r\n# \t")
    events = parse(garbage + b"\n" + b"\xff\xfe\n#1;x")
    assert events == [RecordError(BAD_SYNTAX, "expected '#' at the start of a record")] * 2 + [
        Record("1", "x")
    ]


def test_format_record():
    assert format_record("+420608337726", "a#b;c\\\n") == b"#+420608337726;a\\#b\\;c\\\\\\n"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_round_trips(text):
    data = format_record("420608337726", text)
    assert parse(data) == [Record("420608337726", text)]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(), min_size=1, max_size=5), st.sampled_from([b"", b"\r\n", b"\n"]))
def test_many_records_round_trip(texts, separator):
    data = separator.join(format_record(str(i), t) for i, t in enumerate(texts))
    assert parse(data) == [Record(str(i), t) for i, t in enumerate(texts)]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=8, max_value=64))
def test_no_input_crashes_or_hangs(data, limit):
    events = parse(data, max_record_bytes=limit)
    for event in events:
        assert isinstance(event, (Record, RecordError))
        if isinstance(event, RecordError):
            assert event.code in (BAD_SYNTAX, TOO_LONG)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200), st.lists(st.integers(min_value=1, max_value=7), max_size=30))
def test_any_split_gives_the_same_events(data, cuts):
    parser = RecordParser()
    events, pos = [], 0
    for size in cuts:
        events += parser.feed(data[pos : pos + size])
        pos += size
    events += parser.feed(data[pos:]) + parser.close()
    assert events == parse_whole(data)


def test_escape_text_is_ascii_safe_for_the_delimiters():
    escaped = escape_text("#;\\\n\r")
    assert "#" not in escaped.replace("\\#", "")
    assert "\n" not in escaped and "\r" not in escaped
