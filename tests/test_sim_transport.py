"""The simulator over its real transports: TCP sockets and a pseudo-terminal."""

from __future__ import annotations

import os
import re
import time

import pytest
import serial
from support_sim import AtClient, running_simulator

from smss.gsm import pdu as pducodec


@pytest.fixture(scope="module")
def sim():
    with running_simulator() as handle:
        yield handle


@pytest.fixture(autouse=True)
def fresh(sim):
    sim.control.reset()


def test_tcp_basic(sim):
    with AtClient(sim.url) as at:
        assert at.lines("AT") == ["AT", "OK"]
        assert at.lines("ATE0") == ["ATE0", "OK"]
        assert at.lines("AT+CGMI") == ["SMSS", "OK"]


def test_tcp_command_split_across_writes_and_several_in_one(sim):
    with AtClient(sim.url) as at:
        at.lines("ATE0")
        for piece in (b"A", b"T+C", b"SQ", b"\r"):
            at.write(piece)
            time.sleep(0.02)
        assert at.read_until(rb"OK\r\n") == b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n"
        at.write(b"AT+CMGF=1\rAT+CMGF?\rAT+CMGF=0\r")
        data = b"".join(at.read_until(rb"OK\r\n") for _ in range(3))
        assert data == b"\r\nOK\r\n\r\n+CMGF: 1\r\n\r\nOK\r\n\r\nOK\r\n"


def test_pyserial_socket_url_send(sim):
    """The URL is what the driver will hand to pyserial.serial_for_url."""
    built = pducodec.encode_submit("+420608337726", "Dobrý den", encoding="ucs2")
    port = serial.serial_for_url(sim.url, timeout=10)
    try:
        port.write(b"ATE0\r")
        assert port.read_until(b"OK\r\n").endswith(b"OK\r\n")
        port.write(f"AT+CMGS={built.tpdu_length}\r".encode())
        assert port.read_until(b"> ").endswith(b"> ")
        port.write(built.hex.encode() + b"\x1a")
        assert port.read_until(b"OK\r\n") == b"\r\n+CMGS: 0\r\n\r\nOK\r\n"
    finally:
        port.close()
    [sent] = sim.control.sent()
    assert (sent["number"], sent["text"]) == ("+420608337726", "Dobrý den")
    assert sent["session"].startswith("tcp:127.0.0.1:")


def test_pty_basic_and_unsolicited(sim):
    assert os.path.realpath(sim.pty_path).startswith("/dev/pts/")
    with AtClient(sim.pty_path) as at:
        assert at.lines("ATE0;+CNMI=2,1,0,0,0") == ["ATE0;+CNMI=2,1,0,0,0", "OK"]
        sim.control.inject("+420777123456", "Ahoj přes pty")
        assert at.read_until(rb'\+CMTI: "SM",1\r\n') == b'\r\n+CMTI: "SM",1\r\n'
        answer = at.lines("AT+CMGR=1")
        msg = pducodec.decode_pdu(answer[1], int(answer[0].rsplit(",", 1)[1]))
        assert msg.text == "Ahoj přes pty"


def test_pty_with_pyserial(sim):
    port = serial.Serial(sim.pty_path, 115200, timeout=10)
    try:
        port.write(b"AT+CGSN\r")
        assert port.read_until(b"OK\r\n").endswith(b"356938035643809\r\n\r\nOK\r\n")
    finally:
        port.close()


def test_two_tcp_clients_share_one_modem(sim):
    with AtClient(sim.url) as first, AtClient(sim.url) as second:
        first.lines("AT+CMGF=1")
        assert second.lines("AT+CMGF?") == ["AT+CMGF?", "+CMGF: 1", "OK"]


def test_tcp_drop_closes_the_connection(sim):
    with AtClient(sim.url) as at:
        at.lines("ATE0")
        sim.control.set_fault("drop", at="command", command="+CMGS")
        at.write(b"AT+CMGS=20\r")
        assert at.read_to_end() == b""
    with AtClient(sim.url) as at:  # the modem still answers new connections
        assert at.lines("AT") == ["OK"]  # and kept its settings (echo off)


