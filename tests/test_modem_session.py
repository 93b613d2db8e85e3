"""The modem session against scripted modem peers on real ptys and TCP sockets."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from support_modem import OK, PROMPT, ScriptedModem, ok

from smss.config import Config
from smss.gsm.alphabet import pack_septets, to_septets
from smss.gsm.pdu import (
    Deliver,
    StatusReport,
    Submit,
    decode_pdu,
    encode_deliver,
    encode_status_report,
)
from smss.modem.errors import (
    LinkDown,
    ModemTimeout,
    NoNetwork,
    NoSim,
    PermanentError,
    PinRequired,
    PukRequired,
    TemporaryError,
    WrongPin,
)
from smss.modem.pinguard import PinGuard
from smss.modem.session import ModemSession, ModemSettings

WHEN = datetime(2024, 5, 17, 12, 30, 0, tzinfo=timezone(timedelta(hours=2)))


class FakeTime:
    """clock/sleep for the session's waiting loops: sleeping moves the clock."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


def session_for(peer: ScriptedModem, fake: FakeTime | None = None, **overrides) -> ModemSession:
    guard = overrides.pop("pin_guard", None)
    values = dict(device=peer.url, command_timeout=5.0, send_timeout=5.0, read_timeout=0.05,
                  quiet_time=0.1, register_timeout=10.0, sim_busy_timeout=10.0)
    values.update(overrides)
    fake = fake or FakeTime()
    return ModemSession(ModemSettings(**values), clock=fake.clock, sleep=fake.sleep,
                        pin_guard=guard)


def sent_pdus(peer: ScriptedModem) -> list:
    return [decode_pdu(c[4:]) for c in peer.commands() if c.startswith("PDU:")]


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_open_initialises_once_and_sends(transport):
    with ScriptedModem(transport=transport) as peer, session_for(peer) as session:
        result = session.send("+420608337726", "AHOJ")
        assert result.parts == 1 and result.encoding == "gsm7"
        assert result.references == [1]
        second = session.send("+420777123456", "Cau")
        assert second.references == [2]
        commands = peer.commands()
        for expected in ("ATZ", "ATE0", "AT+CMEE=1", "AT+CPIN?", "AT+CMGF=0", "AT+CREG?",
                         "AT+CNMI=2,1,0,2,0"):
            assert commands.count(expected) == 1, expected
        assert commands.index("ATZ") < commands.index("AT+CPIN?") < commands.index("AT+CMGF=0")
        cmgs = [c for c in commands if c.startswith("AT+CMGS=") or c.startswith("PDU:")]
        assert [c[:6] for c in cmgs] == ["AT+CMG", "PDU:00", "AT+CMG", "PDU:00"]
        for command, pdu in zip(cmgs[::2], cmgs[1::2]):  # <length> counts octets after SMSC
            assert int(command[8:]) == len(pdu[4:]) // 2 - 1
        first, other = sent_pdus(peer)
        assert isinstance(first, Submit)
        assert (first.number, first.text, first.status_report) == ("+420608337726", "AHOJ", True)
        assert first.validity_minutes == 1440
        assert other.text == "Cau"


def test_long_unicode_message_one_cmgs_per_part_with_cmms():
    text = "Příliš žluťoučký kůň úpěl ďábelské ódy. " * 4
    with ScriptedModem() as peer, session_for(peer, status_reports=False,
                                              validity_minutes=None) as session:
        result = session.send("+420608337726", text, concat_reference=77)
        assert (result.parts, result.encoding) == (3, "ucs2")
        commands = peer.commands()
        cmgs = [i for i, c in enumerate(commands) if c.startswith("AT+CMGS=")]
        assert len(cmgs) == 3
        assert "AT+CMMS=1" in commands[:cmgs[0]]
        parts = sent_pdus(peer)
        assert "".join(p.text for p in parts) == text
        assert [(p.concat.reference, p.concat.sequence, p.concat.total) for p in parts] == [
            (77, 1, 3), (77, 2, 3), (77, 3, 3)
        ]
        assert not parts[0].status_report and parts[0].validity_minutes is None


