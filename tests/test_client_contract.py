"""The smss-client contract, checked on every build of the client as a real process.

Each test runs three times: ``python3 clients/smss_client.py``, the native
POSIX build of ``clients/windows/smssclient.c``, and ``SMSSClient.exe`` under
Wine.  They talk to the real ``smss run`` server (the ``smss_server`` fixture)
or, for faults a real server does not commit, to a scripted TCP peer; the
failover tests use several of them (``-a host1,host2``), two real servers one
of which has lost its database among them.
Without the MinGW cross compiler or Wine those builds are skipped with the
reason, except under CI (``$CI`` set), where a missing tool is a failure.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from support_client import (
    SAFETY_TIMEOUT,
    STORAGE_UNAVAILABLE,
    TOO_MANY_CONNECTIONS,
    NativeRunner,
    PythonRunner,
    ScriptedPeer,
    ToolMissing,
    WineRunner,
    answer_after_eof,
    answer_each,
    build,
    free_port,
    refuse,
    silent,
    store_all,
    units_of,
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


def address(server_or_peer) -> str:
    return f"{server_or_peer.host}:{server_or_peer.port}"


def at_all(*servers_or_peers) -> list:
    """``-a host:port,host:port,...``; a string is taken as an address as it is."""
    return ["-a", ",".join(item if isinstance(item, str) else address(item)
                           for item in servers_or_peers)]


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
        line = process.stderr.readline().decode()
        while line and "retrying in" not in line:
            line = process.stderr.readline().decode()
        assert "retrying in" in line, line
        with ScriptedPeer(answer_after_eof("OK 1", "OK 2"), port=port) as peer:
            stdout, stderr = process.communicate(timeout=SAFETY_TIMEOUT)
        assert process.returncode == 0, (stdout, stderr)
        assert peer.received == [b"#420608337726;a#420608337726;b"]
        assert stdout.decode().splitlines() == ["OK 1", "OK 2"]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_without_retries_a_connection_closed_before_every_reply_is_a_failure(client):
    with ScriptedPeer(answer_after_eof("OK 1")) as peer:
        result = client.run([*at(peer), "-r", "0", "#420608337726;a#420608337726;b"])
    assert result.status == 1, result
    assert result.lines == ["OK 1"]
    assert "the server closed the connection after 1 of 2 replies" in result.stderr
    assert "record 2: no reply from any server; a record without a reply may or may not" \
        " be stored" in result.stderr
    assert peer.received == [b"#420608337726;a#420608337726;b"]


def test_without_retries_a_silent_server_times_out_and_nothing_is_resent(client):
    with ScriptedPeer(silent) as peer:
        result = client.run([*at(peer), "-t", "1", "-r", "0", "#420608337726;a"])
        peer.close()  # ends the hold: the peer's record of the connection is complete
    assert result.status == 1, result
    assert "timed out after 1 s waiting for the server after 0 of 1 replies" in result.stderr
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
        result = client.run([*at(peer), "-r", "0", "#1;a#2;b#3;c"])
    assert result.status == 1, result
    assert "unexpected reply" in result.stderr
    assert result.lines == ["OK 1"]
    assert "records 2-3: no reply from any server" in result.stderr


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


# --- failover: several servers


A = "#420608337726;a"
B = "#420777123456;b"
C = "#420608337726;c"
D = "#420777123456;d"


def test_an_unreachable_server_costs_no_wait_and_the_next_one_takes_everything(client):
    down = free_port()
    with ScriptedPeer(store_all(201)) as second:
        result = client.run([*at_all(f"127.0.0.1:{down}", second), A + B])
    assert result.status == 0, result
    assert result.lines == ["OK 201", "OK 202"]
    assert second.received == [(A + B).encode()]  # as given, byte for byte
    assert f"cannot connect to 127.0.0.1:{down}" in result.stderr
    assert f"{address(second)} stored records 1-2" in result.stderr
    assert "retrying" not in result.stderr


def test_the_servers_are_tried_in_the_order_given(client):
    with ScriptedPeer(store_all(101)) as first, ScriptedPeer(store_all(201)) as second:
        result = client.run([*at_all(first, second), A + B])
    assert (result.status, result.lines, result.stderr) == (0, ["OK 101", "OK 102"], "")
    assert first.received == [(A + B).encode()]
    assert second.received == []


def test_records_answered_err_503_go_to_the_next_server_and_only_they(client):
    def every_other_unavailable(index, unit):
        return STORAGE_UNAVAILABLE if index % 2 else f"OK {101 + index}"

    with ScriptedPeer(answer_each(every_other_unavailable)) as first, \
            ScriptedPeer(store_all(201)) as second:
        result = client.run([*at_all(first, second), A + B + C + D])
    assert result.status == 0, result
    assert result.lines == ["OK 101", "OK 201", "OK 103", "OK 202"]  # in record order
    assert first.received == [(A + B + C + D).encode()]
    assert units_of(b"".join(second.received)) == units_of((B + D).encode())
    assert f"{address(first)}: record 2: {STORAGE_UNAVAILABLE}" in result.stderr
    assert f"{address(first)}: record 4: {STORAGE_UNAVAILABLE}" in result.stderr
    assert f"{address(first)} stored records 1, 3" in result.stderr
    assert f"{address(second)} stored records 2, 4" in result.stderr


def test_a_server_refusing_with_err_503_sends_everything_to_the_next(client):
    with ScriptedPeer(refuse(TOO_MANY_CONNECTIONS)) as first, \
            ScriptedPeer(store_all(201)) as second:
        result = client.run([*at_all(first, second), A + B + C])
    assert result.status == 0, result
    assert result.lines == ["OK 201", "OK 202", "OK 203"]
    assert units_of(b"".join(second.received)) == units_of((A + B + C).encode())
    assert f"{address(first)}: record 1: {TOO_MANY_CONNECTIONS}" in result.stderr


def test_a_silent_server_is_down_for_the_records_it_did_not_answer(client):
    """Accepted, then nothing within -t: the records go to the next server.  The silent
    one read them and could still store them: the documented risk of a duplicate."""
    # -t also bounds the wait for the healthy second server: room for a loaded machine
    with ScriptedPeer(silent) as first, ScriptedPeer(store_all(201)) as second:
        result = client.run([*at_all(first, second), "-t", "3", A + B])
        first.close()
    assert result.status == 0, result
    assert result.lines == ["OK 201", "OK 202"]
    assert first.received == [(A + B).encode()]
    assert second.received == [(A + B).encode()]
    assert f"{address(first)}: timed out after 3 s waiting for the server after 0 of 2" \
        " replies" in result.stderr


def test_a_connection_lost_after_some_replies_sends_the_rest_to_the_next_server(client):
    """The unanswered record may have been committed before the connection broke; it is
    sent again all the same (a duplicate alert rather than a lost one)."""
    with ScriptedPeer(answer_each(lambda index, unit: "OK 101" if index == 0 else None)) as first, \
            ScriptedPeer(store_all(201)) as second:
        result = client.run([*at_all(first, second), A + B + C])
    assert result.status == 0, result
    assert result.lines == ["OK 101", "OK 201", "OK 202"]
    assert units_of(b"".join(second.received)) == units_of((B + C).encode())
    assert f"{address(first)}: the server closed the connection after 1 of 3 replies" \
        in result.stderr


def test_a_peer_that_is_not_an_smss_server_hands_the_rest_to_the_next(client):
    with ScriptedPeer(answer_after_eof("OK 101", "HTTP/1.0 400 Bad Request")) as first, \
            ScriptedPeer(store_all(201)) as second:
        result = client.run([*at_all(first, second), A + B + C])
    assert result.status == 0, result
    assert result.lines == ["OK 101", "OK 201", "OK 202"]
    assert units_of(b"".join(second.received)) == units_of((B + C).encode())
    assert "unexpected reply" in result.stderr


def test_a_final_error_is_not_sent_to_any_other_server(client):
    """ERR 4xx is the record's answer; the next server would say the same."""

    def judge(index, unit):
        if index == 0:
            return STORAGE_UNAVAILABLE
        return "ERR 422 invalid phone number 'abc'" if index == 1 else f"OK {101 + index}"

    with ScriptedPeer(answer_each(judge)) as first, ScriptedPeer(store_all(201)) as second:
        result = client.run([*at_all(first, second), A + "#abc;bad" + C])
    assert result.status == 1, result
    assert result.lines == ["OK 201", "OK 103"]
    assert units_of(b"".join(second.received)) == units_of(A.encode())
    assert "record 2: ERR 422 invalid phone number 'abc'" in result.stderr