def test_tcp_drop_now(sim):
    with AtClient(sim.url) as at:
        at.lines("AT")
        sim.control.set_fault("drop")  # at="now"
        assert at.read_to_end() == b""


def test_pty_hangup_during_send_and_reopen(sim):
    built = pducodec.encode_submit("+420608337726", "lost", encoding="gsm7")
    sim.control.set_fault("drop", at="body")
    with AtClient(sim.pty_path) as at:
        at.lines("ATE0")
        at.write(f"AT+CMGS={built.tpdu_length}\r".encode())
        at.read_until(rb"> ")
        at.write(built.hex.encode() + b"\x1a")
        assert at.read_to_end() == b""  # EIO: hung up
    assert sim.control.sent() == []
    assert sim.control.status()["pty_hangups"] >= 1
    with AtClient(sim.pty_path) as at:  # the same path leads to the new pty
        assert at.lines("AT") == ["OK"]  # echo stays off: the modem kept its settings


def test_tcp_hang_swallows_until_cleared(sim):
    with AtClient(sim.url) as at:
        at.lines("ATE0")
        sim.control.set_fault("hang")
        at.write(b"AT+CGMI\r")
        deadline = time.monotonic() + 10  # wait until the modem has swallowed the command
        while sim.control.status()["swallowed"] < 8 and time.monotonic() < deadline:
            time.sleep(0.02)
        sim.control.clear_fault("hang")
        assert at.lines("AT+CGMR") == ["smss-modem-sim 1.0", "OK"]  # no SMSS: it was swallowed


def test_noise_inside_a_send_over_tcp(sim):
    sim.control.set_fault("noise", probability=1.0, lines=["^RSSI:17", "RING"])
    built = pducodec.encode_submit("+420608337726", "noisy", encoding="gsm7")
    with AtClient(sim.url) as at:
        at.write(b"ATE0\r")
        at.read_until(rb"OK\r\n")
        at.write(f"AT+CMGS={built.tpdu_length}\r".encode())
        before = at.read_until(rb"> ")
        at.write(built.hex.encode() + b"\x1a")
        after = at.read_until(rb"\r\nOK\r\n")
    assert re.search(rb"(\^RSSI:17|RING)\r\n\r\n> $", before)
    assert re.search(rb"\+CMGS: 0\r\n", after)
    assert [s["text"] for s in sim.control.sent()] == ["noisy"]


def test_realistic_latency_still_answers(sim):
    sim.control.configure(latency=0.3)
    try:
        built = pducodec.encode_submit("+420608337726", "slow", encoding="gsm7")
        with AtClient(sim.url) as at:
            at.lines("ATE0")
            at.write(f"AT+CMGS={built.tpdu_length}\r".encode())
            at.read_until(rb"> ")
            at.write(built.hex.encode() + b"\x1a")
            assert at.read_until(rb"OK\r\n") == b"\r\n+CMGS: 0\r\n\r\nOK\r\n"
    finally:
        sim.control.configure(latency=0)


def test_subprocess_simulator():
    with running_simulator(subprocess=True, pin="1234", first_index=0) as handle:
        assert handle.simulator is None and handle.process.poll() is None
        with AtClient(handle.url) as at:
            assert at.lines("AT+CPIN?") == ["AT+CPIN?", "+CPIN: SIM PIN", "OK"]
        assert handle.control.status()["config"]["first_index"] == 0
        with AtClient(handle.pty_path) as at:
            assert at.lines("AT")[-1] == "OK"
    assert handle.process.returncode is not None


def test_no_pty_and_no_tcp_options():
    with running_simulator(pty=False) as handle:
        assert handle.pty_path is None
        assert handle.url.startswith("socket://127.0.0.1:")
    with running_simulator(tcp=False) as handle:
        assert handle.url is None
        with AtClient(handle.pty_path) as at:
            assert at.lines("AT") == ["AT", "OK"]