def test_references_wrap_at_255():
    with ScriptedModem() as peer, session_for(peer) as session:
        peer._mr = 253
        refs = [session.send("+420608337726", f"n{i}").references[0] for i in range(4)]
        assert refs == [254, 255, 0, 1]


def test_transliteration_keeps_czech_text_in_gsm7():
    with ScriptedModem() as peer, session_for(peer, transliterate=True) as session:
        result = session.send("+420608337726", "Žluťoučký kůň")
        assert result.encoding == "gsm7"
        assert sent_pdus(peer)[0].text == "Zlutoucky kun"


def test_permanent_and_temporary_send_errors():
    replies = iter([b"\r\n+CMS ERROR: 1\r\n", b"\r\n+CMS ERROR: 42\r\n", b"\r\nERROR\r\n"])
    with ScriptedModem() as peer, session_for(peer) as session:
        peer.pdu_reply = lambda pdu, p: next(replies)
        with pytest.raises(PermanentError) as info:
            session.send("+420608337726", "x")
        assert (info.value.code, info.value.pdu_sent) == (1, True)
        assert "unassigned" in str(info.value)
        with pytest.raises(TemporaryError) as info:
            session.send("+420608337726", "x")
        assert info.value.code == 42
        with pytest.raises(TemporaryError):
            session.send("+420608337726", "x")
        peer.pdu_reply = peer._next_mr
        assert session.send("+420608337726", "x").parts == 1
        assert peer.commands().count("ATZ") == 1


def test_failure_in_the_middle_of_a_multipart_message_reports_what_went_out():
    answers = iter([b"\r\n+CMGS: 17\r\n\r\nOK\r\n", b"\r\n+CMS ERROR: 38\r\n"])
    with ScriptedModem() as peer, session_for(peer) as session:
        peer.pdu_reply = lambda pdu, p: next(answers)
        with pytest.raises(TemporaryError) as info:
            session.send("+420608337726", "x" * 200)
        assert info.value.sent_references == [17]
        assert len(sent_pdus(peer)) == 2


def test_unencodable_number_is_permanent():
    with ScriptedModem() as peer, session_for(peer) as session:
        with pytest.raises(PermanentError):
            session.send("not a number", "x")
        assert not any(c.startswith("AT+CMGS") for c in peer.commands())


def test_sim_busy_before_the_prompt_is_waited_out():
    busy = {"left": 2}

    def cmgs(match, peer):
        if busy["left"]:
            busy["left"] -= 1
            return b"\r\n+CMS ERROR: 314\r\n"
        return PROMPT

    fake = FakeTime()
    with ScriptedModem([(r"AT\+CMGS=\d+", cmgs)]) as peer, session_for(peer, fake) as session:
        assert session.send("+420608337726", "x").references == [1]
        assert len(sent_pdus(peer)) == 1
        assert fake.slept > 0


def test_unsolicited_lines_inside_cmgs_and_status_reports():
    report_without_smsc = encode_status_report(
        1, "+420608337726", status=0, submitted=WHEN, discharged=WHEN
    )[2:]
    report_with_smsc = encode_status_report(
        2, "+420608337726", status=0x46, submitted=WHEN, discharged=WHEN, smsc="+420603052000"
    )
    length = len(report_without_smsc) // 2

    def cmgs(match, peer):
        peer.push(b'\r\n+CMTI: "SM",2\r\n')
        return PROMPT

    def answer(pdu, peer):
        return (f"\r\n^RSSI: 17\r\n+CMGS: 1\r\n+CDS: {length}\r\n{report_without_smsc}\r\n"
                f"\r\nOK\r\n+CDS: {length}\r\n{report_with_smsc}\r\n").encode()

    with ScriptedModem([(r"AT\+CMGS=\d+", cmgs)]) as peer, session_for(peer) as session:
        peer.pdu_reply = answer
        assert session.send("+420608337726", "x").references == [1]
        session.status()  # more commands: the trailing +CDS is read somewhere on the way
        reports = session.take_status_reports()
        assert [(r.reference, r.delivered, r.final) for r in reports] == [
            (1, True, True), (2, False, True)
        ]
        assert session.take_status_reports() == []
        assert [u.name for u in session.take_unsolicited()] == ["+CMTI", "^RSSI"]


