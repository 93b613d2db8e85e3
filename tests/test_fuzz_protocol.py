"""Fuzzing the TCP record parser: any bytes, in any split, give only documented events.

Properties checked on every input (``check_protocol``, also the atheris target):
no exception and no hang; only ``Record`` and ``RecordError`` events, the
errors with the codes and reasons the parser documents; record fields are
valid Unicode (they go to the database as UTF-8); the events do not depend on
how the bytes were split; and the parser's buffers never hold more than
``max_record_bytes``, whatever the input.
"""

from __future__ import annotations

from typing import List, Sequence

from hypothesis import given
from hypothesis import strategies as st
from support_fuzz import fuzz_settings, no_hang

from smss.spooler.protocol import BAD_SYNTAX, TOO_LONG, Record, RecordError, RecordParser


def documented_errors(max_record_bytes: int) -> set:
    return {
        RecordError(BAD_SYNTAX, "expected '#' at the start of a record"),
        RecordError(BAD_SYNTAX, "missing ';' between phone number and text"),
        RecordError(TOO_LONG, f"record longer than {max_record_bytes} bytes, skipped"),
    }


def buffered(parser: RecordParser) -> int:
    """Bytes the parser holds for the record in progress (its internal buffers)."""
    return len(parser._phone) + len(parser._text)


def parse_in_pieces(data: bytes, cuts: Sequence[int], max_record_bytes: int) -> List:
    parser = RecordParser(max_record_bytes=max_record_bytes)
    events: List = []
    start = 0
    for cut in sorted(set(c for c in cuts if 0 < c < len(data))) + [len(data)]:
        events += parser.feed(data[start:cut])
        start = cut
        assert buffered(parser) <= max_record_bytes, (buffered(parser), max_record_bytes)
    events += parser.close()
    assert buffered(parser) == 0
    return events


def check_protocol(data: bytes, cuts: Sequence[int], max_record_bytes: int) -> None:
    events = parse_in_pieces(data, cuts, max_record_bytes)
    allowed = documented_errors(max_record_bytes)
    for event in events:
        assert type(event) in (Record, RecordError), event
        if isinstance(event, RecordError):
            assert event in allowed, event
            event.reply().decode("ascii")
        else:
            assert isinstance(event.phone, str) and isinstance(event.text, str)
            event.phone.encode("utf-8")
            event.text.encode("utf-8")
    assert parse_in_pieces(data, [], max_record_bytes) == events, "depends on the split"
    assert parse_in_pieces(data, range(len(data)), max_record_bytes) == events, "bytewise differs"


def test_overflow_in_phone_does_not_depend_on_the_split():
    data = b"#1\\#;"
    whole = parse_in_pieces(data, [], 1)
    assert parse_in_pieces(data, range(len(data)), 1) == whole


# Bytes the grammar cares about, so random input reaches every state.
SPECIAL = b"#;\\\r\n \tnr+0123456789\x00\xc3\xa1\xc5\xbe\x9a\xff"
biased = st.lists(st.sampled_from(list(SPECIAL)), max_size=300).map(bytes)
records = st.lists(
    st.tuples(st.sampled_from([b"#", b"", b"##", b"\n#", b"x#"]),
              st.binary(max_size=16), st.sampled_from([b";", b"", b";;"]),
              st.binary(max_size=40), st.sampled_from([b"", b"\n", b"\r\n", b"\\", b"\\#"])),
    max_size=12,
).map(lambda parts: b"".join(b"".join(p) for p in parts))
repeated = st.tuples(st.binary(min_size=1, max_size=6), st.integers(1, 3000)).map(
    lambda t: t[0] * t[1])
inputs = st.one_of(st.binary(max_size=400), biased, records, repeated)
limits = st.one_of(st.integers(1, 64), st.just(8192))


@fuzz_settings()
@given(data=inputs, limit=limits, cuts=st.lists(st.integers(0, 20_000), max_size=12))
def test_any_bytes_any_split_only_documented_events(data, limit, cuts):
    with no_hang():
        check_protocol(data, cuts, limit)


@fuzz_settings()
@given(head=inputs, size=st.integers(10_000, 200_000), limit=limits)
def test_an_endless_record_never_grows_the_buffers(head, size, limit):
    # A client that never ends its record: memory stays at max_record_bytes.
    parser = RecordParser(max_record_bytes=limit)
    with no_hang():
        parser.feed(head + b"#420608337726;")
        body = b"x\\#" * (size // 3)
        for start in range(0, len(body), 4096):
            for event in parser.feed(body[start:start + 4096]):
                assert event in documented_errors(limit)
            assert buffered(parser) <= limit