def test_when_every_server_failed_the_rounds_start_again_after_a_backoff(client):
    """Round 1: the first refuses the connection, the second answers ERR 503; after
    0.5 s round 2 starts again with the first, which has come up meanwhile."""
    port = free_port()
    with ScriptedPeer(answer_each(lambda index, unit: STORAGE_UNAVAILABLE)) as second:
        process = client.start([*at_all(f"127.0.0.1:{port}", second), "-r", "5", A + B])
        try:
            line = process.stderr.readline().decode()
            while line and "retrying in" not in line:
                line = process.stderr.readline().decode()
            assert line.rstrip().endswith("records 1-2 not taken by any server;"
                                          " retrying in 0.5 s"), line
            with ScriptedPeer(store_all(101), port=port) as first:
                stdout, stderr = process.communicate(timeout=SAFETY_TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 0, (stdout, stderr)
    assert stdout.decode().splitlines() == ["OK 101", "OK 102"]
    assert first.received == [(A + B).encode()]
    # once a round, until the first one listens (round 2 unless the machine is slow)
    assert second.received and set(second.received) == {(A + B).encode()}


def test_records_no_server_takes_in_any_round_fail(client):
    def unavailable(index, unit):
        return STORAGE_UNAVAILABLE

    with ScriptedPeer(answer_each(unavailable)) as first, \
            ScriptedPeer(answer_each(unavailable)) as second:
        result = client.run([*at_all(first, second), "-r", "1", A + B])
    assert result.status == 1, result
    assert result.lines == []
    assert first.received == second.received == [(A + B).encode()] * 2
    assert [line.split("retrying in ")[1] for line in result.stderr.splitlines()
            if "retrying in" in line] == ["0.5 s"]
    assert f"record 1: {STORAGE_UNAVAILABLE}" in result.stderr.splitlines()[-2]
    assert f"record 2: {STORAGE_UNAVAILABLE}" in result.stderr.splitlines()[-1]


@pytest.mark.parametrize("payload", TRICKY_PAYLOADS)
def test_only_the_records_answered_err_503_are_sent_again(client, payload):
    """Every other unit of each tricky payload fails on the first server: the second
    gets exactly those units, parsed by the server's parser as the same records."""

    def every_other_unavailable(index, unit):
        return STORAGE_UNAVAILABLE if index % 2 else f"OK {101 + index}"

    with ScriptedPeer(answer_each(every_other_unavailable)) as first, \
            ScriptedPeer(store_all(201)) as second:
        result = client.run([*at_all(first, second), payload])
    units = units_of(payload.encode())
    assert result.status == 0, result
    assert units_of(b"".join(second.received)) == units[1::2]
    assert len(result.lines) == len(units)
    assert first.received == [payload.encode()]


def test_an_ipv6_address_in_brackets_and_a_list_from_the_environment(client):
    down = free_port()
    with ScriptedPeer(store_all(201)) as second:
        result = client.run([A], env={"SMSS_HOST": f" [::1]:{down} , {address(second)}"})
    assert result.status == 0, result
    assert result.lines == ["OK 201"]
    assert f"cannot connect to [::1]:{down}" in result.stderr


@pytest.mark.parametrize("hosts", ["a,,b", "a:x", "[::1", "[::1]x", "a:70000", ","])
def test_a_bad_list_of_servers_is_bad_usage(client, hosts):
    for args in (["-a", hosts, A], [A]):
        result = client.run(args, env={"SMSS_HOST": hosts})
        assert result.status == 2, (args, result)
        assert result.stderr


def test_smss_client_takes_its_list_of_servers_from_the_config_file(tmp_path):
    down = free_port()
    config = tmp_path / "client.conf"
    with ScriptedPeer(store_all(201)) as second:
        config.write_text(f"[client]\nhost = 127.0.0.1:{down}, {address(second)}\nretries = 0\n")
        result = PythonRunner().run(["-c", str(config), A])
    assert result.status == 0, result
    assert result.lines == ["OK 201"]
    assert second.received == [A.encode()]
    assert f"cannot connect to 127.0.0.1:{down}" in result.stderr


def test_records_refused_by_a_server_without_its_database_are_stored_once_on_the_next(
        client, server_factory, tmp_path):
    """Two real servers; the first one's MariaDB is down (ERR 503 for each record)."""
    from support_mariadb import MariaDB

    try:
        database = MariaDB(str(tmp_path / "own-mariadb"))
    except RuntimeError as exc:
        _missing(str(exc))
    database.start()
    try:
        first = server_factory(database.create_database("outage"))
        second = server_factory()
        database.stop()
        result = client.run([*at_all(first, second), "-r", "0", "-n", "+420608337726",
                             "-n", "777123456", "-m", CZECH])
        assert result.status == 0, result
        rows = second.queued()
        assert [(phone, text) for _, phone, text in rows] == [
            ("+420608337726", CZECH), ("+420777123456", CZECH)]
        assert result.lines == [f"OK {ident}" for ident, _, _ in rows]
        assert f"{address(first)}: record 1: {STORAGE_UNAVAILABLE}" in result.stderr
        assert f"{address(second)} stored records 1-2" in result.stderr
        database.start()
        assert first.queued() == []
    finally:
        database.cleanup()


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