def test_pin_is_entered_once_when_asked():
    state = {"pin": True}

    def cpin_query(match, peer):
        return ok("+CPIN: SIM PIN") if state["pin"] else ok("+CPIN: READY")

    def cpin_enter(match, peer):
        state["pin"] = False
        return OK

    rules = [(r"AT\+CPIN\?", cpin_query), (r'AT\+CPIN="4321"', cpin_enter)]
    with ScriptedModem(rules) as peer, session_for(peer, pin="4321") as session:
        assert session.is_open
        assert peer.commands().count('AT+CPIN="4321"') == 1


def test_pin_asked_but_not_configured():
    with ScriptedModem([(r"AT\+CPIN\?", ok("+CPIN: SIM PIN"))]) as peer:
        session = session_for(peer)
        with pytest.raises(PinRequired) as info:
            session.open()
        assert info.value.needs_operator and not info.value.temporary
        assert not any(c.startswith("AT+CPIN=") for c in peer.commands())
        assert not session.is_open


def test_wrong_pin_is_never_sent_twice(tmp_path):
    guard_file = tmp_path / "state" / "rejected-pins"
    rules = [(r"AT\+CPIN\?", ok("+CPIN: SIM PIN")), (r"AT\+CPIN=.*", b"\r\n+CME ERROR: 16\r\n")]
    with ScriptedModem(rules) as peer:
        first = session_for(peer, pin="1111", pin_guard_file=str(guard_file))
        with pytest.raises(WrongPin) as info:
            first.open()
        assert info.value.code == 16
        assert "1111" not in str(info.value)
        assert guard_file.exists() and "1111" not in guard_file.read_text()
        # a new session (a new dispatcher process) with the same PIN does not send it
        second = session_for(peer, pin="1111", pin_guard_file=str(guard_file))
        with pytest.raises(WrongPin):
            second.open()
        with pytest.raises(WrongPin):
            second.recover()
        assert sum(c.startswith("AT+CPIN=") for c in peer.commands()) == 1
    PinGuard(str(guard_file)).forget("1111")


def test_pin_answer_lost_then_sim_still_locked_counts_as_wrong(tmp_path):
    guard = PinGuard(str(tmp_path / "pins"))
    rules = [(r"AT\+CPIN\?", ok("+CPIN: SIM PIN")), (r"AT\+CPIN=.*", None)]
    with ScriptedModem(rules) as peer:
        session = session_for(peer, pin="2222", command_timeout=0.5, pin_guard=guard)
        with pytest.raises(WrongPin):
            session.open()
        assert guard.is_rejected("2222")
        assert sum(c.startswith("AT+CPIN=") for c in peer.commands()) == 1
    guard.forget("2222")


def test_link_lost_while_entering_the_pin_is_not_retried(tmp_path):
    guard = PinGuard(str(tmp_path / "pins"))
    rules = [(r"AT\+CPIN\?", ok("+CPIN: SIM PIN")), (r"AT\+CPIN=.*", lambda m, p: p.drop())]
    with ScriptedModem(rules, transport="tcp") as peer:
        with pytest.raises(PinRequired) as info:
            session_for(peer, pin="4444", pin_guard=guard).open()
        assert "unknown" in str(info.value) and "4444" not in str(info.value)
        with pytest.raises(WrongPin):
            session_for(peer, pin="4444", pin_guard=guard).open()
        assert sum(c.startswith("AT+CPIN=") for c in peer.commands()) == 1
        assert peer.connections == 2
    guard.forget("4444")


