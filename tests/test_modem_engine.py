"""The AT engine and the link against scripted modem peers on real ptys and TCP sockets."""

from __future__ import annotations

import socket

import pytest
from support_modem import OK, PROMPT, ScriptedModem, ok

from smss.modem.engine import AtEngine, redact
from smss.modem.errors import (
    LinkDown,
    ModemTimeout,
    NoSim,
    PermanentError,
    SimBusy,
    TemporaryError,
)
from smss.modem.link import Link

TRANSPORTS = ["pty", "tcp"]


def engine_for(peer: ScriptedModem) -> AtEngine:
    link = Link(peer.url, read_timeout=0.05)
    link.open()
    return AtEngine(link)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_command_answer_and_unsolicited_around_it(transport):
    def csq(match, peer):
        peer.push(b'\r\n+CMTI: "SM",4\r\n')
        return b"\r\n^RSSI: 20\r\n+CSQ: 20,99\r\n\r\nOK\r\n"

    with ScriptedModem([(r"AT\+CSQ", csq)], transport=transport) as peer:
        engine = engine_for(peer)
        response = engine.command("AT+CSQ", 10)
        assert response.lines == ["+CSQ: 20,99"]
        assert response.value("+CSQ") == "20,99"
        assert response.final.ok
        names = [u.name for u in engine.take_unsolicited()]
        assert names == ["+CMTI", "^RSSI"]
        assert engine.take_unsolicited() == []
        engine.link.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_echo_on_is_harmless(transport):
    with ScriptedModem(transport=transport, echo=True) as peer:
        engine = engine_for(peer)
        assert engine.command("AT+CREG?", 10).lines == ["+CREG: 0,1"]
        response = engine.command_with_pdu("AT+CMGS=5", "0011223344AA", prompt_timeout=10,
                                           timeout=10)
        assert response.value("+CMGS") == "1"
        assert peer.commands()[-1] == "PDU:0011223344AA"
        engine.link.close()


def test_errors_become_classified_exceptions():
    rules = [
        (r"AT\+CPIN\?", b"\r\n+CME ERROR: 10\r\n"),
        (r"AT\+CPMS\?", b"\r\n+CMS ERROR: 314\r\n"),
        (r"AT\+X", b"\r\nERROR\r\n"),
    ]
    with ScriptedModem(rules) as peer:
        engine = engine_for(peer)
        with pytest.raises(NoSim) as info:
            engine.command("AT+CPIN?", 10)
        assert (info.value.family, info.value.code, info.value.command) == ("CME", 10, "AT+CPIN?")
        with pytest.raises(SimBusy):
            engine.command("AT+CPMS?", 10)
        with pytest.raises(TemporaryError):
            engine.command("AT+X", 10)
        response = engine.command("AT+X", 10, check=False)
        assert response.final is not None and not response.final.ok
        engine.link.close()


def test_cmgs_with_unsolicited_lines_everywhere():
    def cmgs(match, peer):
        peer.push(b'\r\n+CMTI: "SM",1\r\n')
        return PROMPT

    def answer(pdu, peer):
        return b"\r\n+CDS: 6\r\n00060102030405\r\n+CMGS: 255\r\n^RSSI: 9\r\n\r\nOK\r\n"

    with ScriptedModem([(r"AT\+CMGS=\d+", cmgs)]) as peer:
        peer.pdu_reply = answer
        engine = engine_for(peer)
        response = engine.command_with_pdu("AT+CMGS=3", "00AABB", prompt_timeout=10, timeout=10)
        assert response.values("+CMGS") == ["255"]
        reports = engine.take_unsolicited(["+CDS"])
        assert [(u.args, u.pdu) for u in reports] == [("6", "00060102030405")]
        assert [u.name for u in engine.take_unsolicited()] == ["+CMTI", "^RSSI"]
        engine.link.close()


def test_cmgs_refused_before_the_prompt_sent_nothing():
    with ScriptedModem([(r"AT\+CMGS=\d+", b"\r\n+CMS ERROR: 304\r\n")]) as peer:
        engine = engine_for(peer)
        with pytest.raises(PermanentError) as info:
            engine.command_with_pdu("AT+CMGS=3", "00AABB", prompt_timeout=10, timeout=10)
        assert info.value.pdu_sent is False
        assert info.value.code == 304
        assert not any(c.startswith("PDU:") for c in peer.commands())
        engine.link.close()


def test_cmgs_error_after_the_pdu():
    with ScriptedModem() as peer:
        peer.pdu_reply = lambda pdu, p: b"\r\n+CMS ERROR: 42\r\n"
        engine = engine_for(peer)
        with pytest.raises(TemporaryError) as info:
            engine.command_with_pdu("AT+CMGS=3", "00AABB", prompt_timeout=10, timeout=10)
        assert (info.value.code, info.value.pdu_sent) == (42, True)
        engine.link.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_timeout_leaves_the_engine_usable(transport):
    hung = {"left": 1}

    def maybe_hang(match, peer):
        if hung["left"]:
            hung["left"] -= 1
            return None  # say nothing
        return ok("+CSQ: 5,99")

    with ScriptedModem([(r"AT\+CSQ", maybe_hang)], transport=transport) as peer:
        engine = engine_for(peer)
        with pytest.raises(ModemTimeout):
            engine.command("AT+CSQ", 0.5)
        assert engine.needs_resync
        assert engine.command("AT+CSQ", 10).value("+CSQ") == "5,99"
        assert not engine.needs_resync
        commands = peer.commands()
        assert commands[commands.index("ESC") + 1] == "AT"
        engine.link.close()


