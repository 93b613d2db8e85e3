"""The smss-client contract, checked on every build of the client as a real process.

Each test runs three times: ``python3 clients/smss_client.py``, the native
POSIX build of ``clients/windows/smssclient.c``, and ``SMSSClient.exe`` under
Wine.  They talk to the real ``smss run`` server (the ``smss_server`` fixture)
or, for faults a real server does not commit, to a scripted TCP peer.
Without the MinGW cross compiler or Wine those builds are skipped with the
reason, except under CI (``$CI`` set), where a missing tool is a failure.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from support_client import (
    SAFETY_TIMEOUT,
    NativeRunner,
    PythonRunner,
    ScriptedPeer,
    ToolMissing,
    WineRunner,
    answer_after_eof,
    build,
    free_port,
)
from support_tools import missing as _missing

from smss.spooler.protocol import RecordParser

CZECH = "Příliš žluťoučký kůň úpěl ďábelské ódy"


@pytest.fixture(scope="session", params=["python", "native", "wine"])
def client(request, tmp_path_factory):
    """One build of the client; the Wine prefix is created once per session."""
    if request.param == "python":
        yield PythonRunner()
        return
    out = str(tmp_path_factory.mktemp(f"client-{request.param}"))
    try:
        if request.param == "native":
            yield NativeRunner(build("native", out))
            return
        runner = WineRunner(build("exe", out), str(tmp_path_factory.mktemp("wineprefix")))
    except ToolMissing as exc:
        _missing(str(exc))
    runner.boot()
    try:
        yield runner
    finally:
        runner.shutdown()


def at(server_or_peer) -> list:
    return ["-a", server_or_peer.host, "-p", str(server_or_peer.port)]


# --- against the real server


def test_accepted_records_are_stored_and_their_ids_printed(client, smss_server):
    result = client.run([*at(smss_server), "#420608337726;AHOJ#420777123456;Cau"])
    assert result.status == 0, result
    rows = smss_server.queued()
    assert [(phone, text) for _, phone, text in rows] == [
        ("+420608337726", "AHOJ"), ("+420777123456", "Cau")]
    assert result.lines == [f"OK {ident}" for ident, _, _ in rows]


def test_czech_text_and_special_characters_arrive_intact(client, smss_server):
    special = "a#b;c\\d\nline 2"
    runs = [
        [*at(smss_server), f"#420608337726;{CZECH}"],
        [*at(smss_server), "-n", "+420608337726", "-n", "777123456", "-m", CZECH],
        [*at(smss_server), "-n", "+420608337726", "-m", special],
        # Task Scheduler style: the words of an unquoted text are separate arguments
        [*at(smss_server), "#420608337726;Zaloha", "selhala", "na", "SRV01"],
    ]
    for args in runs:
        result = client.run(args)
        assert result.status == 0, (args, result)
    piped = client.run([*at(smss_server), "-n", "608337726"], stdin=f"{CZECH}\n".encode())
    assert piped.status == 0, piped
    assert [(phone, text) for _, phone, text in smss_server.queued()] == [
        ("+420608337726", CZECH),
        ("+420608337726", CZECH),
        ("+420777123456", CZECH),
        ("+420608337726", special),
        ("+420608337726", "Zaloha selhala na SRV01"),
        ("+420608337726", CZECH),
    ]


def test_an_err_reply_means_failure_and_the_good_records_are_still_reported(client, smss_server):
    result = client.run([*at(smss_server), "#420608337726;ok#abc;bad number"])
    assert result.status == 1, result
    rows = smss_server.queued()
    assert [(phone, text) for _, phone, text in rows] == [("+420608337726", "ok")]
    assert result.lines == [f"OK {rows[0][0]}"]
    assert "record 2: ERR 422" in result.stderr


def test_a_client_not_allowed_fails(client, server_factory):
    server = server_factory(server={"allow": "192.0.2.0/24"})
    result = client.run([*at(server), "#420608337726;AHOJ"])
    assert result.status == 1, result
    assert "ERR 403" in result.stderr
    assert result.lines == []
    assert server.queued() == []


# --- faults


def test_the_reason_of_a_server_that_hangs_up_at_once_is_reported(client):
    """Like a refusal: the peer answers before reading and closes while the client sends."""

    def refuse(conn):
        conn.sendall(b"ERR 403 client not allowed\r\n")

    with ScriptedPeer(refuse) as peer:
        result = client.run([*at(peer), "-n", "1"], stdin=b"x" * 8_000_000)
    assert result.status == 1, result
    assert "record 1: ERR 403 client not allowed" in result.stderr
    assert result.lines == []


def test_no_server_means_failure(client):
    result = client.run(["-a", "127.0.0.1", "-p", str(free_port()), "-r", "0", "#420608337726;x"])
    assert result.status == 1, result
    assert "cannot connect" in result.stderr
    assert "retrying" not in result.stderr
    assert result.lines == []


def test_connecting_is_retried_the_given_number_of_times(client):
    result = client.run(["-a", "127.0.0.1", "-p", str(free_port()), "-r", "2", "#420608337726;x"])
    assert result.status == 1, result
    assert [line.split("retrying in ")[1] for line in result.stderr.splitlines()
            if "retrying in" in line] == ["0.5 s", "1 s"]


def test_a_server_that_comes_up_during_the_retries_gets_the_records_once(client):
    port = free_port()
    process = client.start(["-a", "127.0.0.1", "-p", str(port), "-r", "8",
                            "#420608337726;a#420608337726;b"])
    try:
        first = process.stderr.readline().decode()
        assert "retrying in" in first, first
        with ScriptedPeer(answer_after_eof("OK 1", "OK 2"), port=port) as peer:
            stdout, stderr = process.communicate(timeout=SAFETY_TIMEOUT)
        assert process.returncode == 0, (stdout, stderr)
        assert peer.received == [b"#420608337726;a#420608337726;b"]
        assert stdout.decode().splitlines() == ["OK 1", "OK 2"]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_connection_closed_before_every_reply_is_a_failure_and_nothing_is_resent(client):
    with ScriptedPeer(answer_after_eof("OK 1")) as peer:
        result = client.run([*at(peer), "#420608337726;a#420608337726;b"])
    assert result.status == 1, result
    assert result.lines == ["OK 1"]
    assert "after 1 of 2 replies" in result.stderr
    assert peer.received == [b"#420608337726;a#420608337726;b"]


def test_a_silent_server_times_out_and_nothing_is_resent(client):
    def silent(conn):
        conn.read_until_eof()
        conn.hold()  # the connection stays open until the client gives up

    with ScriptedPeer(silent) as peer:
        result = client.run([*at(peer), "-t", "1", "-r", "3", "#420608337726;a"])
    assert result.status == 1, result
    assert "timed out" in result.stderr
    assert peer.received == [b"#420608337726;a"]


def test_the_client_stops_reading_once_every_record_is_answered(client):
    def answer_and_stay(conn):
        conn.read_until_eof()
        conn.sendall(b"OK 7\r\nOK 8\r\n")
        conn.hold()  # does not close: the client must not wait for the end

    with ScriptedPeer(answer_and_stay) as peer:
        result = client.run([*at(peer), "-t", "60", "#1;a#2;b"])
    assert result.status == 0, result
    assert result.lines == ["OK 7", "OK 8"]


def test_a_peer_that_is_not_an_smss_server_is_a_failure(client):
    with ScriptedPeer(answer_after_eof("OK 1", "HTTP/1.0 400 Bad Request", "OK 3")) as peer:
        result = client.run([*at(peer), "#1;a#2;b#3;c"])
    assert result.status == 1, result
    assert "unexpected reply" in result.stderr
    assert result.lines == ["OK 1"]


def test_an_unterminated_last_reply_counts(client):
    def no_line_end(conn):
        conn.read_until_eof()
        conn.sendall(b"OK 1\r\nOK 2")

    with ScriptedPeer(no_line_end) as peer:
        result = client.run([*at(peer), "#1;a#2;b"])
    assert result.status == 0, result
    assert result.lines == ["OK 1", "OK 2"]


TRICKY_PAYLOADS = [
    "#1;a#",  # a trailing '#' is no record
    "junk#1;a",  # junk before a record gets an error reply of its own
    "#1;a\\\nxyz",  # a backslash does not escape a line end
    "#1;a\r\n\r\n#2;b",  # blank lines are nothing
    "#123#1;x",  # '#PHONE' without ';' gets an error reply
    "# #1;x",  # an empty '#' is nothing
    "#1;a\\#b\\\\#2;c;d",
    "  #1;x  ",
    "#1;x\\",
]


@pytest.mark.parametrize("payload", TRICKY_PAYLOADS)
def test_the_client_expects_as_many_replies_as_the_server_sends(client, payload):
    """The peer answers once per event of the server's own parser, then closes."""

    def like_the_server(conn):
        data = conn.read_until_eof()
        parser = RecordParser()
        events = parser.feed(data) + parser.close()
        conn.sendall(b"".join(b"OK %d\r\n" % number for number in range(1, len(events) + 1)))

    with ScriptedPeer(like_the_server) as peer:
        result = client.run([*at(peer), payload])
    parser = RecordParser()
    expected = len(parser.feed(payload.encode()) + parser.close())
    assert result.status == 0, result
    assert result.lines == [f"OK {number}" for number in range(1, expected + 1)]
    assert peer.received == [payload.encode()]