def test_puk_and_missing_sim():
    with ScriptedModem([(r"AT\+CPIN\?", ok("+CPIN: SIM PUK"))]) as peer:
        with pytest.raises(PukRequired):
            session_for(peer, pin="3333").open()
        assert not any(c.startswith("AT+CPIN=") for c in peer.commands())
    with ScriptedModem([(r"AT\+CPIN\?", b"\r\n+CME ERROR: 10\r\n")]) as peer:
        with pytest.raises(NoSim):
            session_for(peer).open()


def test_sim_busy_after_the_pin_is_waited_out():
    calls = {"cpin": 0, "cpms": 0}

    def cpin_query(match, peer):
        calls["cpin"] += 1
        if calls["cpin"] == 1:
            return ok("+CPIN: SIM PIN")
        if calls["cpin"] <= 3:
            return b"\r\n+CME ERROR: 14\r\n"
        return ok("+CPIN: READY")

    def cpms(match, peer):
        calls["cpms"] += 1
        return b"\r\n+CMS ERROR: 314\r\n" if calls["cpms"] == 1 else ok("+CPMS: 0,30,0,30,0,30")

    rules = [(r"AT\+CPIN\?", cpin_query), (r"AT\+CPMS=.*", cpms)]
    fake = FakeTime()
    with ScriptedModem(rules) as peer, session_for(peer, fake, pin="5555", storage="SM") as s:
        assert s.is_open
        assert 'AT+CPMS="SM","SM","SM"' in peer.commands()
        assert calls == {"cpin": 4, "cpms": 2}
        assert fake.slept >= 3


def test_no_network_after_register_timeout():
    fake = FakeTime()
    with ScriptedModem([(r"AT\+CREG\?", ok("+CREG: 0,2"))]) as peer:
        session = session_for(peer, fake, register_timeout=30, poll_interval=5)
        with pytest.raises(NoNetwork) as info:
            session.open()
        assert info.value.temporary
        assert "searching" in str(info.value)
        assert 30 <= fake.slept <= 40
        assert not session.is_open


def test_registration_that_comes_late_is_waited_for():
    states = ["0,0", "0,2", "0,5"]
    fake = FakeTime()
    rules = [(r"AT\+CREG\?", lambda m, p: ok("+CREG: " + (states.pop(0) if states else "0,5")))]
    with ScriptedModem(rules) as peer, session_for(peer, fake, poll_interval=2) as session:
        assert session.status().registration == "roaming"
        assert fake.slept >= 4  # two polls that found no registration


def test_smsc_storage_and_indication_fallback():
    rules = [(r"AT\+CNMI=2,1,0,2,0", b"\r\n+CMS ERROR: 303\r\n")]
    with ScriptedModem(rules) as peer, session_for(
        peer, smsc="+420603052000", storage="me", init_commands=("+CSCS=\"GSM\"", "AT^BOGUS")
    ) as session:
        commands = peer.commands()
        assert 'AT+CSCA="+420603052000",145' in commands
        assert 'AT+CPMS="ME","ME","ME"' in commands
        assert "AT+CNMI=1,1,0,2,0" in commands
        assert commands.index('AT+CSCS="GSM"') < commands.index("AT^BOGUS")
        assert session.status().smsc == "+420603052000"
    with pytest.raises(PermanentError):
        ModemSession._cpms_command("S M")


