"""smss-client without sockets: escaping, counting replies, reply lines, settings, payloads.

The server's own parser (smss.spooler.protocol.RecordParser) is the oracle: what the
client escapes must parse back to the same text, and the client must expect
exactly as many replies as the server will send.
"""

from __future__ import annotations

import io

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from smss.clients import smss_client as client

from smss.spooler.protocol import Record, RecordParser


def server_events(payload: bytes, split: int = 0):
    """What the server makes of ``payload``, fed whole or one byte at a time."""
    parser = RecordParser(max_record_bytes=1 << 20)
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


def test_defaults():
    settings, _, _ = parse(["#1;x"])
    assert settings == client.Settings("127.0.0.1", 2021, 30.0, 3)


def test_options_beat_the_config_file_which_beats_the_environment(tmp_path):
    config = tmp_path / "client.conf"
    config.write_text("[server]\nport = 1\n[client]\nhost = sms.example.net\ntimeout = 5\n")
    environ = {"SMSS_HOST": "env.example.net", "SMSS_PORT": "2500"}
    settings, _, _ = parse(["-c", str(config), "#1;x"], environ)
    assert settings == client.Settings("sms.example.net", 2500, 5.0, 3)
    settings, _, _ = parse(["-c", str(config), "-a", "cli", "-p", "7", "-r", "0", "#1;x"], environ)
    assert settings == client.Settings("cli", 7, 5.0, 0)
    settings, _, _ = parse(["#1;x"], environ)
    assert settings == client.Settings("env.example.net", 2500, 30.0, 3)


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


def test_connect_retries_with_doubling_backoff_and_then_gives_up():
    port = _closed_port()
    slept, retried = [], []
    with pytest.raises(client.ConnectError) as failure:
        client.connect("127.0.0.1", port, 5.0, 3, lambda reason, delay: retried.append(delay),
                       sleep=slept.append)
    assert slept == retried == [0.5, 1.0, 2.0]
    assert f"127.0.0.1:{port}" in str(failure.value)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
