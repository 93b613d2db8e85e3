"""smss-client's pure parts: escaping, units and their spans, reply lines, servers, settings.

The server's own parser (smss.spooler.protocol.RecordParser) is the oracle: what the
client escapes must parse back to the same text, the client must expect
exactly as many replies as the server will send, and each unit's byte span,
sent again alone or with other units, must be the same record to the server.
The failover loop is tested at the end against refused connections on 127.0.0.1.
"""

from __future__ import annotations

import io

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from smss.clients import smss_client as client

from smss.spooler.protocol import Record, RecordParser


def server_events(payload: bytes, split: int = 0, max_record_bytes: int = 1 << 20):
    """What the server makes of ``payload``, fed whole or one byte at a time."""
    parser = RecordParser(max_record_bytes=max_record_bytes)
    events = []
    if split:
        for index in range(len(payload)):
            events += parser.feed(payload[index : index + 1])
    else:
        events += parser.feed(payload)
    return events + parser.close()


PROTOCOL_BYTES = st.lists(
    st.sampled_from([b"#", b";", b"\\", b"\r", b"\n", b" ", b"\t", b"4", b"2", b"+", b"a",
                     b"\xc5\x99", b"\xe8", b"n", b"r", b"\x00", b"\x0b"]),
    max_size=40,
).map(b"".join)


@given(PROTOCOL_BYTES)
@example(b"#420;AHOJ#")
@example(b"hello#420;x")
@example(b"#1;a\\\nxyz")
@example(b"# #\n#")
@example(b"#\x0b#1")
def test_count_records_agrees_with_the_server_parser(payload):
    assert client.count_records(payload) == len(server_events(payload))


@given(PROTOCOL_BYTES, st.sampled_from([1 << 20, 6]), st.data())
@example(b"junk#1;a#2;b\r\n#123#  #3;x\\\nzz", 1 << 20, None)
@example(b"#1;a\\\nxyz", 1 << 20, None)
@example(b"#12345;67890#1;x", 6, None)
def test_each_span_is_one_unit_and_spans_resent_are_the_same_units(payload, limit, data):
    """Sent alone or joined for a resend, fed whole or one byte at a time, each span is
    the unit the server answered in the whole payload (also an overlong one: ERR 413)."""
    spans = client.record_spans(payload)
    events = server_events(payload, max_record_bytes=limit)
    assert len(spans) == len(events)
    assert all(start < end for start, end in spans)
    assert all(left[1] <= right[0] for left, right in zip(spans, spans[1:]))
    for (start, end), event in zip(spans, events):
        for split in (0, 1):
            assert server_events(payload[start:end], split, limit) == [event]
    everything = list(range(len(spans)))
    assert client.resend_payload(payload, spans, everything) == payload
    if data is None:  # the explicit examples: every other unit
        chosen = everything[1::2]
    else:
        chosen = data.draw(st.lists(st.sampled_from(everything), unique=True).map(sorted)
                           if spans else st.just([]))
    resent = client.resend_payload(payload, spans, chosen)
    for split in (0, 1):
        assert server_events(resent, split, limit) == [events[index] for index in chosen]


def test_record_spans_by_example():
    payload = b"junk#1;a#2;b\r\n#123#  #3;x\\\nzz"
    assert [payload[start:end] for start, end in client.record_spans(payload)] == [
        b"junk", b"#1;a", b"#2;b", b"#123", b"#3;x\\", b"zz"]
    assert client.resend_payload(payload, client.record_spans(payload), [1, 4]) == (
        b"#1;a\n#3;x\\")


@given(st.text(), st.sampled_from(["+420608337726", "420608337726", "00420 608 337 726"]))
def test_escaped_text_parses_back_to_itself(text, phone):
    record = client.make_record(phone, text).encode("utf-8", "surrogateescape")
    for split in (0, 1):
        events = server_events(record, split)
        assert events == [Record(phone, text)]
    assert client.count_records(record) == 1


@given(st.lists(st.text(), min_size=1, max_size=5))
def test_several_escaped_records_each_get_one_reply(texts):
    payload = "".join(client.make_record("+420608337726", text) for text in texts).encode()
    assert client.count_records(payload) == len(texts)
    assert [event.text for event in server_events(payload)] == texts


def test_escape_text_escapes_exactly_the_protocol_characters():
    assert client.escape_text("a#b;c\\d\ne\rf") == "a\\#b\\;c\\\\d\\ne\\rf"
    assert client.escape_text("Příliš žluťoučký kůň") == "Příliš žluťoučký kůň"


@pytest.mark.parametrize("phone", ["", "  ", "1#2", "1;2", "1\\2", "1\n2", "1\r2"])
def test_check_phone_rejects_what_would_break_the_framing(phone):
    with pytest.raises(ValueError):
        client.check_phone(phone)


