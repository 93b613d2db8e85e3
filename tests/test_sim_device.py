"""AT commands of the simulated modem, driven without threads or sockets (ModemHarness)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support_sim import ModemHarness

from smss.gsm import alphabet
from smss.gsm import pdu as pducodec

OK = "\r\nOK\r\n"


def submit_hex(number="+420608337726", text="Ahoj", encoding="gsm7", **kw):
    built = pducodec.encode_submit(number, text, encoding=encoding, **kw)
    return built


def send_pdu(h, built):
    assert h.at(f"AT+CMGS={built.tpdu_length}") == "\r\n> "
    return h.feed(built.hex.encode() + b"\x1a").decode()


@pytest.fixture
def h():
    return ModemHarness(echo=False)


# -- V.250 basics
def test_at_and_echo():
    h = ModemHarness()
    assert h.at("AT") == "AT\r" + OK
    assert h.at("ATE0") == "ATE0\r" + OK
    assert h.at("AT") == OK
    assert h.at("ATE1") == OK
    assert h.at("at") == "at\r" + OK


def test_verbose_quiet_and_reset(h):
    assert h.at("ATV0") == "0\r"
    assert h.at("AT+CGMI") == "SMSS\r\n0\r"
    assert h.at("AT+NOPE") == "4\r"
    assert h.at("ATV1Q1") == ""
    assert h.at("AT+CMGF=1") == ""
    assert h.at("ATZ") == OK  # Q0, V1 and CMGF back to power-on values
    assert h.at("AT+CMGF?") == "\r\n+CMGF: 0\r\n" + OK


def test_unknown_command_is_error_and_logged(h):
    assert h.at("AT+FOO=1") == "\r\nERROR\r\n"
    assert h.at("AT+CMEE=2;+FOO") == "\r\nERROR\r\n"  # CMEE does not dress up unknown commands
    assert h.modem.unknown == ["AT+FOO", "AT+FOO"]
    assert h.modem.counts["AT+FOO"] == 2 and h.modem.counts["AT+CMEE"] == 1


def test_bad_syntax_and_line_without_at(h):
    assert h.at('AT+CMGS="unterminated') == "\r\nERROR\r\n"
    assert h.at("hello") == ""


def test_error_stops_the_rest_of_the_line(h):
    assert h.at("AT+CMGF=1;+BOGUS;+CMGF=0") == "\r\nERROR\r\n"
    assert h.at("AT+CMGF?") == "\r\n+CMGF: 1\r\n" + OK


def test_repeat_last_line(h):
    assert h.at("AT+CSQ") == "\r\n+CSQ: 20,99\r\n" + OK
    assert h.feed(b"A/").decode() == "\r\n+CSQ: 20,99\r\n" + OK


def test_identification(h):
    assert h.at("AT+CGMI") == "\r\nSMSS\r\n" + OK
    assert h.at("AT+CGMM;+CGMR") == "\r\nModemSim\r\n\r\nsmss-modem-sim 1.0\r\n" + OK
    assert h.at("AT+CGSN") == "\r\n356938035643809\r\n" + OK
    assert h.at("AT+GSN") == "\r\n356938035643809\r\n" + OK
    assert h.at("AT+CIMI") == "\r\n230011234567890\r\n" + OK
    assert h.at("ATI") == "\r\nSMSS\r\nModemSim\r\nRevision: smss-modem-sim 1.0\r\n" + OK
    assert h.at("AT+CGMI=?") == OK


@pytest.mark.parametrize("cmee, answer", [
    (0, "ERROR"), (1, "+CME ERROR: 3"), (2, "+CME ERROR: operation not allowed"),
])
def test_cmee_modes(h, cmee, answer):
    assert h.at(f"AT+CMEE={cmee}") == OK
    assert h.at('AT+CPIN="1234"') == f"\r\n{answer}\r\n"  # SIM is READY: not allowed
    assert h.at("AT+CMEE?") == f"\r\n+CMEE: {cmee}\r\n" + OK


@pytest.mark.parametrize("cmee, answer", [
    (0, "ERROR"), (1, "+CMS ERROR: 321"), (2, "+CMS ERROR: invalid memory index"),
])
def test_cms_error_modes(h, cmee, answer):
    h.at(f"AT+CMEE={cmee}")
    assert h.at("AT+CMGR=99") == f"\r\n{answer}\r\n"


# -- SIM PIN
def test_pin_flow():
    h = ModemHarness(echo=False, pin="1234", sim_busy_seconds=2.0)
    h.at("AT+CMEE=1")
    assert h.at("AT+CPIN?") == "\r\n+CPIN: SIM PIN\r\n" + OK
    assert h.at("AT+CMGL=4") == "\r\n+CMS ERROR: 311\r\n"
    assert h.at("AT+CIMI") == "\r\n+CME ERROR: 11\r\n"
    assert h.at("AT+CREG?") == "\r\n+CREG: 0,0\r\n" + OK
    assert h.at('AT+CPIN="0000"') == "\r\n+CME ERROR: 16\r\n"
    assert h.modem.sim.pin_tries == 2
    assert h.at('AT+CPIN="1234"') == OK
    assert h.at("AT+CPIN?") == "\r\n+CME ERROR: 14\r\n"  # SIM busy for a moment
    assert h.at("AT+CMGL=4") == "\r\n+CMS ERROR: 314\r\n"
    assert h.at("AT+CREG?") == "\r\n+CREG: 0,2\r\n" + OK  # searching
    h.time.advance(2.0)
    assert h.at("AT+CPIN?") == "\r\n+CPIN: READY\r\n" + OK
    assert h.at("AT+CREG?") == "\r\n+CREG: 0,1\r\n" + OK
    assert h.at("AT+CMGL=4") == OK
    assert h.modem.sim.pin_tries == 3


def test_three_wrong_pins_need_the_puk():
    h = ModemHarness(echo=False, pin="1234", sim_busy_seconds=0)
    h.at("AT+CMEE=2")
    for _ in range(3):
        assert h.at('AT+CPIN="9999"') == "\r\n+CME ERROR: incorrect password\r\n"
    assert h.at("AT+CPIN?") == "\r\n+CPIN: SIM PUK\r\n" + OK
    assert h.at('AT+CPIN="1234"') == "\r\n+CME ERROR: SIM PUK required\r\n"
    assert h.at("AT+CMGF=0;+CPMS?") == "\r\n+CMS ERROR: SIM PUK required\r\n"
    assert h.at('AT+CPIN="00000000","4321"') == "\r\n+CME ERROR: incorrect password\r\n"
    assert h.at('AT+CPIN="12345678","4321"') == OK
    assert h.at("AT+CPIN?") == "\r\n+CPIN: READY\r\n" + OK
    assert h.modem.sim.pin == "4321"


def test_puk_tries_exhausted_block_the_sim():
    h = ModemHarness(echo=False, pin="1234")
    h.at("AT+CMEE=1")
    for _ in range(3):
        h.at('AT+CPIN="0000"')
    for _ in range(10):
        assert h.at('AT+CPIN="99999999","1111"') == "\r\n+CME ERROR: 16\r\n"
    assert h.at("AT+CPIN?") == "\r\n+CME ERROR: 13\r\n"
    assert h.at('AT+CPIN="12345678","1111"') == "\r\n+CME ERROR: 13\r\n"


def test_creg_urc_after_pin():
    h = ModemHarness(echo=False, pin="1234", sim_busy_seconds=1.0)
    h.at("AT+CREG=1")
    assert h.at('AT+CPIN="1234"') == OK
    h.time.advance(1.0)
    assert h.take().decode() == "\r\n+CREG: 1\r\n"


# -- network
def test_network_commands(h):
    assert h.at("AT+CREG?") == "\r\n+CREG: 0,1\r\n" + OK
    assert h.at("AT+CREG=2") == OK
    assert h.at("AT+CREG?") == '\r\n+CREG: 2,1,"1F4A","00C3B2"\r\n' + OK
    assert h.at("AT+COPS?") == '\r\n+COPS: 0,0,"T-Mobile CZ",0\r\n' + OK
    assert h.at("AT+COPS=3,2;+COPS?") == '\r\n+COPS: 0,2,"23001",0\r\n' + OK
    assert h.at("AT+CSQ") == "\r\n+CSQ: 20,99\r\n" + OK
    assert h.at("AT+CSCA?") == '\r\n+CSCA: "+420603052000",145\r\n' + OK
    assert h.at('AT+CSCA="+420602909909",145') == OK
    assert h.at("AT+CSCA?") == '\r\n+CSCA: "+420602909909",145\r\n' + OK


def test_charset_commands(h):
    assert h.at("AT+CSCS?") == '\r\n+CSCS: "IRA"\r\n' + OK
    assert h.at("AT+CSCS=?") == '\r\n+CSCS: ("GSM","IRA","UCS2","8859-1")\r\n' + OK
    assert h.at('AT+CSCS="UCS2"') == OK
    assert h.at("AT+CSCA?") == (
        '\r\n+CSCA: "002B003400320030003600300033003000350032003000300030",145\r\n' + OK)
    h.at("AT+CMEE=1")
    assert h.at('AT+CSCS="KOI8"') == "\r\n+CME ERROR: 4\r\n"


# -- storage selection
def test_cpms(h):
    assert h.at("AT+CPMS=?") == '\r\n+CPMS: ("SM","ME"),("SM","ME"),("SM","ME")\r\n' + OK
    assert h.at("AT+CPMS?") == '\r\n+CPMS: "SM",0,30,"SM",0,30,"SM",0,30\r\n' + OK
    assert h.at('AT+CPMS="ME","ME","ME"') == "\r\n+CPMS: 0,100,0,100,0,100\r\n" + OK
    assert h.at('AT+CPMS="SM"') == "\r\n+CPMS: 0,30,0,100,0,100\r\n" + OK
    h.at("AT+CMEE=1")
    assert h.at('AT+CPMS="XX"') == "\r\n+CMS ERROR: 302\r\n"


# -- sending, PDU mode
def test_cmgs_pdu(h):
    built = submit_hex(text="Příliš žluťoučký kůň", encoding="ucs2", status_report=True)
    assert send_pdu(h, built) == "\r\n+CMGS: 0\r\n" + OK
    [sent] = h.modem.sent
    assert sent["number"] == "+420608337726"
    assert sent["text"] == "Příliš žluťoučký kůň"
    assert sent["encoding"] == "ucs2"
    assert sent["reference"] == 0 and sent["status_report"] is True
    assert sent["pdu"] == built.hex and sent["mode"] == "pdu"


def test_cmgs_pdu_in_one_write_without_waiting_for_the_prompt(h):
    built = submit_hex()
    answer = h.feed(f"AT+CMGS={built.tpdu_length}\r{built.hex}\x1a".encode()).decode()
    assert answer == "\r\n> \r\n+CMGS: 0\r\n" + OK


def test_cmgs_pdu_errors(h):
    h.at("AT+CMEE=1")
    built = submit_hex()
    assert h.at(f"AT+CMGS={built.tpdu_length + 1}") == "\r\n> "
    assert h.feed(built.hex.encode() + b"\x1a").decode() == "\r\n+CMS ERROR: 304\r\n"
    h.at(f"AT+CMGS={built.tpdu_length}")
    assert h.feed(b"ZZ" + built.hex[2:].encode() + b"\x1a").decode() == "\r\n+CMS ERROR: 304\r\n"
    deliver = pducodec.encode_deliver("+420777123456", "x", timestamp=h.wallclock)
    length = len(deliver) // 2 - 1
    h.at(f"AT+CMGS={length}")
    assert h.feed(deliver.encode() + b"\x1a").decode() == "\r\n+CMS ERROR: 304\r\n"
    assert h.at("AT+CMGS=0") == "\r\n+CMS ERROR: 304\r\n"
    assert h.modem.sent == []


def test_escape_cancels_the_send(h):
    assert h.at("AT+CMGS=20") == "\r\n> "
    assert h.feed(b"0011000C91\x1b").decode() == OK
    assert h.modem.sent == []
    assert h.at("AT") == OK


def test_message_references_wrap_at_255(h):
    built = submit_hex()
    refs = []
    for _ in range(258):
        answer = send_pdu(h, built)
        refs.append(int(re.search(r"\+CMGS: (\d+)", answer).group(1)))
    assert refs[:3] == [0, 1, 2]
    assert refs[254:258] == [254, 255, 0, 1]


def test_cmms(h):
    assert h.at("AT+CMMS=1") == OK
    assert h.at("AT+CMMS?") == "\r\n+CMMS: 1\r\n" + OK
    h.time.advance(6)
    assert h.at("AT+CMMS?") == "\r\n+CMMS: 0\r\n" + OK
    h.at("AT+CMMS=2")
    h.time.advance(60)
    assert h.at("AT+CMMS?") == "\r\n+CMMS: 2\r\n" + OK
    assert h.at("AT+CMMS=?") == "\r\n+CMMS: (0-2)\r\n" + OK


# -- sending, text mode
def test_cmgs_text_mode_with_line_breaks():
    h = ModemHarness()  # echo on, as a terminal would see it
    h.at("AT+CMGF=1")
    assert h.at('AT+CMGS="+420608337726"') == 'AT+CMGS="+420608337726"\r\r\n> '
    assert h.feed(b"line one\r").decode() == "line one\r\r\n> "
    assert h.feed(b"line two\x1a").decode() == "line two\r\n+CMGS: 0\r\n" + OK
    [sent] = h.modem.sent
    assert sent["text"] == "line one\nline two" and sent["mode"] == "text"
    assert sent["validity_minutes"] == 1440  # AT+CSMP default 17,167


def test_text_mode_like_the_er75i_script(h):
    """Seed 000: AT+CMGF=1, unquoted number, latin-1 text, all without waiting."""
    h.feed(b"AT+CMGF=1\rAT+CMGS=0478000000\rmessage test \xe0 envoyer\x1a")
    [sent] = h.modem.sent
    assert sent["number"] == "0478000000"
    assert sent["text"] == "message test à envoyer"
    assert sent["encoding"] == "gsm7"


def test_text_mode_ucs2(h):
    h.at('AT+CMGF=1;+CSCS="UCS2";+CSMP=49,167,0,8')
    number = "+420608337726".encode("utf-16-be").hex().upper()
    assert h.at(f'AT+CMGS="{number}"') == "\r\n> "
    text = "Žluťoučký kůň"
    assert h.feed(text.encode("utf-16-be").hex().encode() + b"\x1a").decode() == (
        "\r\n+CMGS: 0\r\n" + OK)
    [sent] = h.modem.sent
    assert (sent["number"], sent["text"], sent["encoding"]) == ("+420608337726", text, "ucs2")
    assert sent["status_report"] is True  # CSMP first octet 49 asks for one


def test_text_mode_gsm_charset_and_substitution(h):
    h.at('AT+CMGF=1;+CSCS="GSM"')
    h.at('AT+CMGS="+420608337726"')
    h.feed(b"a\x00b \x02\x1a")  # GSM bytes: 0x00 is '@', 0x02 is '$'
    h.at('AT+CSCS="8859-1"')
    h.at('AT+CMGS="+420608337726"')
    h.feed(b"\xfeau\x1a")  # thorn is not GSM-7: with dcs 0 the modem sends '?'
    assert [s["text"] for s in h.modem.sent] == ["a@b $", "?au"]


def test_cmgw_and_cmss(h):
    built = submit_hex(text="stored")
    assert h.at(f"AT+CMGW={built.tpdu_length}") == "\r\n> "
    assert h.feed(built.hex.encode() + b"\x1a").decode() == "\r\n+CMGW: 1\r\n" + OK
    assert h.at("AT+CMSS=1") == "\r\n+CMSS: 0\r\n" + OK
    assert h.at('AT+CMSS=1,"+420777000111",145') == "\r\n+CMSS: 1\r\n" + OK
    assert [(s["number"], s["text"], s["command"]) for s in h.modem.sent] == [
        ("+420608337726", "stored", "CMSS"), ("+420777000111", "stored", "CMSS")]
    assert h.modem.storages["SM"].get(1).stat == 3  # STO SENT
    h.at("AT+CMEE=1")
    assert h.at("AT+CMSS=5") == "\r\n+CMS ERROR: 321\r\n"


def test_cmgw_text_mode(h):
    h.at("AT+CMGF=1")
    h.at('AT+CMGW="+420608337726"')
    assert h.feed(b"draft\x1a").decode() == "\r\n+CMGW: 1\r\n" + OK
    assert h.at('AT+CMGL="STO UNSENT"') == (
        '\r\n+CMGL: 1,"STO UNSENT","+420608337726",,\r\ndraft\r\n' + OK)


# -- receiving
def test_cmti_list_read_delete(h):
    assert h.at("AT+CNMI=2,1,0,0,0") == OK
    h.modem.inject("+420777123456", "Ahoj")
    assert h.take().decode() == '\r\n+CMTI: "SM",1\r\n'
    answer = h.at("AT+CMGL=4")
    match = re.fullmatch(r"\r\n\+CMGL: 1,0,,(\d+)\r\n([0-9A-F]+)\r\n" + OK, answer)
    assert match, answer
    msg = pducodec.decode_pdu(match.group(2), int(match.group(1)))
    assert (msg.sender, msg.text, msg.smsc) == ("+420777123456", "Ahoj", "+420603052000")
    assert msg.timestamp == h.wallclock
    assert h.at("AT+CMGL=0") == OK  # listed once: now REC READ
    assert h.at("AT+CMGR=1").startswith("\r\n+CMGR: 1,,")
    assert h.at("AT+CMGD=1") == OK
    assert h.at("AT+CMGR=1") == OK  # empty slot
    assert h.at("AT+CMGL=4") == OK
    h.at("AT+CMEE=1")
    assert h.at("AT+CMGD=31") == "\r\n+CMS ERROR: 321\r\n"
    assert h.at("AT+CMGL=9") == "\r\n+CMS ERROR: 304\r\n"


def test_cmgd_delflags(h):
    for text in ("a", "b", "c"):
        h.modem.inject("+420777123456", text)
    h.at("AT+CMGR=1")  # read
    assert h.at("AT+CMGD=1,1") == OK
    assert [e.index for e in h.modem.storages["SM"]] == [2, 3]
    assert h.at("AT+CMGD=?") == "\r\n+CMGD: (2,3),(0-4)\r\n" + OK
    assert h.at("AT+CMGD=1,4") == OK
    assert h.modem.storages["SM"].used == 0


def test_text_mode_listing(h):
    h.modem.inject("+420777123456", "Ahoj")
    h.modem.inject("+420777123456", "Věra")
    h.at("AT+CMGF=1;+CSDH=1")
    assert h.at('AT+CMGL="ALL"') == (
        '\r\n+CMGL: 1,"REC UNREAD","+420777123456",,"24/05/17,12:30:00+00",145,4\r\nAhoj\r\n'
        '\r\n+CMGL: 2,"REC UNREAD","+420777123456",,"24/05/17,12:30:00+00",145,8\r\n'
        "0056011B00720061\r\n" + OK)
    assert h.at("AT+CMGR=1") == (
        '\r\n+CMGR: "REC READ","+420777123456",,"24/05/17,12:30:00+00",145,4,0,0,'
        '"+420603052000",145,4\r\nAhoj\r\n' + OK)
    h.at("AT+CMEE=1")
    assert h.at("AT+CMGL=4") == "\r\n+CMS ERROR: 305\r\n"
    assert h.at('AT+CMGL="REC UNREAD"') == OK


def test_cmt_routes_directly_without_storing(h):
    h.at("AT+CNMI=2,2,0,0,0")
    h.modem.inject("+420777123456", "direct")
    lines = h.take().decode().split("\r\n")
    assert lines[1].startswith("+CMT: ,")
    assert pducodec.decode_pdu(lines[2], int(lines[1][7:])).text == "direct"
    assert h.modem.storages["SM"].used == 0
    h.at("AT+CMGF=1")
    h.modem.inject("+420777123456", "text")
    assert h.take().decode() == '\r\n+CMT: "+420777123456",,"24/05/17,12:30:00+00"\r\ntext\r\n'


def test_no_indication_without_cnmi(h):
    h.modem.inject("+420777123456", "quiet")
    assert h.take() == b""
    assert h.modem.storages["SM"].used == 1


def test_multipart_inject_out_of_order_and_missing_parts(h):
    h.at("AT+CNMI=2,1")
    text = "".join(f"{i:04d} " for i in range(70))  # 350 GSM-7 characters: 3 parts
    result = h.modem.inject("+420777123456", text, order=[3, 1, 2], concat_reference=77)
    assert [p["part"] for p in result["parts"]] == [3, 1, 2]
    assert [p["index"] for p in result["parts"]] == [1, 2, 3]
    assert h.take().decode().count("+CMTI:") == 3
    parts = {}
    for entry in h.modem.storages["SM"]:
        msg = pducodec.decode_pdu(entry.pdu)
        parts[msg.concat.sequence] = msg
        assert (msg.concat.reference, msg.concat.total) == (77, 3)
    assert "".join(parts[i].text for i in (1, 2, 3)) == text
    result = h.modem.inject("+420777123456", "ř" * 100, encoding="ucs2", parts=[2])
    [only] = result["parts"]
    assert only["part"] == 2
    assert pducodec.decode_pdu(only["pdu"]).concat.total == 2


def test_forced_encodings(h):
    h.modem.inject("+420777123456", "plain", encoding="ucs2")
    h.modem.inject("+420777123456", "bytes", encoding="8bit")
    encodings = [pducodec.decode_pdu(e.pdu).encoding for e in h.modem.storages["SM"]]
    assert encodings == ["ucs2", "8bit"]
    with pytest.raises(ValueError):
        h.modem.inject("+420777123456", "č", encoding="gsm7")


def test_capacity_and_waiting_messages():
    h = ModemHarness(echo=False, capacity=2)
    h.at("AT+CNMI=2,1")
    results = [h.modem.inject("+420777123456", f"m{i}")["parts"][0] for i in range(3)]
    assert [r.get("index") for r in results] == [1, 2, None] and results[2]["waiting"]
    assert h.take().decode() == '\r\n+CMTI: "SM",1\r\n\r\n+CMTI: "SM",2\r\n'
    assert h.at("AT+CPMS?") == '\r\n+CPMS: "SM",2,2,"SM",2,2,"SM",2,2\r\n' + OK
    h.at("AT+CMEE=1")
    built = submit_hex()
    h.at(f"AT+CMGW={built.tpdu_length}")
    assert h.feed(built.hex.encode() + b"\x1a").decode() == "\r\n+CMS ERROR: 322\r\n"
    assert h.at("AT+CMGD=1") == '\r\n+CMTI: "SM",1\r\n' + OK  # the network delivers now
    assert pducodec.decode_pdu(h.modem.storages["SM"].get(1).pdu).text == "m2"


def test_zero_based_indexes():
    h = ModemHarness(echo=False, first_index=0)
    h.at("AT+CNMI=2,1")
    h.modem.inject("+420777123456", "first")
    assert h.take().decode() == '\r\n+CMTI: "SM",0\r\n'
    assert h.at("AT+CMGR=0").startswith("\r\n+CMGR: 0,,")


# -- status reports
def _send_with_report(h):
    built = submit_hex(status_report=True)
    answer = send_pdu(h, built)
    return int(re.search(r"\+CMGS: (\d+)", answer).group(1))


def test_status_report_as_cds(h):
    h.at("AT+CNMI=2,1,0,1,0")
    h.modem.next_mr = 200
    mr = _send_with_report(h)
    assert h.take() == b""
    h.time.run_all()
    lines = h.take().decode().split("\r\n")
    assert lines[1].startswith("+CDS: ")
    report = pducodec.decode_pdu(lines[2], int(lines[1][6:]))
    assert isinstance(report, pducodec.StatusReport)
    assert (report.reference, report.recipient, report.status) == (mr, "+420608337726", 0)
    assert h.modem.reports[0]["reference"] == 200


def test_status_report_without_smsc_field():
    h = ModemHarness(echo=False, cds_with_smsc=False)
    h.at("AT+CNMI=2,1,0,1,0")
    _send_with_report(h)
    h.time.run_all()
    lines = h.take().decode().split("\r\n")
    assert len(lines[2]) // 2 == int(lines[1][6:])
    assert pducodec.decode_tpdu(lines[2]).reference == 0


def test_status_report_stored_with_cdsi_and_several_outcomes():
    h = ModemHarness(echo=False, status_report_statuses=[0x30, 0x00])
    h.at("AT+CNMI=2,1,0,2,0")
    mr = _send_with_report(h)
    h.time.run_all()
    assert h.take().decode() == '\r\n+CDSI: "SM",1\r\n\r\n+CDSI: "SM",2\r\n'
    statuses = [pducodec.decode_pdu(e.pdu) for e in h.modem.storages["SM"]]
    assert [(s.reference, s.status) for s in statuses] == [(mr, 0x30), (mr, 0x00)]
    h.at("AT+CMGF=1")
    assert h.at("AT+CMGR=2") == (
        '\r\n+CMGR: "REC UNREAD",6,0,"+420608337726",145,"24/05/17,12:30:00+00",'
        '"24/05/17,12:30:00+00",0\r\n' + OK)


def test_status_report_ds0_is_stored_silently(h):
    _send_with_report(h)
    h.time.run_all()
    assert h.take() == b"" and h.modem.storages["SM"].used == 1


def test_status_report_ds0_discarded_when_configured():
    h = ModemHarness(echo=False, status_report_ds0="discard")
    _send_with_report(h)
    h.time.run_all()
    assert h.take() == b"" and h.modem.storages["SM"].used == 0
    assert len(h.modem.reports) == 1


def test_no_status_report_when_not_requested(h):
    h.at("AT+CNMI=2,1,0,1,0")
    send_pdu(h, submit_hex())
    h.time.run_all()
    assert h.take() == b"" and h.modem.reports == []


def test_text_mode_cds(h):
    h.at("AT+CMGF=1;+CSMP=49,167,0,0;+CNMI=2,1,0,1,0")
    h.at('AT+CMGS="+420608337726"')
    assert h.feed(b"report me\x1a").decode() == "\r\n+CMGS: 0\r\n" + OK
    h.time.run_all()
    assert h.take().decode() == (
        '\r\n+CDS: 6,0,"+420608337726",145,"24/05/17,12:30:00+00","24/05/17,12:30:00+00",0\r\n')


# -- USSD
def _ussd_answer(h, request='AT+CUSD=1,"*100#",15'):
    assert h.at(request) == OK
    h.time.run_all()
    match = re.fullmatch(r'\r\n\+CUSD: 0,"([^"]*)",(\d+)\r\n', h.take().decode())
    assert match
    return match.group(1), int(match.group(2))


def test_ussd_gsm7_packed(h):
    text, dcs = _ussd_answer(h)
    raw = bytes.fromhex(text)
    septets = alphabet.unpack_septets(raw, len(raw) * 8 // 7)
    assert dcs == 15
    assert alphabet.from_septets(septets).rstrip("\r@").startswith("Vas kredit je 123,45 Kc.")


def test_ussd_packed_request_and_ucs2_answer():
    h = ModemHarness(echo=False, ussd_encoding="ucs2",
                     ussd_responses={"*101#": "Zůstatek 50 Kč"})
    packed = alphabet.pack_septets(alphabet.to_septets("*101#")).hex().upper()
    text, dcs = _ussd_answer(h, f'AT+CUSD=1,"{packed}",15')
    assert dcs == 72 and bytes.fromhex(text).decode("utf-16-be") == "Zůstatek 50 Kč"


def test_ussd_plain_text_and_unknown_code():
    h = ModemHarness(echo=False, ussd_encoding="text", ussd_unknown="")
    assert _ussd_answer(h)[0].startswith("Vas kredit")
    assert h.at('AT+CUSD=1,"*999#",15') == OK
    h.time.run_all()
    assert h.take().decode() == "\r\n+CUSD: 4\r\n"
    assert h.at("AT+CUSD?") == "\r\n+CUSD: 1\r\n" + OK


def test_counts(h):
    h.at("AT")
    h.at("AT+CMGF=0;+CMGF?")
    send_pdu(h, submit_hex())
    assert h.modem.counts["AT"] == 1
    assert h.modem.counts["AT+CMGF"] == 2
    assert h.modem.counts["AT+CMGS"] == 1


def test_reset_restores_power_on_state():
    h = ModemHarness(echo=False, pin="1234")
    h.at('AT+CPIN="1234";+CMGF=1')
    h.modem.inject("+420777123456", "x")
    h.modem.reset()
    assert h.at("AT+CPIN?") == "\r\n+CPIN: SIM PIN\r\n" + OK
    assert h.modem.storages["SM"].used == 0 and h.modem.sent == []


SCRIPT = (
    b"ATE1\r\nAT+CMEE=1;+CMGF=0\rAT+CPMS?\r"
    + b"AT+CMGS=%d\r%s\x1a" % (submit_hex().tpdu_length, submit_hex().hex.encode())
    + b'AT+CMGF=1\rAT+CMGS="+420777000111"\rline\rnext\x1aAT+CMGS="1"\rx\x1bAT+CSQ\rA/AT+BAD\rAT\r'
)


def _run_script(chunks):
    h = ModemHarness()
    out = b"".join(h.feed(chunk) for chunk in chunks)
    return out, [(s["number"], s["text"]) for s in h.modem.sent]


def test_script_output():
    out, sent = _run_script([SCRIPT])
    assert sent == [("+420608337726", "Ahoj"), ("+420777000111", "line\nnext")]
    assert out.count(b"\r\nOK\r\n") == 10 and out.count(b"+CSQ: 20,99") == 2
    assert b'AT+CMGS="1"\r\r\n> x\r\nOK\r\n' in out  # ESC: cancelled, nothing sent
    assert out.endswith(b"AT+BAD\r\r\nERROR\r\nAT\r\r\nOK\r\n")


@given(st.lists(st.integers(min_value=1, max_value=len(SCRIPT) - 1), max_size=20))
def test_script_split_anywhere_gives_the_same_output(cuts):
    chunks, start = [], 0
    for pos in sorted(set(cuts)):
        chunks.append(SCRIPT[start:pos])
        start = pos
    chunks.append(SCRIPT[start:])
    assert _run_script(chunks) == _run_script([SCRIPT])


def test_script_one_byte_at_a_time():
    assert _run_script([bytes([b]) for b in SCRIPT]) == _run_script([SCRIPT])


def test_ussd_request_in_ucs2_charset_like_gammu_sends_it():
    h = ModemHarness(echo=False, ussd_encoding="text")
    h.at('AT+CSCS="UCS2"')
    text, dcs = _ussd_answer(h, 'AT+CUSD=1,"002A0031003000300023",15')
    assert dcs == 15
    assert bytes.fromhex(text).decode("utf-16-be").startswith("Vas kredit je 123,45 Kc.")
