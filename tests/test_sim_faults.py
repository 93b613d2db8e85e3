"""Fault injection of the simulated modem, driven without threads (ModemHarness)."""

from __future__ import annotations

import pytest
from support_sim import ModemHarness

from smss.gsm import pdu as pducodec
from smss.sim.faults import DEFAULT_NOISE, Faults

OK = "\r\nOK\r\n"


def send(h, text="Ahoj", **kw):
    built = pducodec.encode_submit("+420608337726", text, encoding="gsm7", **kw)
    prompt = h.at(f"AT+CMGS={built.tpdu_length}")
    return prompt + h.feed(built.hex.encode() + b"\x1a").decode()


@pytest.fixture
def h():
    harness = ModemHarness(echo=False)
    harness.at("AT+CMEE=1")
    return harness


@pytest.mark.parametrize("code", [38, 42, 500, 1, 8, 96])
def test_next_n_cms_errors(h, code):
    h.modem.set_fault("cms_error", code=code, count=2)
    assert send(h) == f"\r\n> \r\n+CMS ERROR: {code}\r\n"
    assert send(h) == f"\r\n> \r\n+CMS ERROR: {code}\r\n"
    assert send(h) == "\r\n> \r\n+CMGS: 0\r\n" + OK
    assert [s["reference"] for s in h.modem.sent] == [0]
    assert "cms_error" not in h.modem.faults


def test_a_cms_error_can_spare_the_first_sends(h):
    h.modem.set_fault("cms_error", code=42, count=1, skip=2)
    assert send(h).endswith("+CMGS: 0\r\n" + OK)
    assert send(h).endswith("+CMGS: 1\r\n" + OK)
    assert send(h) == "\r\n> \r\n+CMS ERROR: 42\r\n"
    assert send(h).endswith("+CMGS: 2\r\n" + OK)


def test_cms_error_plain_when_cmee_is_off(h):
    h.at("AT+CMEE=0")
    h.modem.set_fault("cms_error", code=38)
    assert send(h).endswith("\r\nERROR\r\n")


def test_random_cms_errors_are_reproducible():
    def outcomes(seed):
        h = ModemHarness(echo=False, seed=seed)
        h.at("AT+CMEE=1")
        h.modem.set_fault("cms_error", code=42, probability=0.5)
        return ["ERROR" in send(h) for _ in range(40)]

    first = outcomes(7)
    assert first == outcomes(7)
    assert 0 < sum(first) < 40


def test_cms_error_on_another_command(h):
    h.modem.set_fault("cms_error", code=500, count=1, commands=["+CMGL"])
    assert send(h).endswith("+CMGS: 0\r\n" + OK)  # only the named commands fail
    assert h.at("AT+CMGL=4") == "\r\n+CMS ERROR: 500\r\n"
    assert h.at("AT+CMGL=4") == OK
    h.modem.set_fault("cms_error", code=100, commands=["+CPMS"], kind="cme")
    assert h.at("AT+CPMS?") == "\r\n+CME ERROR: 100\r\n"


def test_drop_on_next_command(h):
    h.modem.set_fault("drop", at="command", command="+CMGS")
    assert h.at("AT") == OK
    assert h.at("AT+CMGS=20") == ""
    assert h.closed
    assert h.modem.sessions == [] and "drop" not in h.modem.faults


def test_drop_when_the_body_arrives_sends_nothing(h):
    h.modem.set_fault("drop", at="body")
    assert send(h) == "\r\n> "
    assert h.closed and h.modem.sent == []


def test_drop_after_send_loses_only_the_answer(h):
    h.modem.set_fault("drop", at="after_send")
    assert send(h) == "\r\n> "
    assert h.closed and len(h.modem.sent) == 1


def test_drop_now_closes_every_session(h):
    other = []
    h.modem.open_session(other.extend, "other")
    h.modem.set_fault("drop", at="now")
    assert h.closed and any(type(a).__name__ == "Close" for a in other)
    assert h.modem.sessions == []


def test_hang_swallows_input_until_cleared(h):
    h.modem.set_fault("hang")
    assert h.at("AT") == ""
    h.modem.inject("+420777123456", "while hung")  # no +CMTI either (CNMI off anyway)
    h.modem.clear_fault("hang")
    assert h.at("AT") == OK


def test_hang_when_the_body_arrives(h):
    h.modem.set_fault("hang", at="body")
    assert h.at("AT") == OK
    assert send(h) == "\r\n> "
    assert h.at("AT") == ""
    assert h.modem.sent == []
    h.modem.clear_fault()
    assert h.at("AT") == OK


