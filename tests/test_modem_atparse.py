"""The sans-I/O AT response parser: every input is fed whole and one byte at a time."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from smss.modem.atparse import (
    AtParser,
    Discarded,
    Echo,
    Final,
    Info,
    Prompt,
    Unsolicited,
    command_names,
    parse_final,
)

CDS_PDU = "0006D60B911326880736F4111011719551401110117195714000"
DELIVER_PDU = "07912470338016000004038176F70000422051413221800341E211"


def run(data: bytes, command: str | None = None, *, parser: AtParser | None = None) -> list:
    """Events of ``data`` fed whole; asserts that byte-by-byte feeding gives the same."""
    whole = parser or AtParser()
    single = AtParser()
    if parser is not None:
        single._command, single._names = parser._command, list(parser._names)
        single._expect_prompt, single._pdu = parser._expect_prompt, parser._pdu
    if command is not None:
        whole.begin(command)
        single.begin(command)
    events = whole.feed(data)
    one_by_one = []
    for i in range(len(data)):
        one_by_one.extend(single.feed(data[i:i + 1]))
    assert one_by_one == events
    return events


def test_ok_with_echo_off():
    assert run(b"\r\nOK\r\n", "AT") == [Final("OK", True)]


def test_information_lines_and_echo():
    events = run(b"AT+CSQ\r\r\n+CSQ: 20,99\r\n\r\nOK\r\n", "AT+CSQ")
    assert events == [Echo("AT+CSQ"), Info("+CSQ: 20,99"), Final("OK", True)]


def test_error_codes_numeric_and_verbose():
    assert run(b"\r\n+CME ERROR: 10\r\n", "AT+CPIN?") == [
        Final("+CME ERROR: 10", False, "CME", 10)
    ]
    assert run(b"\r\n+CMS ERROR: 500\r\n", "AT+CMGL=4") == [
        Final("+CMS ERROR: 500", False, "CMS", 500)
    ]
    verbose = run(b"\r\n+CME ERROR: SIM PIN required\r\n", "AT+CPIN?")[0]
    assert (verbose.family, verbose.code, verbose.reason) == ("CME", 11, "SIM PIN required")
    busy = run(b"\r\n+CMS ERROR: SIM busy\r\n", "AT+CPMS?")[0]
    assert (busy.family, busy.code) == ("CMS", 314)
    odd = run(b"+CME ERROR: frobnicated\r\n", "AT")[0]
    assert (odd.ok, odd.code, odd.reason) == (False, None, "frobnicated")
    assert run(b"ERROR\r\n", "AT+X") == [Final("ERROR", False)]
    assert run(b"COMMAND NOT SUPPORT\r\n", "AT^X") == [Final("COMMAND NOT SUPPORT", False)]


def test_prompt_has_no_line_terminator():
    parser = AtParser()
    parser.begin("AT+CMGS=23")
    assert parser.feed(b"\r\n>") == []
    assert parser.feed(b" ") == [Prompt()]
    assert not parser.expecting_prompt


def test_cmgs_exchange_with_echo_on():
    parser = AtParser()
    assert run(b"AT+CMGS=23\r\r\n> ", "AT+CMGS=23", parser=parser) == [
        Echo("AT+CMGS=23"), Prompt()
    ]
    parser.begin_pdu(DELIVER_PDU)
    events = run((DELIVER_PDU + "\x1a\r\n+CMGS: 5\r\n\r\nOK\r\n").encode(), parser=parser)
    assert events == [Echo(DELIVER_PDU), Info("+CMGS: 5"), Final("OK", True)]


def test_unsolicited_inside_cmgs_exchange():
    parser = AtParser()
    before = run(b'\r\n+CMTI: "SM",3\r\n\r\n> ', "AT+CMGS=23", parser=parser)
    assert before == [Unsolicited("+CMTI", '"SM",3', '+CMTI: "SM",3'), Prompt()]
    parser.begin_pdu("0011")
    after = run(
        f"\r\n^RSSI: 15\r\n+CMGS: 7\r\n+CDS: 25\r\n{CDS_PDU}\r\nRING\r\n\r\nOK\r\n".encode(),
        parser=parser,
    )
    assert after == [
        Unsolicited("^RSSI", "15", "^RSSI: 15"),
        Info("+CMGS: 7"),
        Unsolicited("+CDS", "25", "+CDS: 25", CDS_PDU),
        Unsolicited("RING", "RING", "RING"),
        Final("OK", True),
    ]


def test_registration_line_is_answer_or_unsolicited_by_command():
    assert run(b"+CREG: 0,1\r\nOK\r\n", "AT+CREG?") == [Info("+CREG: 0,1"), Final("OK", True)]
    assert run(b"+CREG: 1\r\n+CSQ: 9,99\r\nOK\r\n", "AT+CSQ") == [
        Unsolicited("+CREG", "1", "+CREG: 1"),
        Info("+CSQ: 9,99"),
        Final("OK", True),
    ]


def test_huawei_and_siemens_unsolicited_lines():
    data = b"^RSSI: 12\r\n^BOOT:1,0,0,0,27\r\n^MODE: 5,4\r\n^SRVST: 2\r\n^SYSSTART\r\n"
    events = run(data + b"+CSQ: 12,99\r\nOK\r\n", "AT+CSQ")
    names = [e.name for e in events if isinstance(e, Unsolicited)]
    assert names == ["^RSSI", "^BOOT", "^MODE", "^SRVST", "^SYSSTART"]
    assert events[-2:] == [Info("+CSQ: 12,99"), Final("OK", True)]
    # a caret command's own answer stays an information line
    assert run(b"^SYSCFG: 2,2,3FFFFFFF,1,2\r\nOK\r\n", "AT^SYSCFG?")[0] == Info(
        "^SYSCFG: 2,2,3FFFFFFF,1,2"
    )


def test_lines_while_idle_are_unsolicited():
    events = run(b'\r\nRING\r\n+CLIP: "+420608337726",145\r\nNO CARRIER\r\nhello\r\n')
    assert [e.name for e in events] == ["RING", "+CLIP", "NO CARRIER", ""]
    assert all(isinstance(e, Unsolicited) for e in events)


def test_call_results_end_only_call_commands():
    assert run(b"\r\nNO CARRIER\r\n", "ATD+420608337726;") == [Final("NO CARRIER", False)]
    assert run(b"\r\nBUSY\r\n", "ATD123;") == [Final("BUSY", False)]
    events = run(b"\r\nNO CARRIER\r\nOK\r\n", "AT+CMGL=4")
    assert events == [Unsolicited("NO CARRIER", "NO CARRIER", "NO CARRIER"), Final("OK", True)]


def test_final_result_while_idle_is_still_reported():
    assert run(b"OK\r\n") == [Final("OK", True)]


def test_status_report_text_mode_has_no_second_line():
    line = '+CDS: 6,46,"+420608337726",145,"24/01/01,12:00:00+04","24/01/01,12:00:05+04",0'
    events = run((line + "\r\nOK\r\n").encode(), "AT")
    assert events[0] == Unsolicited("+CDS", line[6:], line)
    assert events[1] == Final("OK", True)


def test_cmt_pdu_and_text_mode():
    events = run(f"+CMT: ,24\r\n{DELIVER_PDU.lower()}\r\n".encode())
    assert events == [Unsolicited("+CMT", ",24", "+CMT: ,24", DELIVER_PDU)]
    text = '+CMT: "+420608337726",,"24/01/01,12:00:00+04"'
    assert run((text + "\r\nAhoj\r\n").encode()) == [
        Unsolicited("+CMT", text[6:], text, "Ahoj")
    ]


def test_cds_without_its_pdu_is_not_lost():
    assert run(b"+CDS: 25\r\nOK\r\n", "AT") == [
        Unsolicited("+CDS", "25", "+CDS: 25"),
        Final("OK", True),
    ]
    parser = AtParser()
    assert parser.feed(b"+CDS: 25\r\n") == []
    assert parser.flush() == [Unsolicited("+CDS", "25", "+CDS: 25")]


def test_ussd_answer_spanning_lines():
    data = b'\r\n+CUSD: 0,"Kredit 100 Kc\r\nplatnost do 1.1.2025",15\r\n'
    events = run(data)
    assert len(events) == 1
    assert events[0].name == "+CUSD"
    assert events[0].args == '0,"Kredit 100 Kc\nplatnost do 1.1.2025",15'
    # an unbalanced quote does not swallow the final result code
    events = run(b'+CUSD: 0,"broken\r\nOK\r\n', "AT+CUSD=1,\"*100#\",15")
    assert events == [Info('+CUSD: 0,"broken'), Final("OK", True)]


def test_latin1_digits_are_not_numbers():
    # "\xb3" decodes to a superscript three, which str.isdigit() accepts and int() does not
    [final] = run(b"+CMS ERROR: 5\xb3\r\n", "AT+CMGS=5")
    assert (final.ok, final.family, final.code, final.reason) == (False, "CMS", None, "5\xb3")
    events = run(b"+CDS: 2\xb9\r\n00AA\r\n")
    assert [e.pdu for e in events] == [None, None]  # no PDU expected after a non-length


def test_noise_is_dropped():
    events = run(b"\x00\xff\r\n\x00O\x00K\xff\r\n\x07\r\n", "AT")
    assert events == [Final("OK", True)]


def test_overlong_line_is_discarded_and_parsing_goes_on():
    parser = AtParser(max_line=64)
    events = parser.feed(b"X" * 100 + b"\r\nOK\r\n")
    assert isinstance(events[0], Discarded)
    assert events[1:] == [Final("OK", True)]


def test_listing_lines_are_information():
    data = f'+CMGL: 1,0,,23\r\n{DELIVER_PDU}\r\n+CMGL: 2,1,"",23\r\n{DELIVER_PDU}\r\nOK\r\n'
    events = run(data.encode(), "AT+CMGL=4")
    assert [type(e) for e in events] == [Info, Info, Info, Info, Final]


def test_prompt_only_when_expected():
    parser = AtParser()
    parser.begin("AT+CSQ")
    assert parser.feed(b"> ") == []
    assert parser.feed(b"\r\n") == [Info(">")]


def test_command_names():
    assert command_names("AT+CSQ") == ["+CSQ"]
    assert command_names("at+creg?;+cops?") == ["+CREG", "+COPS"]
    assert command_names("AT^SYSCFG?") == ["^SYSCFG"]
    assert command_names("ATZ") == []
    assert parse_final("  ok ") == Final("  ok ", True)
    assert parse_final("+CMS ERROR:  42") == Final("+CMS ERROR:  42", False, "CMS", 42)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([None, "AT", "AT+CMGS=23", "AT+CMGL=4"]))
def test_random_bytes_never_crash(data, command):
    parser = AtParser(max_line=128)
    if command:
        parser.begin(command)
    events = parser.feed(data) + parser.flush()
    for event in events:
        assert isinstance(event, (Echo, Info, Prompt, Final, Unsolicited, Discarded))


_PIECES = [
    b"\r\n", b"OK", b"ERROR", b"+CMS ERROR: 42", b"+CME ERROR: SIM busy", b"> ", b"+CDS: 25",
    CDS_PDU.encode(), b"+CMTI: \"SM\",1", b"+CUSD: 0,\"a", b"b\",15", b"RING", b"\x00", b"\xff",
    b"+CMGS: 3", b"AT+CMGS=23\r", b"^RSSI: 3", b"\x1a", b"+CMT: ,24", b"+CMS ERROR: ",
    b"+CME ERROR: 1", b"\xb2", b"\xb3", b"\xb9", b"+CDS: ", b"7",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_PIECES), max_size=30),
    st.lists(st.integers(min_value=0, max_value=2000), max_size=10),
    st.sampled_from([None, "AT", "AT+CMGS=23", "AT+CUSD=1"]),
)
def test_chunking_never_changes_the_events(pieces, cuts, command):
    data = b"".join(pieces)
    whole, chunked = AtParser(), AtParser()
    if command:
        whole.begin(command)
        chunked.begin(command)
    expected = whole.feed(data) + whole.flush()
    got = []
    start = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts) + [len(data)]:
        got.extend(chunked.feed(data[start:cut]))
        start = cut
    got.extend(chunked.flush())
    assert got == expected
