"""The session notices a modem that restarted - from its start-up lines or, asked, from
settings it no longer has - and initialises it again (scripted modem peers on real ptys;
the lines each maker prints are in ``smss.sim.boot`` with their sources)."""

from __future__ import annotations

import time

import pytest
from support_modem import OK, ScriptedModem, ok

from smss.modem.session import ModemSession, ModemSettings


def session_for(peer: ScriptedModem, **overrides) -> ModemSession:
    values = dict(device=peer.url, command_timeout=5.0, send_timeout=5.0, read_timeout=0.05,
                  quiet_time=0.1, register_timeout=10.0)
    values.update(overrides)
    return ModemSession(ModemSettings(**values))


def initialised_again(session: ModemSession, timeout: float = 10.0) -> bool:
    """True once the session initialised the modem again (the lines take a moment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if session.initialise_again_if_restarted():
            return True
        time.sleep(0.05)
    return False


def settled(session: ModemSession) -> None:
    """Let what the peer pushed arrive: a command reads everything before its answer."""
    time.sleep(0.2)
    session.status()


@pytest.mark.parametrize("line", ["RDY", "+CFUN: 1", "+CPIN: READY", "+CPIN: SIM PIN",
                                  "Call Ready", "SMS Ready", "SMS DONE", "PB DONE",
                                  "+QUSIM: 1", "+QIND: SMS DONE", "+QIND: PB DONE",
                                  "^SYSSTART", "^SYSSTART AIRPLANE MODE"])
def test_a_start_up_line_makes_the_session_initialise_again(line):
    with ScriptedModem() as peer, session_for(peer) as session:
        assert not session.initialise_again_if_restarted()
        peer.push(f"\r\n{line}\r\n".encode())
        assert initialised_again(session)
        assert peer.commands().count("ATZ") == 2
        assert peer.commands().count("AT+CNMI=2,1,0,2,0") == 2
        assert not session.initialise_again_if_restarted()  # once per restart


def test_lines_that_do_not_mean_a_restart():
    """Huawei's ^BOOT repeats while the modem runs (ModemManager ignores it); +CFUN: 0 is
    the radio switched off; +QIND carries other indications too."""
    with ScriptedModem() as peer, session_for(peer) as session:
        for line in ("^BOOT:20131,0,0,0,72", "^BOOT:20131,0,0,0,72", "+CFUN: 0",
                     '+QIND: "csq",20,99', "RING", "+CREG: 1", "^RSSI:17"):
            peer.push(f"\r\n{line}\r\n".encode())
        settled(session)
        assert not session.initialise_again_if_restarted()
        assert peer.commands().count("ATZ") == 1


def test_the_sim_getting_ready_after_the_pin_is_no_restart():
    """After AT+CPIN=<pin> SIMCom and Quectel modems print +CPIN: READY and their
    SIM-ready lines; a SIM asking for its PIN again is a restart."""
    state = {"pin": True}

    def cpin_query(match, peer):
        return ok("+CPIN: SIM PIN") if state["pin"] else ok("+CPIN: READY")

    def cpin_enter(match, peer):
        state["pin"] = False
        return OK + b"\r\n+CPIN: READY\r\n\r\nCall Ready\r\n\r\nSMS Ready\r\n"

    rules = [(r"AT\+CPIN\?", cpin_query), (r'AT\+CPIN="4321"', cpin_enter)]
    with ScriptedModem(rules) as peer, session_for(peer, pin="4321") as session:
        settled(session)
        assert not session.initialise_again_if_restarted()
        state["pin"] = True
        peer.push(b"\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: SIM PIN\r\n")
        assert initialised_again(session)
        assert peer.commands().count('AT+CPIN="4321"') == 2
        settled(session)
        assert not session.initialise_again_if_restarted()


def test_settings_the_modem_lost_are_noticed_by_the_check():
    """A modem that restarts without a word (SIM800 auto-bauding, Telit) still answers
    AT+CNMI? and AT+CPMS? with its power-on values (27.005 3.4.1, 3.2.2)."""
    answers = {"cnmi": "2,1,0,2,0", "cpms": '"ME",0,100,"ME",0,100,"ME",0,100'}
    rules = [(r"AT\+CNMI\?", lambda m, p: ok("+CNMI: " + answers["cnmi"])),
             (r"AT\+CPMS\?", lambda m, p: ok("+CPMS: " + answers["cpms"]))]
    with ScriptedModem(rules) as peer, session_for(peer, storage="ME") as session:
        assert session.restarted(check_settings=True) is None
        answers["cpms"] = '"SM",0,30,"SM",0,30,"SM",0,30'
        assert "AT+CPMS?" in session.restarted(check_settings=True)
        answers["cpms"] = '"ME",0,100,"ME",0,100,"ME",0,100'
        answers["cnmi"] = "0,0,0,0,0"
        assert "AT+CNMI? answers 0,0,0,0,0" in session.restarted(check_settings=True)
        assert session.restarted() is None  # not asked: no command
        assert session.initialise_again_if_restarted(check_settings=True)
        assert peer.commands().count("ATZ") == 2
