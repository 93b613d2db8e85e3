"""The simulated modem restarts the way real modems do (sources in ``smss.sim.boot``):
settings back to power-on defaults, the SIM locked again, deaf for a while, then the
maker's start-up lines."""

from __future__ import annotations

import re

import pytest
from support_sim import AtClient, ModemHarness, running_simulator

OK = "\r\nOK\r\n"

EXPECTED = {
    "sim800": ["RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready", "SMS Ready"],
    "sim7600": ["RDY", "+CPIN: READY", "SMS DONE", "PB DONE"],
    "ec25": ["RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE",
             "+QIND: PB DONE"],
    "cinterion": ["^SYSSTART"],
    "huawei": ["^SYSSTART"],
    "silent": [],
}


def lines(text: str):
    return [line for line in re.split(r"[\r\n]+", text) if line]


def configured(h):
    h.at("ATE0")
    h.at("AT+CMEE=1")
    h.at("AT+CNMI=2,1,0,2,0")
    h.at('AT+CPMS="ME","ME","ME"')


@pytest.mark.parametrize("style", sorted(EXPECTED))
def test_a_restart_forgets_the_settings_and_prints_the_makers_lines(style):
    h = ModemHarness(boot_style=style, boot_seconds=8.0)
    configured(h)
    h.modem.inject("+420777123456", "kept on the SIM")
    h.take()
    h.modem.reboot()
    assert h.feed(b"AT\r") == b""  # deaf while starting
    h.time.advance(8.0)
    assert lines(h.take().decode()) == EXPECTED[style]
    assert lines(h.at("AT+CNMI?")) == ["AT+CNMI?", "+CNMI: 0,0,0,0,0", "OK"]  # echo is back
    assert '+CPMS: "SM"' in h.at("AT+CPMS?")
    assert h.at("AT+CMEE?").endswith("+CMEE: 0\r\n" + OK)
    assert len(h.modem.storage_dump("ME")) == 1  # stored before, in the memory set then
    assert h.modem.counts["reboot"] == 1


@pytest.mark.parametrize("style", ["sim800", "sim7600", "ec25"])
def test_a_locked_sim_is_announced_and_the_rest_follows_the_pin(style):
    h = ModemHarness(boot_style=style, pin="1234")
    h.at("AT+CPIN=1234")
    h.time.run_all()
    h.take()
    h.modem.reboot()
    h.time.run_all()
    before, after = EXPECTED[style][:EXPECTED[style].index("+CPIN: READY")], \
        EXPECTED[style][EXPECTED[style].index("+CPIN: READY"):]
    assert lines(h.take().decode()) == before + ["+CPIN: SIM PIN"]
    assert lines(h.at("AT+CPIN?")) == ["AT+CPIN?", "+CPIN: SIM PIN", "OK"]
    assert h.at("AT+CPIN=1234").endswith(OK)
    h.time.run_all()
    assert lines(h.take().decode()) == after
    assert h.modem.sim.pin_tries == 3


def test_cfun_reset_answers_first_then_restarts():
    h = ModemHarness(boot_style="sim800", echo=False)
    h.at("AT+CNMI=2,1,0,2,0")
    assert h.at("AT+CFUN=1,1") == OK
    h.time.run_all()
    assert lines(h.take().decode()) == EXPECTED["sim800"]
    assert "+CNMI: 0,0,0,0,0" in h.at("AT+CNMI?")
    assert h.at("AT+CFUN=0,1").endswith("ERROR\r\n")  # <rst> only with full function


def test_unknown_boot_style_is_refused():
    with pytest.raises(ValueError, match="boot_style"):
        ModemHarness(boot_style="nokia")
    h = ModemHarness()
    with pytest.raises(ValueError, match="boot_style"):
        h.modem.reboot("nokia")


@pytest.mark.parametrize("style", ["sim800", "ec25", "cinterion"])
def test_restart_over_the_pty_and_the_control_channel(style):
    with running_simulator(tcp=False) as sim, AtClient(sim.pty_path) as at:
        at.lines("ATE0")
        at.lines("AT+CNMI=2,1,0,2,0")
        assert sim.control.reboot(style=style, seconds=0.2) == {"style": style,
                                                                 "seconds": 0.2}
        last = EXPECTED[style][-1].encode().replace(b"+", rb"\+").replace(b"^", rb"\^")
        printed = at.read_until(last + rb"\r\n", timeout=10).decode()
        assert lines(printed) == EXPECTED[style]
        assert "+CNMI: 0,0,0,0,0" in at.command("AT+CNMI?").decode()
        assert sim.control.status()["settings"]["cnmi"] == [0, 0, 0, 0, 0]
