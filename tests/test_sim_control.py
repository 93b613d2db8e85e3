"""The simulator's control channel (JSON lines on 127.0.0.1) and its Python client."""

from __future__ import annotations

import json
import socket
import time

import pytest
from support_sim import AtClient, running_simulator

from smss.gsm import pdu as pducodec
from smss.sim.client import ControlClient, ControlError


@pytest.fixture(scope="module")
def sim():
    with running_simulator(status_report_delay=0.01) as handle:
        yield handle


@pytest.fixture(autouse=True)
def fresh(sim):
    sim.control.reset()


def raw_request(sim, payload: bytes) -> dict:
    host, port = sim.control_address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(payload)
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(4096)
            assert chunk, "control channel closed without answering"
            data += chunk
    return json.loads(data)


def send(at, number, text, encoding="gsm7", **kw):
    built = pducodec.encode_submit(number, text, encoding=encoding, **kw)
    at.write(f"AT+CMGS={built.tpdu_length}\r".encode())
    at.read_until(rb"> ")
    at.write(built.hex.encode() + b"\x1a")
    at.read_until(rb"\r\nOK\r\n")
    return built


def test_ping_and_status(sim):
    assert sim.control.ping()
    status = sim.control.status()
    assert status["url"] == sim.url and status["pty"] == sim.pty_path
    assert status["sim"]["state"] == "READY"
    assert status["storage"]["SM"] == {"used": 0, "total": 30}


def test_protocol_errors(sim):
    assert raw_request(sim, b"not json\n")["ok"] is False
    assert raw_request(sim, b'{"op": "explode"}\n') == {
        "ok": False, "error": "ValueError: unknown op 'explode'"}
    assert raw_request(sim, b'{"op": "ping", "extra": 1}\n')["ok"] is False
    assert raw_request(sim, b'{"op": "ping"}\n') == {"ok": True, "result": "pong"}
    with pytest.raises(ControlError, match="unknown fault"):
        sim.control.set_fault("meteor")
    with pytest.raises(ControlError, match="unknown setting"):
        sim.control.configure(colour="red")


def test_sent_reports_decoded_messages(sim):
    long_text = "Dobrý den, " * 15  # 165 characters in UCS2: 3 parts
    with AtClient(sim.url) as at:
        at.lines("ATE0")
        for built in pducodec.build_submits("+420608337726", long_text, concat_reference=9,
                                            status_report=True):
            at.write(f"AT+CMGS={built.tpdu_length}\r".encode())
            at.read_until(rb"> ")
            at.write(built.hex.encode() + b"\x1a")
            at.read_until(rb"\r\nOK\r\n")
    sent = sim.control.wait_for_sent(3)
    assert [s["reference"] for s in sent] == [0, 1, 2]
    assert [s["concat"]["sequence"] for s in sent] == [1, 2, 3]
    assert {(s["concat"]["reference"], s["concat"]["total"]) for s in sent} == {(9, 3)}
    assert "".join(s["text"] for s in sent) == long_text
    assert all(s["encoding"] == "ucs2" and s["status_report"] for s in sent)
    assert pducodec.decode_pdu(sent[0]["pdu"]).number == "+420608337726"
    assert sent[0]["time"].endswith("+00:00") and sent[0]["timestamp"] > 0
    assert sim.control.sent(since=2)[0]["seq"] == 3
    sim.control.clear_sent()
    assert sim.control.sent() == []


def test_sent_tells_when_the_modem_took_and_answered_each_message():
    """``timestamp``: the body arrived; ``answered``: +CMGS went back after the network's
    delay.  Tests of parallel sending compare these across modems."""
    with running_simulator(latency=0.2, pty=False) as slow, AtClient(slow.url) as at:
        at.lines("ATE0")
        before = time.time()
        send(at, "+420608337726", "Ahoj")  # returns once OK came
        after = time.time()
        [record] = slow.control.sent()
    assert before <= record["timestamp"] <= record["answered"] <= after


def test_inject_and_storage(sim):
    result = sim.control.inject("+420777123456", "Ahoj " * 40, order=[2, 1])
    assert [(p["part"], p["index"]) for p in result["parts"]] == [(2, 1), (1, 2)]
    stored = sim.control.storage("SM")
    assert [s["index"] for s in stored] == [1, 2]
    assert stored[0]["stat_name"] == "REC UNREAD" and stored[0]["kind"] == "deliver"
    assert stored[0]["decoded"]["concat"]["sequence"] == 2
    assert stored[1]["decoded"]["sender"] == "+420777123456"
    assert sim.control.storage("ME") == []
    with pytest.raises(ControlError):
        sim.control.storage("XX")


