"""The real ``gammu`` program (Debian package gammu) as the oracle: it must take the
simulator for a modem when it identifies it, sends, reads and deletes SMS through
the pseudo-terminal.  gammu paces its own commands (it sleeps 400 ms after each
one while initialising), so every run takes a few seconds."""

from __future__ import annotations

import re
import subprocess

import pytest
from support_sim import running_simulator
from support_tools import program

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def gammu_program():
    program("gammu", "gammu")

GAMMU_TIMEOUT = 180


@pytest.fixture(scope="module")
def sim():
    with running_simulator() as handle:
        yield handle


@pytest.fixture(scope="module")
def gammurc(sim, tmp_path_factory):
    path = tmp_path_factory.mktemp("gammu") / "gammurc"
    path.write_text(f"[gammu]\ndevice = {sim.pty_path}\nconnection = at\n")
    return str(path)


def gammu(gammurc, *args, check=True):
    result = subprocess.run(["gammu", "-c", gammurc, *args], capture_output=True, text=True,
                            timeout=GAMMU_TIMEOUT)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_identify(sim, gammurc):
    out = gammu(gammurc, "identify").stdout
    assert re.search(r"Manufacturer\s+: SMSS", out)
    assert re.search(r"IMEI\s+: 356938035643809", out)
    assert re.search(r"SIM IMSI\s+: 230011234567890", out)
    counts = sim.control.counts()
    assert counts["AT+CGSN"] >= 1 and counts["AT+CIMI"] >= 1


def test_sendsms_with_czech_diacritics(sim, gammurc):
    sim.control.clear_sent()
    text = "Příliš žluťoučký kůň úpěl ďábelské ódy"
    out = gammu(gammurc, "sendsms", "TEXT", "+420608337726", "-unicode", "-text", text).stdout
    [sent] = sim.control.sent()
    assert (sent["number"], sent["text"], sent["encoding"]) == ("+420608337726", text, "ucs2")
    assert f"message reference={sent['reference']}" in out


def test_sendsms_multipart(sim, gammurc):
    sim.control.clear_sent()
    text = "Dlouhá zpráva s háčky a čárkami. " * 6
    gammu(gammurc, "sendsms", "TEXT", "608337726", "-unicode", "-autolen", str(len(text)),
          "-text", text)
    sent = sim.control.sent()
    assert len(sent) == 3
    assert {s["number"] for s in sent} == {"608337726"}
    assert [s["concat"]["sequence"] for s in sent] == [1, 2, 3]
    assert "".join(s["text"] for s in sent) == text
    refs = [s["reference"] for s in sent]
    assert refs == [(refs[0] + i) % 256 for i in range(3)]


def test_getallsms_then_delete(sim, gammurc):
    sim.control.reset()
    sim.control.inject("+420777123456", "Ahoj, tady Věra. Přijdeš zítra?")
    sim.control.inject("+420777654321", "x" * 200)  # two parts
    out = gammu(gammurc, "getallsms").stdout
    assert "Ahoj, tady Věra. Přijdeš zítra?" in out
    assert '"+420777123456"' in out and '"+420777654321"' in out
    assert "part 1 of 2" in out and "part 2 of 2" in out
    assert "3 SMS parts in 3 SMS sequences" in out
    assert [s["stat_name"] for s in sim.control.storage()] == ["REC READ"] * 3

    gammu(gammurc, "deletesms", "1", "2")
    assert [s["index"] for s in sim.control.storage()] == [1, 3]
    gammu(gammurc, "deleteallsms", "1")
    assert sim.control.storage() == []
    assert sim.control.counts()["AT+CMGD"] == 3


def test_gammu_enters_the_pin():
    with running_simulator(pin="1234") as handle:
        path = handle.pty_path + ".gammurc"
        with open(path, "w") as rc:
            rc.write(f"[gammu]\ndevice = {handle.pty_path}\nconnection = at\n")
        assert "Waiting for PIN" in gammu(path, "getsecuritystatus").stdout
        gammu(path, "entersecuritycode", "PIN", "1234")
        assert handle.control.status()["sim"]["state"] == "READY"
        out = gammu(path, "getsecuritystatus").stdout
        assert "Nothing to enter" in out


def test_getussd(sim, gammurc):
    """gammu sends the code in the UCS2 TE charset and reads the answer the same way.
    (gammu then waits 10 s for more USSD traffic: this test is slow by gammu's choice.)"""
    sim.control.configure(ussd_encoding="text",
                          ussd_responses={"*100#": "Váš kredit je 123,45 Kč"})
    out = gammu(gammurc, "getussd", "*100#").stdout
    assert 'Service reply        : "Váš kredit je 123,45 Kč"' in out
    assert sim.control.counts()["AT+CUSD"] >= 1