def test_no_network(h):
    h.at("AT+CREG=1")
    h.modem.set_fault("no_network")
    assert h.take().decode() == "\r\n+CREG: 0\r\n"
    assert h.at("AT+CREG?") == "\r\n+CREG: 1,0\r\n" + OK
    assert h.at("AT+COPS?") == "\r\n+COPS: 0\r\n" + OK
    assert h.at("AT+CSQ") == "\r\n+CSQ: 99,99\r\n" + OK
    assert send(h) == "\r\n> \r\n+CMS ERROR: 331\r\n"
    h.modem.set_fault("no_network", stat=3)
    assert h.take().decode() == "\r\n+CREG: 3\r\n"
    h.modem.clear_fault("no_network")
    assert h.take().decode() == "\r\n+CREG: 1\r\n"
    assert send(h).endswith("+CMGS: 0\r\n" + OK)


def test_sim_full(h):
    h.at("AT+CNMI=2,1,0,0,0")
    h.modem.set_fault("sim_full")
    result = h.modem.inject("+420777123456", "held by the network")
    assert result["parts"][0]["waiting"] is True
    assert h.take() == b""  # no +CMTI
    built = pducodec.encode_submit("+420608337726", "x", encoding="gsm7")
    h.at(f"AT+CMGW={built.tpdu_length}")
    assert h.feed(built.hex.encode() + b"\x1a").decode() == "\r\n+CMS ERROR: 322\r\n"
    h.modem.clear_fault("sim_full")
    assert h.take().decode() == '\r\n+CMTI: "SM",1\r\n'


def test_noise_between_and_inside_answers():
    h = ModemHarness(echo=False)
    h.modem.set_fault("noise", probability=1.0, lines=["RING"])
    h.modem.inject("+420777123456", "one")
    h.modem.inject("+420777123456", "two")
    answer = h.at("AT+CMGL=4")
    blocks = answer.split("\r\n")
    assert blocks.count("RING") == 3  # before each entry and before the final OK
    assert blocks[-2] == "OK"
    # an entry's header and PDU are never split
    for i, line in enumerate(blocks):
        if line.startswith("+CMGL:"):
            assert blocks[i + 1] not in ("", "RING")
    built = pducodec.encode_submit("+420608337726", "x", encoding="gsm7")
    prompt = h.at(f"AT+CMGS={built.tpdu_length}")
    assert prompt == "\r\nRING\r\n\r\n> \r\nRING\r\n"
    assert h.feed(built.hex.encode() + b"\x1a").decode() == (
        "\r\nRING\r\n\r\n+CMGS: 0\r\n\r\nRING\r\n" + OK)


def test_noise_count_and_default_lines():
    h = ModemHarness(echo=False, seed=3)
    h.modem.set_fault("noise", probability=1.0, count=2)
    blocks = h.at("AT+CGMI").split("\r\n")
    assert blocks[1] in DEFAULT_NOISE and blocks[5] in DEFAULT_NOISE
    assert (blocks[3], blocks[7]) == ("SMSS", "OK")
    assert h.at("AT") == OK
    assert "noise" not in h.modem.faults


def test_pin_required(h):
    h.modem.set_fault("pin_required", pin="4321")
    assert h.at("AT+CPIN?") == "\r\n+CPIN: SIM PIN\r\n" + OK
    assert send(h) == "\r\n+CMS ERROR: 311\r\n"  # refused before the prompt
    h.modem.configure(sim_busy_seconds=0)
    assert h.at('AT+CPIN="4321"') == OK
    assert "pin_required" not in h.modem.faults
    assert h.at("AT+CPIN?") == "\r\n+CPIN: READY\r\n" + OK


def test_latency_is_a_delay_before_the_answer():
    h = ModemHarness(echo=False, latency=2.5)
    h.at("AT")
    assert h.delays() == []
    send(h)
    assert h.delays() == [2.5]


def test_realistic_latency():
    h = ModemHarness(echo=False, latency="realistic", seed=1)
    h.at("AT")
    send(h)
    command_delay, cmgs_delays = h.delays()[0], h.delays()[1:]
    assert 0.02 <= command_delay <= 0.15
    assert any(2.0 <= d <= 4.0 for d in cmgs_delays)


def test_fault_validation():
    faults = Faults()
    with pytest.raises(ValueError):
        faults.set("meteor")
    with pytest.raises(ValueError):
        faults.set("drop", at="sometimes")
    with pytest.raises(ValueError):
        faults.set("cms_error", colour="red")
    with pytest.raises(ValueError):
        faults.set("noise", probability=2)
    assert faults.set("cms_error")["count"] == 1


def test_noise_at_intervals_without_commands():
    h = ModemHarness(echo=False)
    h.modem.set_fault("noise", probability=0.0, lines=["^BOOT:1,0,0,0,72"], interval=10)
    h.time.advance(25)
    assert h.take().decode() == "\r\n^BOOT:1,0,0,0,72\r\n" * 2
    h.modem.clear_fault("noise")
    h.time.advance(30)
    assert h.take() == b""
    assert h.at("AT") == OK