def test_inject_pdu_and_timestamp(sim):
    pdu = pducodec.encode_deliver("INFO", "alpha sender", timestamp=pducodec.datetime(
        2024, 1, 2, 3, 4, 5, tzinfo=pducodec.timezone.utc))
    assert sim.control.inject_pdu(pdu)["index"] == 1
    sim.control.inject("+420777123456", "dated", timestamp="2024-05-17T10:00:00+02:00")
    decoded = [s["decoded"] for s in sim.control.storage()]
    assert decoded[0]["sender"] == "INFO" and decoded[0]["sender_type"] == "alphanumeric"
    assert decoded[1]["timestamp"] == "2024-05-17T10:00:00+02:00"


def test_faults_through_the_channel(sim):
    assert sim.control.set_fault("cms_error", code=42, count=1)["code"] == 42
    assert sim.control.faults()["cms_error"]["count"] == 1
    with AtClient(sim.url) as at:
        at.lines("ATE0;+CMEE=1")
        built = pducodec.encode_submit("+420608337726", "x", encoding="gsm7")
        at.write(f"AT+CMGS={built.tpdu_length}\r".encode())
        at.read_until(rb"> ")
        at.write(built.hex.encode() + b"\x1a")
        assert at.read_until(rb"\r\n\+CMS ERROR: 42\r\n")
    assert sim.control.faults() == {}
    sim.control.set_fault("no_network")
    sim.control.clear_fault()
    assert sim.control.faults() == {}


def test_counts_lines_and_unknown(sim):
    with AtClient(sim.url) as at:
        at.lines("ATE0")
        at.lines("AT+CSQ")
        at.lines("AT+CSQ;+XYZ")
        built = send(at, "+420608337726", "count me")
    counts = sim.control.counts()
    assert counts["AT+CSQ"] == 2 and counts["AT+CMGS"] == 1 and counts["ATE"] == 1
    assert sim.control.unknown() == ["AT+XYZ"]
    assert [entry["line"] for entry in sim.control.lines()][-2:] == [
        "AT+CSQ;+XYZ", f"AT+CMGS={built.tpdu_length}"]
    sim.control.reset_counts()
    assert sim.control.counts() == {} and sim.control.unknown() == []


def test_status_reports_and_manual_report(sim):
    with AtClient(sim.url) as at:
        at.lines("ATE0;+CNMI=2,1,0,1,0")
        send(at, "+420608337726", "report", status_report=True)
        header = at.read_until(rb"\+CDS: \d+\r\n")
        pdu = at.read_until(rb"\r\n")[:-2].decode()
        report = pducodec.decode_pdu(pdu, int(header.split(b": ")[1]))
        assert report.reference == 0 and report.delivered
        sim.control.report(reference=0, number="+420608337726", status=0x41)
        at.read_until(rb"\+CDS: \d+\r\n")
        failed = pducodec.decode_pdu(at.read_until(rb"\r\n")[:-2].decode())
        assert failed.status == 0x41 and not failed.delivered
    assert [r["status"] for r in sim.control.reports()] == [0]


def test_urc_and_configure(sim):
    with AtClient(sim.url) as at:
        at.lines("ATE0")
        sim.control.urc("RING", "+CLIP: \"+420777123456\",145")
        assert at.read_until(rb"\+CLIP: [^\r]*\r\n") == (
            b'\r\nRING\r\n\r\n+CLIP: "+420777123456",145\r\n')
        config = sim.control.configure(operator="Vodafone CZ")
        assert config["operator"] == "Vodafone CZ"
        assert at.lines("AT+COPS?")[0] == '+COPS: 0,0,"Vodafone CZ",0'
    sim.control.configure(operator="T-Mobile CZ")


def test_reset(sim):
    sim.control.inject("+420777123456", "gone after reset")
    sim.control.set_fault("hang")
    sim.control.reset()
    assert sim.control.storage() == [] and sim.control.faults() == {}
    with AtClient(sim.url) as at:
        assert at.lines("AT") == ["AT", "OK"]


def test_client_reconnects_after_close(sim):
    client = ControlClient(sim.control_address)
    assert client.ping()
    client.close()
    assert client.ping()
    client.close()