def test_list_read_and_delete_stored_messages():
    deliver = encode_deliver("+420608337726", "Ahoj", timestamp=WHEN, smsc="+420603052000")
    report = encode_status_report(9, "+420777123456", status=0, submitted=WHEN, discharged=WHEN)
    length = (len(deliver) - 2 - int(deliver[:2], 16) * 2) // 2
    listing = (
        f'\r\n+CMGL: 1,0,,{length}\r\n{deliver}\r\n'
        f'+CMGL: 2,1,"a,b",{len(report) // 2 - 1}\r\n\x00{report}\r\n'
        f'+CMGL: 5,1,,12\r\n0011FFFF\r\n'
        f'^RSSI: 5\r\n'
        f'+CMGL: 6,0,,20\r\n'
    ).encode() + OK
    deleted = []
    rules = [
        (r"AT\+CMGL=4", listing),
        (r"AT\+CMGR=1", f"\r\n+CMGR: 1,,{length}\r\n{deliver}\r\n".encode() + OK),
        (r"AT\+CMGR=3", OK),
        (r"AT\+CMGR=4", b"\r\n+CMS ERROR: 321\r\n"),
        (r"AT\+CMGD=(\d+)", lambda m, p: deleted.append(int(m.group(1))) or OK),
    ]
    with ScriptedModem(rules) as peer, session_for(peer) as session:
        stored = session.list_stored()
        assert [m.index for m in stored] == [1, 2, 5, 6]
        first, second, broken, headless = stored
        assert isinstance(first.decoded, Deliver)
        assert (first.decoded.sender, first.decoded.text, first.stat_name) == (
            "+420608337726", "Ahoj", "REC UNREAD")
        assert isinstance(second.decoded, StatusReport) and second.decoded.reference == 9
        assert broken.decoded is None and broken.error and broken.pdu_hex == "0011FFFF"
        assert headless.decoded is None and headless.pdu_hex == ""
        assert [u.name for u in session.take_unsolicited()] == ["^RSSI"]
        again = session.read(1)
        assert again is not None and again.decoded == first.decoded
        assert session.read(3) is None and session.read(4) is None
        session.delete(1)
        session.delete(2)
        assert deleted == [1, 2]


def test_ussd_answers_in_their_various_forms():
    kredit = "Kredit 123 Kč".encode("utf-16-be").hex().upper()
    packed = pack_septets(to_septets("Kredit 12,50 Kc, platnost 1.1.")).hex().upper()

    def ussd(match, peer):
        code = match.group(1)
        if code == "*100#":
            peer.push(f'\r\n+CUSD: 0,"{packed}",15\r\n'.encode())
            return OK
        if code == "*101#":
            return f'\r\n+CUSD: 2,"{kredit}",72\r\n'.encode() + OK
        if code == "*102#":
            return OK + b'\r\n+CUSD: 1,"Zadejte volbu:\r\n1 Kredit",15\r\n'
        if code == "*103#":
            return OK + b"\r\n+CUSD: 4\r\n"
        return OK  # no answer ever

    rules = [(r'AT\+CUSD=1,"([^"]*)",15', ussd)]
    with ScriptedModem(rules) as peer, session_for(peer) as session:
        assert session.ussd("*100#") == "Kredit 12,50 Kc, platnost 1.1."
        assert session.ussd("*101#") == "Kredit 123 Kč"
        assert session.ussd("*102#") == "Zadejte volbu:\n1 Kredit"
        assert "AT+CUSD=2" in peer.commands()
        with pytest.raises(PermanentError):
            session.ussd("*103#")
        with pytest.raises(ModemTimeout):
            session.ussd("*104#", timeout=0.3)
        with pytest.raises(ValueError):
            session.ussd('*1"#')


def test_ussd_falls_back_to_a_packed_request():
    from smss.gsm.ussd import encode_request

    packed = encode_request("*100#")
    rules = [
        (r'AT\+CUSD=1,"\*100#",15', b"\r\nERROR\r\n"),
        (rf'AT\+CUSD=1,"{packed}",15', OK + b'\r\n+CUSD: 0,"Kredit 5",15\r\n'),
    ]
    with ScriptedModem(rules) as peer, session_for(peer) as session:
        assert session.ussd("*100#") == "Kredit 5"