def test_a_late_answer_is_not_taken_for_the_next_command():
    with ScriptedModem([(r"AT\+CSQ", None), (r"AT\+CREG\?", ok("+CREG: 0,5"))]) as peer:
        engine = engine_for(peer)
        with pytest.raises(ModemTimeout):
            engine.command("AT+CSQ", 0.3)
        # the answer to AT+CSQ turns up only when the engine is already re-synchronising
        peer.on_escape = lambda p: p.push(b"\r\n+CSQ: 1,99\r\n\r\nOK\r\n")
        assert engine.command("AT+CREG?", 10).lines == ["+CREG: 0,5"]
        engine.link.close()


def test_missing_prompt_times_out_and_cancels_with_escape():
    with ScriptedModem([(r"AT\+CMGS=\d+", None)]) as peer:
        engine = engine_for(peer)
        with pytest.raises(ModemTimeout) as info:
            engine.command_with_pdu("AT+CMGS=3", "00AABB", prompt_timeout=0.5, timeout=10)
        assert info.value.pdu_sent is False
        assert engine.command("AT", 10).final.ok
        assert "ESC" in peer.commands()
        assert not any(c.startswith("PDU:") for c in peer.commands())
        engine.link.close()


def test_no_answer_after_the_pdu_is_a_timeout_that_may_have_sent():
    with ScriptedModem() as peer:
        peer.pdu_reply = lambda pdu, p: None
        engine = engine_for(peer)
        with pytest.raises(ModemTimeout) as info:
            engine.command_with_pdu("AT+CMGS=3", "00AABB", prompt_timeout=10, timeout=0.5)
        assert info.value.pdu_sent is True
        assert engine.command("AT", 10).final.ok
        engine.link.close()


def test_modem_that_stops_answering_keeps_timing_out():
    with ScriptedModem([(r"AT.*", None)]) as peer:
        engine = engine_for(peer)
        engine.resync_attempts = 2
        with pytest.raises(ModemTimeout):
            engine.command("AT+CSQ", 0.3)
        with pytest.raises(ModemTimeout) as info:
            engine.command("AT+CSQ", 0.3)
        assert info.value.command == "AT"
        assert engine.needs_resync
        engine.link.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_dropped_link_raises_link_down(transport):
    with ScriptedModem([(r"AT\+CSQ", lambda m, peer: peer.drop())], transport=transport) as peer:
        engine = engine_for(peer)
        assert engine.command("AT", 10).final.ok
        with pytest.raises(LinkDown):
            engine.command("AT+CSQ", 10)
        assert not engine.link.is_open
        with pytest.raises(LinkDown):
            engine.command("AT", 10)


def test_wait_for_an_unsolicited_code():
    import threading

    with ScriptedModem() as peer:
        engine = engine_for(peer)
        timer = threading.Timer(0.2, peer.push, [b'\r\n+CUSD: 0,"Kredit 12 Kc",15\r\n'])
        timer.start()
        event = engine.wait_unsolicited(["+CUSD"], 10)
        timer.join()
        assert event is not None and event.args == '0,"Kredit 12 Kc",15'
        assert engine.wait_unsolicited(["+CUSD"], 0.2) is None
        engine.link.close()


def test_link_open_failures_are_link_down():
    with pytest.raises(LinkDown):
        Link("")
    with pytest.raises(LinkDown):
        Link("/dev/nonexistent-modem-port").open()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(LinkDown):
        Link(f"socket://127.0.0.1:{port}").open()
    link = Link("/dev/nonexistent-modem-port")
    with pytest.raises(LinkDown):
        link.write(b"AT\r")


def test_pin_is_never_logged():
    assert redact('AT+CPIN="1234"') == "AT+CPIN=****"
    assert redact("AT+CSQ") == "AT+CSQ"
    assert OK  # the shared reply constant the peers use


def test_noise_does_not_keep_a_hung_command_alive():
    import threading

    stop = threading.Event()
    pushed = []

    def babble(peer):
        for _ in range(400):  # 20 s of noise lines unless the test ends first
            if stop.wait(0.05):
                return
            peer.push(b"\r\nfoo bar garbage\r\n")
            pushed.append(1)

    with ScriptedModem([(r"AT\+CSQ", None)]) as peer:
        engine = engine_for(peer)
        talker = threading.Thread(target=babble, args=(peer,))
        talker.start()
        try:
            with pytest.raises(ModemTimeout):
                engine.command("AT+CSQ", 0.5)
            assert len(pushed) < 400  # it gave up while the noise went on
        finally:
            stop.set()
            talker.join()
        engine.link.close()


def test_a_long_listing_is_not_cut_off():
    import threading

    def slow_listing(match, peer):
        def trickle():
            for index in range(12):
                peer.push(b"\r\n+CMGL: %d,1,,5\r\n0011223344AA\r\n" % index)
                threading.Event().wait(0.25)
            peer.push(OK)
        threading.Thread(target=trickle).start()
        return None

    with ScriptedModem([(r"AT\+CMGL=4", slow_listing)]) as peer:
        engine = engine_for(peer)
        response = engine.command("AT+CMGL=4", 1.0)  # the whole listing takes about 3 s
        assert len(response.values("+CMGL")) == 12
        engine.link.close()