def test_check_phone_keeps_what_the_server_judges():
    assert client.check_phone(" +420 608-337.726 ") == "+420 608-337.726"


@pytest.mark.parametrize(
    "line, expected",
    [
        ("OK 17", (True, "17", "", "")),
        ("OK 17 queued", (True, "17", "", "")),
        ("ERR 422 invalid phone number: x", (False, "", "422", "invalid phone number: x")),
        ("ERR 503", (False, "", "503", "")),
    ],
)
def test_parse_reply(line, expected):
    reply = client.parse_reply(line)
    assert (reply.ok, reply.ident, reply.code, reply.reason) == expected
    assert reply.line == line


@pytest.mark.parametrize("line", ["", "OK", "OK ", "ok 1", "ERR", "HTTP/1.0 400 Bad Request"])
def test_parse_reply_rejects_other_lines(line):
    with pytest.raises(client.ClientError):
        client.parse_reply(line)


# --- settings and payloads


def parse(argv, environ=None, stdin=None):
    parser = client.build_parser()
    args = parser.parse_intermixed_args(argv)
    settings = client.resolve_settings(args, parser, environ or {})
    return settings, args, parser


def servers(*pairs):
    return tuple(client.Server(host, port) for host, port in pairs)


def test_defaults():
    settings, _, _ = parse(["#1;x"])
    assert settings == client.Settings(servers(("127.0.0.1", 2021)), 30.0, 3)


def test_options_beat_the_config_file_which_beats_the_environment(tmp_path):
    config = tmp_path / "client.conf"
    config.write_text("[server]\nport = 1\n[client]\nhost = sms.example.net\ntimeout = 5\n")
    environ = {"SMSS_HOST": "env.example.net", "SMSS_PORT": "2500"}
    settings, _, _ = parse(["-c", str(config), "#1;x"], environ)
    assert settings == client.Settings(servers(("sms.example.net", 2500)), 5.0, 3)
    settings, _, _ = parse(["-c", str(config), "-a", "cli", "-p", "7", "-r", "0", "#1;x"], environ)
    assert settings == client.Settings(servers(("cli", 7)), 5.0, 0)
    settings, _, _ = parse(["#1;x"], environ)
    assert settings == client.Settings(servers(("env.example.net", 2500)), 30.0, 3)


def test_a_list_of_servers_from_the_option_the_config_file_and_the_environment(tmp_path):
    expected = servers(("sms1", 2022), ("sms2", 2500), ("::1", 2021), ("fe80::1", 2500))
    config = tmp_path / "client.conf"
    config.write_text("[client]\nhost = sms1:2022, sms2,[::1]:2021 ,fe80::1\nport = 2500\n")
    assert parse(["-c", str(config), "#1;x"])[0].servers == expected
    environ = {"SMSS_HOST": "sms1:2022, sms2,[::1]:2021 ,fe80::1", "SMSS_PORT": "2500"}
    assert parse(["#1;x"], environ)[0].servers == expected
    argv = ["-a", "sms1:2022, sms2,[::1]:2021 ,fe80::1", "-p", "2500", "#1;x"]
    assert parse(argv)[0].servers == expected
    assert parse(["-a", "a,b", "#1;x"], environ)[0].servers == servers(("a", 2500), ("b", 2500))


@pytest.mark.parametrize("text, expected", [
    ("sms.example.net", [("sms.example.net", 2021)]),
    ("10.0.0.1:2022", [("10.0.0.1", 2022)]),
    ("a,b:1, c ", [("a", 2021), ("b", 1), ("c", 2021)]),
    ("[::1]:2022", [("::1", 2022)]),
    ("[2001:db8::7]", [("2001:db8::7", 2021)]),
    ("2001:db8::7", [("2001:db8::7", 2021)]),
])
def test_parse_servers(text, expected):
    assert client.parse_servers(text, 2021) == [client.Server(*pair) for pair in expected]


@pytest.mark.parametrize("text", ["", "a,", ",a", "a,,b", "a:", "a:http", "a:0", "a:65536",
                                  ":2021", "[::1", "[::1]2021", "[]:1", "a b", "[::1]:"])
def test_parse_servers_rejects(text):
    with pytest.raises(ValueError):
        client.parse_servers(text, 2021)


def test_server_labels():
    assert client.Server("10.0.0.1", 2021).label == "10.0.0.1:2021"
    assert client.Server("::1", 2021).label == "[::1]:2021"