def test_status_report_of_the_modem():
    rules = [
        (r"AT\+CGMI", ok("SIEMENS")),
        (r"AT\+CGMM", ok("TC35i")),
        (r"AT\+CPMS\?", ok('+CPMS: "SM",30,30,"SM",30,30,"SM",30,30')),
    ]
    with ScriptedModem(rules) as peer, session_for(peer) as session:
        status = session.status()
        assert (status.rssi, status.signal_dbm, status.ber) == (20, -73, None)
        assert (status.registration, status.registered) == ("home", True)
        assert status.operator == "T-Mobile CZ"
        assert (status.storage, status.storage_used, status.storage_total) == ("SM", 30, 30)
        assert status.storage_full
        assert status.smsc == "+420603052000"
        assert status.model == "SIEMENS TC35i"


def test_noise_on_the_line_does_not_disturb():
    def noisy_csq(match, peer):
        return b"\x00\xff\r\n\xff+CSQ: 9,99\r\n\x00\r\nOK\r\n"

    with ScriptedModem([(r"AT\+CSQ", noisy_csq)]) as peer, session_for(peer) as session:
        peer.push(b"\xff\x00\xfe\r\n")
        assert session.status().rssi == 9
        assert session.send("+420608337726", "x").references == [1]


def test_hung_modem_times_out_and_recover_brings_it_back():
    hang = {"on": False}

    def maybe(match, peer):
        return None if hang["on"] else PROMPT

    with ScriptedModem([(r"AT\+CMGS=\d+", maybe)]) as peer:
        session = session_for(peer, command_timeout=0.5)
        session.open()
        hang["on"] = True
        with pytest.raises(ModemTimeout) as info:
            session.send("+420608337726", "x")
        assert info.value.temporary and info.value.pdu_sent is False
        hang["on"] = False
        session.recover()
        assert peer.commands().count("ATZ") == 2
        assert session.send("+420608337726", "x").references == [1]
        session.close()


def test_recover_resets_the_modem_with_cfun_when_it_stays_wedged():
    wedged = {"on": True}

    def atz(match, peer):
        return None if wedged["on"] else OK

    def cfun(match, peer):
        wedged["on"] = False
        return OK

    fake = FakeTime()
    rules = [(r"ATZ", atz), (r"AT\+CFUN=1,1", cfun)]
    with ScriptedModem(rules) as peer:
        session = session_for(peer, fake, command_timeout=0.3, reset_wait=15)
        with pytest.raises(ModemTimeout):
            session.open()
        session.recover()
        assert session.is_open
        assert "AT+CFUN=1,1" in peer.commands()
        assert fake.slept >= 15
        session.close()


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_dropped_link_is_link_down_and_recoverable_over_tcp(transport):
    with ScriptedModem(transport=transport) as peer:
        session = session_for(peer)
        session.open()
        peer.drop()
        with pytest.raises(LinkDown) as info:
            session.send("+420608337726", "x")
        assert info.value.temporary
        if transport == "tcp":
            session.recover()
            assert session.send("+420608337726", "x").parts == 1
            assert peer.connections == 2
        else:
            with pytest.raises(LinkDown):
                session.recover(hard=False)
        session.close()


def test_settings_from_config():
    config = Config({
        "modem": {"device": "socket://192.168.90.103:8081", "pin": "1234", "storage": "SM",
                  "validity_minutes": "0", "init_commands": "+CSCS=\"GSM\", ^CURC=0"},
        "messages": {"transliterate": "yes"},
    })
    settings = ModemSettings.from_config(config, register_timeout=5)
    assert settings.device == "socket://192.168.90.103:8081"
    assert (settings.pin, settings.storage, settings.validity_minutes) == ("1234", "SM", None)
    assert settings.init_commands == ('+CSCS="GSM"', "^CURC=0")
    assert settings.transliterate and settings.register_timeout == 5
    assert settings.baudrate == 115200 and settings.status_reports


def test_empty_device_is_link_down():
    with pytest.raises(LinkDown):
        ModemSession(ModemSettings(device="")).open()
