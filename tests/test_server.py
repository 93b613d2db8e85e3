"""The TCP front door, against a real `smss run` process over real loopback sockets."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from conftest import read_lines
from support_tools import missing, program

NC = shutil.which("nc")


def wait_for(predicate, timeout=20.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached in time")


def read_line(sock: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8").rstrip("\r\n")


@pytest.fixture(params=["sqlite", "mysql"])
def server(request, server_factory, tmp_path):
    if request.param == "mysql":
        return server_factory(request.getfixturevalue("mariadb").create_database())
    return server_factory()


def test_records_are_acknowledged_after_commit_in_order(server):
    replies = server.send(b"#420608337726;AHOJ#420777123456;Cau\r\n#bad;x\n#608337726;third")
    assert [r.split()[0] for r in replies] == ["OK", "OK", "ERR", "OK"]
    assert replies[2] == "ERR 422 invalid phone number 'bad': only digits, + and 00 allowed"
    ids = [int(r.split()[1]) for r in replies if r.startswith("OK")]
    assert server.queued() == [
        (ids[0], "+420608337726", "AHOJ"),
        (ids[1], "+420777123456", "Cau"),
        (ids[2], "+420608337726", "third"),
    ]


def test_czech_text_from_utf8_and_cp1250_clients(server):
    text = "Příliš žluťoučký kůň úpěl ďábelské ódy"
    replies = server.send(b"#608337726;" + text.encode() + b"\n#608337726;" + text.encode("cp1250"))
    assert [r[:2] for r in replies] == ["OK", "OK"]
    assert [row[2] for row in server.queued()] == [text, text]


def test_netcat_as_in_the_readme(smss_server):
    program("nc", "netcat-openbsd")
    result = subprocess.run(
        ["sh", "-c", f"printf '#420608337726;AHOJ#420777123456;Cau' | nc -N 127.0.0.1 "
                     f"{smss_server.port}"],
        capture_output=True, timeout=30, check=True,
    )
    assert [line.split()[0] for line in result.stdout.decode().splitlines()] == ["OK", "OK"]
    assert [row[1:] for row in smss_server.queued()] == [
        ("+420608337726", "AHOJ"), ("+420777123456", "Cau")]


def test_real_telnet_client(smss_server):
    program("telnet", "telnet")
    script = f"(printf '#420608337726;typed by hand\\r\\n'; sleep 2) | telnet 127.0.0.1 " \
             f"{smss_server.port}"
    result = subprocess.run(["sh", "-c", script], capture_output=True, timeout=30)
    assert b"OK " in result.stdout and b"ERR" not in result.stdout
    assert [row[2] for row in smss_server.queued()] == ["typed by hand"]


def test_typing_by_hand_line_by_line(smss_server):
    with smss_server.connect() as sock:
        sock.sendall(b"#420608337726;first line\r\n")
        assert read_line(sock).startswith("OK ")
        for byte in b"#420608337726;typed slowly\r\n":
            sock.sendall(bytes([byte]))
        assert read_line(sock).startswith("OK ")
    assert [row[2] for row in smss_server.queued()] == ["first line", "typed slowly"]


def test_client_that_sends_and_closes_without_reading(smss_server):
    payload = b"".join(b"#420608337726;message %d" % i for i in range(200))
    sock = smss_server.connect()
    sock.sendall(payload)
    sock.close()  # no shutdown, no reading: an old client
    rows = wait_for(lambda: len(smss_server.queued()) == 200 and smss_server.queued())
    assert [row[2] for row in rows] == [f"message {i}" for i in range(200)]


def test_partial_record_at_close_is_still_a_record(smss_server):
    with smss_server.connect() as sock:
        sock.sendall(b"#420608337726;complete#420608337726;no terminator")
        sock.shutdown(socket.SHUT_WR)
        assert len(read_lines(sock)) == 2
    assert [row[2] for row in smss_server.queued()] == ["complete", "no terminator"]


def test_client_outside_the_allow_list_is_refused(server_factory):
    server = server_factory(server={"allow": "127.0.0.1/32"})
    with socket.create_connection((server.host, server.port), timeout=10,
                                  source_address=("127.0.0.2", 0)) as sock:
        sock.sendall(b"#420608337726;should not be stored")
        assert read_lines(sock) == ["ERR 403 client not allowed"]
    assert server.send(b"#420608337726;allowed")[0].startswith("OK ")
    assert [row[2] for row in server.queued()] == ["allowed"]
    assert "refused 127.0.0.2: not in the allow list" in server.log()


def test_connection_limit(server_factory):
    server = server_factory(server={"max_connections": "5"})
    idle = [server.connect() for _ in range(5)]
    try:
        wait_for(lambda: server.log().count(": connected (") >= 5)
        with server.connect() as sock:
            assert read_lines(sock) == ["ERR 503 too many connections"]
    finally:
        for sock in idle:
            sock.close()
    wait_for(lambda: server.send(b"#420608337726;after")[0].startswith("OK "))


def test_idle_client_is_closed(server_factory):
    server = server_factory(server={"idle_timeout": "1"})
    with server.connect() as sock:
        sock.sendall(b"#420608337726;half a rec")
        assert read_lines(sock) == ["ERR 408 idle timeout, closing"]
    assert server.queued() == []  # an unfinished record on a timed-out connection is dropped
    assert "idle for 1.0s, closed" in server.log()


def test_trickling_client_hits_the_session_limit_and_others_are_served(server_factory):
    server = server_factory(server={"idle_timeout": "5", "session_timeout": "2"})
    trickler = server.connect()
    stop = threading.Event()

    def trickle():
        try:
            for byte in b"#420608337726;" + b"x" * 100:
                if stop.is_set():
                    return
                trickler.sendall(bytes([byte]))
                time.sleep(0.2)
        except OSError:
            pass

    thread = threading.Thread(target=trickle)
    thread.start()
    try:
        assert server.send(b"#420608337726;meanwhile")[0].startswith("OK ")
        assert read_lines(trickler)[-1] == "ERR 408 session time limit reached, closing"
    finally:
        stop.set()
        thread.join()
        trickler.close()
    assert [row[2] for row in server.queued()] == ["meanwhile"]


def test_ten_megabyte_line(smss_server):
    with smss_server.connect(timeout=60) as sock:
        sock.sendall(b"#420608337726;")
        block = b"a" * 65536
        for _ in range(160):
            sock.sendall(block)
        sock.sendall(b"\r\n#420608337726;after the flood")
        sock.shutdown(socket.SHUT_WR)
        replies = read_lines(sock)
    assert replies[0] == "ERR 413 record longer than 8192 bytes, skipped"
    assert replies[1].startswith("OK ")
    assert [row[2] for row in smss_server.queued()] == ["after the flood"]


def test_binary_garbage_uses_up_the_error_budget(smss_server):
    garbage = os.urandom(4096).replace(b"#", b"").replace(b"\n", b"\r")
    with smss_server.connect() as sock:
        sock.sendall(b"#420608337726;before\n" + (garbage + b"\n") * 20)
        replies = read_lines(sock)
    assert replies[0].startswith("OK ")
    assert replies[-1] == "ERR 429 too many errors, closing"
    assert len(replies) == 1 + 10 + 1
    assert smss_server.send(b"#420608337726;next client")[0].startswith("OK ")


def test_records_per_connection_limit(server_factory):
    server = server_factory(server={"max_records_per_connection": "5"})
    replies = server.send(b"".join(b"#420608337726;m%d" % i for i in range(8)))
    assert [r.split()[0] for r in replies] == ["OK"] * 5 + ["ERR"]
    assert replies[-1] == "ERR 429 too many records on one connection, closing"
    assert len(server.queued()) == 5


def test_thousand_idle_connections_do_not_block_others(smss_server):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        missing(f"the file descriptor limit {hard} is below 1200 (ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    idle = []
    try:
        for _ in range(1000):
            idle.append(smss_server.connect())
        assert smss_server.send(b"#420608337726;still served")[0].startswith("OK ")
    finally:
        for sock in idle:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert [row[2] for row in smss_server.queued()] == ["still served"]


def test_sigterm_answers_what_was_received_then_exits(smss_server):
    sock = smss_server.connect()
    sock.sendall(b"".join(b"#420608337726;m%d\n" % i for i in range(300)))
    time.sleep(0.5)  # the records are received; the connection stays open
    smss_server.process.send_signal(signal.SIGTERM)
    replies = read_lines(sock)
    sock.close()
    assert smss_server.stop() == 0
    acknowledged = [int(r.split()[1]) for r in replies if r.startswith("OK ")]
    assert len(acknowledged) == 300
    assert [row[0] for row in smss_server.queued()] == acknowledged


def test_storage_unavailable_gives_err_503_then_recovers(server_factory, tmp_path):
    from support_mariadb import MariaDB

    database = MariaDB(str(tmp_path / "own-mariadb"))
    database.start()
    try:
        server = server_factory(database.create_database("outage"))
        assert server.send(b"#420608337726;before")[0].startswith("OK ")
        database.stop()
        assert server.send(b"#420608337726;during") == ["ERR 503 storage unavailable, not stored"]
        database.start()
        assert server.send(b"#420608337726;after")[0].startswith("OK ")
        assert [row[2] for row in server.queued()] == ["before", "after"]
    finally:
        database.cleanup()


def test_kicks_are_collapsed_and_never_lost(server_factory, tmp_path):
    marker = tmp_path / "passes"
    script = tmp_path / "fake-dispatcher"
    script.write_text(f"#!/bin/sh\necho pass >> {marker}\nsleep 1.5\n")
    script.chmod(0o755)
    server = server_factory(server={"kick_command": str(script)})
    threads = [threading.Thread(target=server.send, args=(b"#420608337726;burst",))
               for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(4)  # both passes (the first, and one for kicks during it) are over
    assert len(server.queued()) == 50
    passes = marker.read_text().count("pass")
    assert 1 <= passes <= 2
    # a kick that arrives while a pass runs starts another pass afterwards
    marker.write_text("")
    server.send(b"#420608337726;one")
    wait_for(lambda: marker.read_text().count("pass") == 1)
    server.send(b"#420608337726;during the pass")
    wait_for(lambda: marker.read_text().count("pass") == 2, timeout=10)


def test_kick_signals_a_dispatcher_that_holds_the_lock(server_factory, tmp_path):
    """With `check_and_send --loop` (or any pass) holding the lock, a kick is a SIGUSR1."""
    pokes, spawned = tmp_path / "pokes", tmp_path / "spawned"
    holder_script = tmp_path / "check_and_send_holder.py"  # "check_and_send" in its cmdline
    holder_script.write_text(
        "import os, signal, sys, time\n"
        f"signal.signal(signal.SIGUSR1, lambda *a: open({str(pokes)!r}, 'a').write('poke\\n'))\n"
        f"open({str(tmp_path / 'cas.lock')!r}, 'w').write(f'{{os.getpid()}}\\n')\n"
        "time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, str(holder_script)])
    try:
        wait_for(lambda: (tmp_path / "cas.lock").exists())
        spawn = tmp_path / "spawn"
        spawn.write_text(f"#!/bin/sh\necho x >> {spawned}\n")
        spawn.chmod(0o755)
        server = server_factory(server={"kick_command": str(spawn)},
                                dispatcher={"lockfile": str(tmp_path / "cas.lock")})
        assert server.send(b"#420608337726;for the loop")[0].startswith("OK ")
        wait_for(lambda: pokes.exists() and pokes.read_text().count("poke") == 1)
        assert not spawned.exists()
    finally:
        holder.kill()
        holder.wait()
    # a lock left by a dead holder is no holder: the command is started again
    assert server.send(b"#420608337726;nobody holds the lock")[0].startswith("OK ")
    wait_for(lambda: spawned.exists())