# --- options


def test_host_and_port_from_the_environment(client):
    with ScriptedPeer(answer_after_eof("OK 1")) as peer:
        result = client.run(["#1;a"], env={"SMSS_HOST": peer.host, "SMSS_PORT": str(peer.port)})
    assert result.status == 0, result
    assert peer.received == [b"#1;a"]


def test_quiet_prints_nothing_on_success(client):
    with ScriptedPeer(answer_after_eof("OK 1")) as peer:
        result = client.run([*at(peer), "-q", "-n", "1", "-m", "x"])
    assert (result.status, result.stdout, result.stderr) == (0, "", "")


def test_text_on_stdin_that_is_not_utf8(client):
    """Bad bytes become U+FFFD; SMSSClient.exe reads them in the ANSI code page instead."""
    with ScriptedPeer(answer_after_eof("OK 1")) as peer:
        result = client.run([*at(peer), "-n", "1"], stdin=b"caf\xe9 x\r\n")
    assert result.status == 0, result
    # Wine's ANSI code page under LANG=C.UTF-8 is cp1252 (cp1250 on a Czech Windows).
    expected = "café x" if client.name == "wine" else "caf\ufffd x"
    assert peer.received == [f"#1;{expected}".encode()]


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["-m", "x"],
        ["-n", "1#2", "-m", "x"],
        ["-n", "1", "-m", "x", "#1;y"],
        ["-n", "1"],  # stdin is an empty pipe
        ["-p", "http", "#1;x"],
        ["-p", "70000", "#1;x"],
        ["-t", "0", "#1;x"],
        ["-t", "inf", "#1;x"],
        ["-t", "nan", "#1;x"],
        ["-r", "-1", "#1;x"],
        ["--bogus", "#1;x"],
        ["-a"],
    ],
)
def test_bad_usage_exits_2(client, args):
    result = client.run(args)
    assert result.status == 2, result
    assert result.stderr


def test_a_closed_stdin_is_no_text(client):
    command = ["sh", "-c", 'exec "$@" <&-', "sh", *client.command(["-n", "1", "-m", "-"])]
    completed = subprocess.run(command, capture_output=True, env=client.environ(None),
                               timeout=SAFETY_TIMEOUT)
    assert completed.returncode == 2, completed
    assert b"no message text on stdin" in completed.stderr


def test_help(client):
    result = client.run(["-h"])
    assert result.status == 0, result
    assert "exit status" in result.stdout
    assert "-n" in result.stdout and "-m" in result.stdout


def test_the_installed_console_script():
    program = shutil.which("smss-client")
    if program is None:
        _missing("smss-client is not installed (pip install -e .)")
    completed = subprocess.run([program, "-p", str(free_port()), "-r", "0", "#1;x"],
                               capture_output=True, timeout=SAFETY_TIMEOUT)
    assert completed.returncode == 1
    assert b"cannot connect" in completed.stderr
