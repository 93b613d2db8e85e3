"""AMI framing (pure): the banner, packets, Yeastar's SMS events with their odd last line,
``Response: Follows`` command output in the shapes Asterisk versions write it, limits,
and every input also fed one byte at a time."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smss.gateways.ami import MAX_LINE, AmiParser, AmiProtocolError, encode

BANNER = b"Asterisk Call Manager/1.1\r\n"

# seed 004's ReceivedSMS event, as the TG puts it on the wire
RECEIVED = (b"Event: ReceivedSMS\r\nPrivilege: all,smscommand\r\nID: \r\nGsmSpan: 4\r\n"
            b"Sender: +79991234567\r\nRecvtime: 2016-07-15 17:49:55\r\nIndex: 1\r\nTotal: 1\r\n"
            b"Smsc: +79997456321\r\nContent: %EF%BB%BF%D0%9A%D1%83-%D0%BA%D1%83\r\n"
            b"--END SMS EVENT--\r\n\r\n")
UPDATE = (b"Event: UpdateSMSSend\r\nPrivilege: all,smscommand\r\nID: 11111\r\nStatus: 1\r\n"
          b"Smsc: +79991234567\r\n--END SMS EVENT--\r\n\r\n")
# Asterisk 1.4/1.8 (what the TG runs): output lines end in a bare LF
FOLLOWS = (b"Response: Follows\r\nPrivilege: Command\r\nActionID: smss-3\r\n"
           b"USSD Responses:0\nUSSD Code:72\nUSSD Message: 04110430043B0430043D0441\n"
           b"--END COMMAND--\r\n\r\n")


def feed(data: bytes, banner: bool = True, bytewise: bool = False):
    parser = AmiParser(expect_banner=banner)
    if not bytewise:
        return parser, parser.feed(data)
    packets = []
    for index in range(len(data)):
        packets.extend(parser.feed(data[index:index + 1]))
    return parser, packets


@pytest.fixture(params=[False, True], ids=["whole", "bytewise"])
def bytewise(request):
    return request.param


def test_banner_then_login_response(bytewise):
    data = BANNER + (b"Response: Success\r\nActionID: smss-1\r\n"
                     b"Message: Authentication accepted\r\n\r\n")
    parser, [packet] = feed(data, bytewise=bytewise)
    assert parser.banner == "Asterisk Call Manager/1.1"
    assert packet.response == "Success" and packet.action_id == "smss-1"
    assert packet.get("message") == "Authentication accepted"


def test_not_an_ami_server():
    with pytest.raises(AmiProtocolError, match="not an AMI server"):
        AmiParser().feed(b"HTTP/1.1 400 Bad Request\r\n")


def test_received_sms_event(bytewise):
    _, [packet] = feed(BANNER + RECEIVED, bytewise=bytewise)
    assert packet.event == "ReceivedSMS"
    assert packet.as_dict()["ID"] == "" and packet.get("GsmSpan") == "4"
    assert packet.get("Content") == "%EF%BB%BF%D0%9A%D1%83-%D0%BA%D1%83"
    assert packet.extra == ["--END SMS EVENT--"]
    assert packet.raw == RECEIVED


def test_events_and_responses_in_one_chunk(bytewise):
    _, packets = feed(BANNER + RECEIVED + UPDATE + b"\r\n" + FOLLOWS, bytewise=bytewise)
    assert [p.event or p.response for p in packets] == ["ReceivedSMS", "UpdateSMSSend", "Follows"]
    assert packets[1].get("Status") == "1" and packets[1].get("ID") == "11111"


def test_follows_output_with_bare_line_feeds(bytewise):
    _, [packet] = feed(BANNER + FOLLOWS, bytewise=bytewise)
    assert packet.action_id == "smss-3" and packet.get("Privilege") == "Command"
    assert packet.output == ["USSD Responses:0", "USSD Code:72",
                             "USSD Message: 04110430043B0430043D0441"]


def test_follows_with_the_marker_glued_to_the_last_line(bytewise):
    data = b"Response: Follows\r\nActionID: 7\r\nline one\nline two--END COMMAND--\r\n\r\n"
    _, [packet] = feed(data, banner=False, bytewise=bytewise)
    assert packet.output == ["line one", "line two"]


def test_follows_with_no_output(bytewise):
    data = b"Response: Follows\r\nPrivilege: Command\r\nActionID: 9\r\n--END COMMAND--\r\n\r\n"
    _, [packet] = feed(data, banner=False, bytewise=bytewise)
    assert packet.output == [] and packet.action_id == "9"


def test_output_headers_of_newer_asterisk(bytewise):
    data = (b"Response: Success\r\nActionID: 4\r\nMessage: Command output follows\r\n"
            b"Output: first\r\nOutput: USSD Message: 0041\r\n\r\n")
    _, [packet] = feed(data, banner=False, bytewise=bytewise)
    assert packet.output == ["first", "USSD Message: 0041"]


def test_follows_output_with_crlf_lines_keeps_the_headers_apart(bytewise):
    data = (b"Response: Follows\r\nActionID: 5\r\nUSSD Message: 0041\r\nsome text\r\n"
            b"more: text\r\n--END COMMAND--\r\n\r\n")
    _, [packet] = feed(data, banner=False, bytewise=bytewise)
    assert packet.get("USSD Message") == "0041"
    assert packet.output == ["some text", "more: text"]


def test_blank_lines_between_packets_and_bare_lf_servers(bytewise):
    data = b"\r\n\r\nResponse: Pong\nActionID: 2\n\nEvent: FullyBooted\nStatus: Fully Booted\n\n"
    _, packets = feed(data, banner=False, bytewise=bytewise)
    assert [(p.response, p.event) for p in packets] == [("Pong", None), (None, "FullyBooted")]


def test_a_partial_packet_waits(bytewise):
    parser, packets = feed(BANNER + RECEIVED[:40], bytewise=bytewise)
    assert packets == [] and parser.pending
    assert [p.event for p in parser.feed(RECEIVED[40:])] == ["ReceivedSMS"]
    assert not parser.pending


def test_limits():
    with pytest.raises(AmiProtocolError, match="longer than"):
        AmiParser(expect_banner=False).feed(b"Key: " + b"x" * (MAX_LINE + 10))
    with pytest.raises(AmiProtocolError, match="more than"):
        AmiParser(expect_banner=False).feed(b"Key: value\r\n" * 3000)


def test_encode_refuses_line_breaks():
    assert encode([("Action", "Ping"), ("ActionID", "1")]) == b"Action: Ping\r\nActionID: 1\r\n\r\n"
    with pytest.raises(ValueError):
        encode({"Command": 'gsm send sms 2 123 "a\r\nb" 1'})


keys = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,15}", fullmatch=True)
values = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
                 max_size=60)


@given(st.lists(st.lists(st.tuples(keys, values), min_size=1, max_size=8), max_size=6),
       st.lists(st.integers(1, 50), max_size=20))
def test_encoded_packets_parse_back_in_any_split(packets, cuts):
    packets = [[(k, v.strip(" \t")) for k, v in fields] for fields in packets]
    packets = [f for f in packets if not (f[0][0].lower() == "response"
                                          and f[0][1].strip().lower() == "follows")]
    data = BANNER + b"".join(encode(fields) for fields in packets)
    parser = AmiParser()
    got, start = [], 0
    for cut in cuts + [len(data)]:
        got.extend(parser.feed(data[start:start + cut]))
        start += cut
    got.extend(parser.feed(data[start:]))
    assert [p.fields for p in got] == [[(k, v) for k, v in fields] for fields in packets]
