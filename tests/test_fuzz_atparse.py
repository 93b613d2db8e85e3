"""Fuzzing the AT response parser: modem noise with commands interleaved, only documented events.

``check_atparse`` (also the atheris target) replays a script of operations:
bytes from the modem, ``begin``/``begin_pdu`` of commands, ``abort``,
``reset`` and ``flush``.  On every script: no exception and no hang; only the
six documented event types, with fields of their documented types; the line
buffer never holds more than ``max_line`` bytes; and the events are the same
when every chunk of bytes is fed one byte at a time (the parser promises the
same events however the bytes are split).
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

from hypothesis import given
from hypothesis import strategies as st
from support_fuzz import fuzz_settings, no_hang

from smss.modem.atparse import AtParser, Discarded, Echo, Final, Info, Prompt, Unsolicited

EVENT_TYPES = (Echo, Info, Prompt, Final, Unsolicited, Discarded)

Op = Tuple  # ("feed", bytes) | ("begin", str, prompt) | ("begin_pdu", str) | ("abort",) ...


def check_event(event, max_line: int) -> None:
    assert type(event) in EVENT_TYPES, event
    if isinstance(event, (Echo, Info)):
        assert isinstance(event.text, str) and event.text
    elif isinstance(event, Final):
        assert isinstance(event.text, str) and isinstance(event.ok, bool)
        assert event.family in (None, "CMS", "CME")
        assert event.code is None or isinstance(event.code, int)
        assert event.reason is None or isinstance(event.reason, str)
        assert not (event.ok and event.family), event
    elif isinstance(event, Unsolicited):
        assert isinstance(event.name, str) and isinstance(event.args, str)
        assert isinstance(event.text, str)
        assert event.pdu is None or isinstance(event.pdu, str)
    elif isinstance(event, Discarded):
        assert isinstance(event.data, bytes) and isinstance(event.why, str)
        assert len(event.data) <= max_line + 1


def replay(ops: Sequence[Op], max_line: int, bytewise: bool) -> List:
    parser = AtParser(max_line=max_line)
    events: List = []
    for op in ops:
        kind = op[0]
        if kind == "feed":
            pieces = [op[1][i:i + 1] for i in range(len(op[1]))] if bytewise else [op[1]]
            for piece in pieces:
                events += parser.feed(piece)
                assert len(parser._buf) <= max_line, (len(parser._buf), max_line)
        elif kind == "begin":
            parser.begin(op[1], prompt=op[2])
        elif kind == "begin_pdu":
            parser.begin_pdu(op[1])
        elif kind == "abort":
            parser.abort()
        elif kind == "reset":
            parser.reset()
        elif kind == "flush":
            events += parser.flush()
        else:
            raise ValueError(f"unknown operation {kind!r}")
    return events + parser.flush()


def check_atparse(ops: Sequence[Op], max_line: int) -> None:
    events = replay(ops, max_line, bytewise=False)
    for event in events:
        check_event(event, max_line)
    assert replay(ops, max_line, bytewise=True) == events, "depends on how bytes are split"


# What modems say, in pieces, so random scripts reach the interesting states.
FRAGMENTS = [
    b"\r\n", b"\r", b"\n", b"OK", b"ERROR", b"+CMS ERROR: 500", b"+CME ERROR: SIM busy",
    b"+CMS ERROR:", b"> ", b">", b"+CMGS: 12", b'+CMTI: "SM",3', b"+CMT: ,24", b"+CMT: ",
    b'+CMT: "+420608337726",,"24/01/01,10:00:00+04"', b"+CDS: 25", b"+CDSI: \"SM\",1",
    b"07912470338016F0040B912470338016F00000", b"0011000B912460", b'+CUSD: 0,"Kredit ',
    b'je 100 Kc",15', b"RING", b"NO CARRIER", b"BUSY", b"CONNECT 9600", b"^RSSI: 17",
    b"+CSQ: 20,99", b"AT+CSQ", b"AT+CMGS=23", b"ATD123;", b"+CREG: 1,1", b"SMS READY",
    b"\x00", b"\x1a", b"\x7f", b"\xff", b"\xe4\xf6", b" ", b":", b",", b'"', b"+", b"^",
    b"+CME ERROR: ", b"+CMS ERROR: ", b"5", b"\xb2", b"\xb3", b"\xb9", b"\xbc", b"\xd9",
]
modem_bytes = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=30).map(b"".join),
    st.binary(max_size=200),
    st.tuples(st.binary(min_size=1, max_size=4), st.integers(1, 3000)).map(lambda t: t[0] * t[1]),
)
commands = st.one_of(
    st.sampled_from(["AT", "AT+CSQ", "AT+CMGS=23", "AT+CMGW=20", "AT+CMGC=5", "ATD123;",
                     "ATA", "ATO", 'AT+CUSD=1,"*100#",15', "AT+CMGL=4", "AT+CPMS?",
                     "AT+CREG?;+CSQ", "AT^SYSINFO"]),
    st.text(max_size=30),
)
pdus = st.one_of(st.sampled_from(["0011000B912470338016F00000AA01E1", ""]),
                 st.text(alphabet="0123456789ABCDEFabcdef \r\n", max_size=60), st.text(max_size=20))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("feed"), modem_bytes),
        st.tuples(st.just("feed"), modem_bytes),
        st.tuples(st.just("begin"), commands, st.sampled_from([None, True, False])),
        st.tuples(st.just("begin_pdu"), pdus),
        st.sampled_from([("abort",), ("reset",), ("flush",)]),
    ),
    max_size=25,
)
line_limits = st.one_of(st.integers(1, 48), st.just(8192))


def test_superscript_digits_in_an_error_code():
    # Found by this fuzzer: Latin-1 superscripts pass str.isdigit() but not int().
    [event] = AtParser().feed(b"+CMS ERROR: 5\xb3\r\n")
    assert isinstance(event, Final) and not event.ok and event.family == "CMS"


@fuzz_settings()
@given(ops=operations, max_line=line_limits)
def test_modem_noise_with_commands_gives_only_documented_events(ops, max_line):
    with no_hang():
        check_atparse(ops, max_line)


@fuzz_settings()
@given(pdu=pdus, noise=modem_bytes, max_line=line_limits)
def test_cmgs_exchange_with_noise_in_between(pdu, noise, max_line):
    # The one exchange with a prompt: command, "> ", PDU echo, noise, +CMGS, OK.
    ops = [("begin", "AT+CMGS=23", None), ("feed", b"AT+CMGS=23\r\r\n> "),
           ("begin_pdu", pdu), ("feed", pdu.encode("utf-8", "replace") + b"\x1a\r\n" + noise),
           ("feed", b"\r\n+CMGS: 7\r\n\r\nOK\r\n")]
    with no_hang():
        check_atparse(ops, max_line)