@pytest.mark.parametrize("argv, environ, config", [
    (["-a", "a,,b", "#1;x"], {}, None),
    (["-a", "a:x", "#1;x"], {}, None),
    (["-a", "", "#1;x"], {}, None),
    (["#1;x"], {"SMSS_HOST": "[::1"}, None),
    (["#1;x"], {}, "[client]\nhost = a,\n"),
])
def test_a_bad_list_of_servers_is_a_usage_error(tmp_path, argv, environ, config):
    if config is not None:
        path = tmp_path / "client.conf"
        path.write_text(config)
        argv = ["-c", str(path), *argv]
    with pytest.raises(SystemExit) as stop:
        parse(argv, environ)
    assert stop.value.code == 2


def test_describe_names_record_numbers_in_runs():
    assert client.describe([1]) == "record 2"
    assert client.describe([0, 1, 2, 4, 6, 7]) == "records 1-3, 5, 7-8"


@pytest.mark.parametrize("text", ["[client]\nhots = x\n", "[client]\nport = many\n", "no section"])
def test_a_bad_config_file_is_a_usage_error(tmp_path, text, capsys):
    config = tmp_path / "client.conf"
    config.write_text(text)
    with pytest.raises(SystemExit) as stop:
        parse(["-c", str(config), "#1;x"])
    assert stop.value.code == 2
    assert str(config) in capsys.readouterr().err


def test_a_bad_environment_port_is_a_usage_error():
    with pytest.raises(SystemExit) as stop:
        parse(["#1;x"], {"SMSS_PORT": "http"})
    assert stop.value.code == 2


class FakeTty(io.BytesIO):
    def isatty(self):
        return True


class Pipe(io.BytesIO):
    def isatty(self):
        return False


def payload(argv, stdin=None):
    _, args, parser = parse(argv)
    return client.build_payload(args, parser, stdin if stdin is not None else FakeTty())


def test_records_are_sent_as_is_and_several_arguments_joined_by_spaces():
    assert payload(["#420608337726;Zprava", "o", "zaloze"]) == b"#420608337726;Zprava o zaloze"
    assert payload(["#1;a\\;b#2;c"]) == b"#1;a\\;b#2;c"


def test_numbers_and_message_make_one_escaped_record_each():
    assert payload(["-n", "1", "-n", "+2", "-m", "a#b;ř\n"]) == (
        "#1;a\\#b\\;ř\\n#+2;a\\#b\\;ř\\n".encode()
    )


def test_the_text_comes_from_a_pipe_as_utf8_with_bad_bytes_replaced():
    stdin = Pipe(b"\xef\xbb\xbfdisk full\r\nP\xc5\x99\xedli\xc5\xa1\n\n")
    assert payload(["-n", "1"], stdin) == "#1;disk full\\r\\nP\u0159\ufffdli\u0161".encode()
    assert payload(["-n", "1", "-m", "-"], FakeTty(b"x\n")) == b"#1;x"


@pytest.mark.parametrize(
    "argv, stdin",
    [
        ([], None),  # nothing to send
        (["-m", "x"], None),  # no -n
        (["-n", "1"], None),  # a tty and no -m
        (["-n", "1"], Pipe(b"\n")),  # empty text on the pipe
        (["-n", "1#2", "-m", "x"], None),
        (["-n", "1", "-m", "x", "#1;y"], None),
    ],
)
def test_usage_errors(argv, stdin):
    with pytest.raises(SystemExit) as stop:
        payload(argv, stdin)
    assert stop.value.code == 2


@pytest.mark.parametrize("argv", [["-p", "0", "#1;x"], ["-p", "x", "#1;x"], ["-t", "0", "#1;x"],
                                  ["-r", "-1", "#1;x"]])
def test_bad_option_values_are_usage_errors(argv):
    with pytest.raises(SystemExit) as stop:
        parse(argv)
    assert stop.value.code == 2


def test_rounds_over_every_server_with_doubling_backoff_and_then_give_up():
    """No server reachable: each round tries every server at once, rounds wait 0.5 s doubling."""
    down = [client.Server("127.0.0.1", _closed_port()), client.Server("127.0.0.1", _closed_port())]
    slept, reported = [], []
    delivery = client.send_records(b"#1;a#2;b", down, 5.0, 3, reported.append, slept.append)
    assert slept == [0.5, 1.0, 2.0]
    assert delivery.tries == 8
    assert delivery.replies == [None, None] and delivery.sent == [False, False]
    assert not delivery.ok
    connects = [line for line in reported if line.startswith("cannot connect to ")]
    assert [line.split(":")[1] for line in connects] == [str(down[0].port), str(down[1].port)] * 4
    assert [line for line in reported if "retrying" in line] == [
        f"records 1-2 not taken by any server; retrying in {delay} s"
        for delay in ("0.5", "1", "2")]
    assert client.summary(delivery) == [
        "records 1-2 not sent: no server could be reached"]


def test_nothing_to_send_is_an_error():
    with pytest.raises(client.ClientError):
        client.send_records(b"  \r\n# ", [client.Server("127.0.0.1", 9)], 5.0, 0)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
