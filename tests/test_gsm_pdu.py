"""SMS PDU codec: known vectors, round trips, field details and malformed input."""

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from smss.gsm.alphabet import GSM7_CHARS
from smss.gsm.pdu import (
    Concat,
    Deliver,
    PduError,
    StatusReport,
    Submit,
    build_submits,
    decode_pdu,
    decode_tpdu,
    deliver_parts,
    encode_deliver,
    encode_status_report,
    encode_submit,
    minutes_to_validity,
    validity_to_minutes,
)

CET = timezone(timedelta(hours=1))
TS = datetime(2024, 3, 1, 12, 30, 5, tzinfo=CET)


# --- known vectors (the classic examples of the GSM PDU literature) ---------------------

def test_known_submit_vector():
    msg = decode_pdu("0011000B916407281553F80000AA0AE8329BFD4697D9EC37")
    assert msg == Submit(smsc="", number="+46708251358", text="hellohello", encoding="gsm7",
                         reference=0, concat=None, status_report=False,
                         validity_minutes=4 * 24 * 60)
    again = encode_submit("+46708251358", "hellohello", encoding="gsm7",
                          validity_minutes=4 * 24 * 60)
    assert again.hex == "0011000B916407281553F80000AA0AE8329BFD4697D9EC37"
    assert again.tpdu_length == 23


def test_known_deliver_vector():
    msg = decode_pdu("07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37")
    assert isinstance(msg, Deliver)
    assert msg.smsc == "+27381000015"
    assert msg.sender == "27838890001" and msg.sender_type == "subscriber"
    assert msg.timestamp == datetime(1999, 3, 29, 15, 16, 59,
                                     tzinfo=timezone(timedelta(hours=2)))
    assert msg.text == "hellohello" and msg.encoding == "gsm7"
    assert msg.concat is None and msg.message_class is None


# --- SUBMIT ----------------------------------------------------------------------------

def test_submit_fields():
    pdu = encode_submit("+420608337726", "Ahoj", encoding="gsm7", reference=0x2A,
                        status_report=True, validity_minutes=60, smsc="+420603052000")
    assert pdu.hex.startswith("0791246030500200")  # SMSC field
    tpdu = bytes.fromhex(pdu.hex)[8:]
    assert len(tpdu) == pdu.tpdu_length
    assert tpdu[0] == 0x31  # SUBMIT | VPF relative | SRR
    assert tpdu[1] == 0x2A
    assert tpdu[2:10].hex().upper() == "0C91246080337762"  # TP-DA
    assert tpdu[10:13].hex().upper() == "00000B"  # PID, DCS, VP 11 = 60 minutes
    msg = decode_pdu(pdu.hex)
    assert msg == Submit(smsc="+420603052000", number="+420608337726", text="Ahoj",
                         encoding="gsm7", reference=0x2A, concat=None, status_report=True,
                         validity_minutes=60)


def test_submit_national_number_and_no_smsc():
    pdu = encode_submit("608337726", "x", encoding="gsm7")
    assert pdu.hex.startswith("000100098106387327F6")
    assert pdu.tpdu_length == len(pdu.hex) // 2 - 1
    assert decode_pdu(pdu.hex).number == "608337726"


def test_submit_ucs2_and_extension():
    msg = decode_pdu(encode_submit("+1", "Žluťoučký 😀", encoding="ucs2").hex)
    assert msg.text == "Žluťoučký 😀" and msg.encoding == "ucs2"
    msg = decode_pdu(encode_submit("+1", "{[€]}^|~\\\f", encoding="gsm7").hex)
    assert msg.text == "{[€]}^|~\\\f"


def test_submit_rejects_bad_input():
    with pytest.raises(ValueError, match="not in the GSM 7-bit alphabet"):
        encode_submit("+1", "č", encoding="gsm7")
    with pytest.raises(ValueError, match="one SMS holds 160"):
        encode_submit("+1", "a" * 161, encoding="gsm7")
    with pytest.raises(ValueError, match="one SMS holds 153"):
        encode_submit("+1", "a" * 154, encoding="gsm7", concat=Concat(1, 2, 1))
    with pytest.raises(ValueError, match="one SMS holds 140"):
        encode_submit("+1", "č" * 71, encoding="ucs2")
    with pytest.raises(ValueError, match="not a phone number"):
        encode_submit("+420 608", "x", encoding="gsm7")
    with pytest.raises(ValueError, match="encoding"):
        encode_submit("+1", "x", encoding="utf8")
    with pytest.raises(ValueError, match="reference"):
        encode_submit("+1", "x", encoding="gsm7", reference=256)
    with pytest.raises(ValueError, match="part 3 of 2"):
        encode_submit("+1", "x", encoding="gsm7", concat=Concat(1, 2, 3))


def test_concat_udh_and_fill_bits():
    # 8-bit reference: UDH 05 00 03 ref total seq = 6 octets -> 1 fill bit, 7 header septets.
    pdu = encode_submit("+1", "A", encoding="gsm7", concat=Concat(0x42, 3, 2))
    tpdu = bytes.fromhex(pdu.hex)[1:]
    assert tpdu[0] & 0x40  # UDHI
    ud = tpdu[-8:]
    assert ud.hex().upper() == "0805000342030282"  # UDL 8 septets; 'A' << 1 = 0x82
    msg = decode_pdu(pdu.hex)
    assert msg.concat == Concat(0x42, 3, 2, 8) and msg.text == "A"
    # 16-bit reference: UDH of 7 octets -> no fill bits, 8 header septets.
    pdu = encode_submit("+1", "A", encoding="gsm7", concat=Concat(0x1234, 3, 2, 16))
    assert pdu.hex.endswith("0906080412340302" + "41")
    assert decode_pdu(pdu.hex).concat == Concat(0x1234, 3, 2, 16)


def test_build_submits_single_and_multipart():
    [single] = build_submits("+420608337726", "a" * 160, concat_reference=9)
    assert decode_pdu(single.hex).concat is None
    parts = build_submits("+420608337726", "a" * 161, concat_reference=9, status_report=True,
                          validity_minutes=1440)
    decoded = [decode_pdu(p.hex) for p in parts]
    assert [d.concat for d in decoded] == [Concat(9, 2, 1), Concat(9, 2, 2)]
    assert [d.text for d in decoded] == ["a" * 153, "a" * 8]
    assert all(d.status_report and d.validity_minutes == 1440 for d in decoded)
    wide = build_submits("+1", "a" * 400, concat_reference=0x1234)
    assert [decode_pdu(p.hex).concat for p in wide] == [Concat(0x1234, 3, i, 16) for i in (1, 2, 3)]
    assert [len(decode_pdu(p.hex).text) for p in wide] == [152, 152, 96]


def test_too_many_parts():
    assert len(build_submits("+1", "a" * 153 * 255, concat_reference=1)) == 255
    with pytest.raises(ValueError, match="needs 256 SMS parts, at most 255"):
        build_submits("+1", "a" * (153 * 255 + 1), concat_reference=1)
    with pytest.raises(ValueError, match="at most 255"):
        deliver_parts("+1", "a" * (153 * 255 + 1), timestamp=TS, concat_reference=1)


def test_build_submits_transliterate():
    [p] = build_submits("+1", "Příliš žluťoučký kůň", concat_reference=1, transliterate=True)
    msg = decode_pdu(p.hex)
    assert msg.encoding == "gsm7" and msg.text == "Prilis zlutoucky kun"
    [p] = build_submits("+1", "Příliš", concat_reference=1)
    assert decode_pdu(p.hex).encoding == "ucs2"


def test_build_submits_never_splits_surrogates_or_escapes():
    text = "x" * 66 + "😀" * 3 + "€" * 200
    for pdu in build_submits("+1", text, concat_reference=3):
        assert "\ufffd" not in decode_pdu(pdu.hex).text
    text = "a" * 152 + "€" * 10
    texts = [decode_pdu(p.hex).text for p in build_submits("+1", text, concat_reference=3)]
    assert texts == ["a" * 152, "€" * 10]


def test_validity_period_steps():
    assert [validity_to_minutes(v) for v in (0, 143, 144, 167, 168, 196, 197, 255)] == [
        5, 720, 750, 1440, 2 * 1440, 30 * 1440, 5 * 7 * 1440, 63 * 7 * 1440]
    assert minutes_to_validity(1) == 0
    assert minutes_to_validity(6) == 1
    assert minutes_to_validity(63 * 7 * 1440 * 10) == 255
    with pytest.raises(ValueError):
        minutes_to_validity(0)


@given(st.integers(1, 63 * 7 * 1440))
def test_validity_rounds_up_to_the_next_step(minutes):
    vp = minutes_to_validity(minutes)
    assert 0 <= vp <= 255
    assert validity_to_minutes(vp) >= minutes
    if vp:
        assert validity_to_minutes(vp - 1) < minutes


# --- DELIVER ---------------------------------------------------------------------------

def test_deliver_alphanumeric_sender_and_negative_timezone():
    ts = datetime(2023, 12, 31, 23, 59, 58, tzinfo=timezone(timedelta(hours=-3, minutes=-30)))
    hexpdu = encode_deliver("Vodafone CZ", "Ahoj {x}", timestamp=ts, smsc="+420603052000")
    tpdu = hexpdu[16:]
    assert tpdu[:6] == "0414D0"  # 20 semi-octets, TON alphanumeric
    assert tpdu[30:44] == "32211332958549"  # 23-12-31 23:59:58, -14 quarters: 0x41 | 0x08
    msg = decode_pdu(hexpdu)
    assert msg.sender == "Vodafone CZ" and msg.sender_type == "alphanumeric"
    assert msg.timestamp == ts and msg.timestamp.utcoffset() == timedelta(hours=-3, minutes=-30)
    assert msg.text == "Ahoj {x}" and msg.smsc == "+420603052000"


def test_deliver_timezone_octet_decoding():
    # Hand-built DELIVER: TZ octet 0x29 = tens digit 1 | sign bit 0x08, units digit 2 in the
    # high nibble -> -12 quarters; 0x80 -> +8 quarters.
    base = "0004" + "0B91" + "2460803377F6" + "0000" + "42103021436500" + "0141"
    assert decode_pdu(base).timestamp.utcoffset() == timedelta(0)
    minus3 = base.replace("42103021436500", "42103021436529")
    assert decode_pdu(minus3).timestamp.utcoffset() == timedelta(hours=-3)
    plus2 = base.replace("42103021436500", "42103021436580")
    msg = decode_pdu(plus2)
    assert msg.timestamp == datetime(2024, 1, 3, 12, 34, 56, tzinfo=timezone(timedelta(hours=2)))
    assert msg.sender == "+42060833776" and msg.text == "A"


def test_deliver_number_types():
    assert decode_pdu(encode_deliver("+420608337726", "x", timestamp=TS)).sender_type == (
        "international")
    national = encode_deliver("608337726", "x", timestamp=TS)
    assert decode_pdu(national).sender == "608337726"
    assert decode_pdu(national).sender_type == "unknown"
    # The same with TOA A1 (national numbering).
    as_national = national.replace("0981", "09A1", 1)
    assert decode_pdu(as_national).sender_type == "national"


def test_deliver_dcs_variants():
    def with_dcs(dcs, ud):
        return "00040B912460803377F600" + dcs + "42103021436500" + ud

    flash = decode_pdu(with_dcs("10", "0141"))
    assert flash.message_class == 0 and flash.encoding == "gsm7"
    assert decode_pdu(with_dcs("F1", "0141")).message_class == 1
    eight = decode_pdu(with_dcs("04", "03E9FF41"))
    assert eight.encoding == "8bit" and eight.text == "\xe9\xffA"
    assert decode_pdu(with_dcs("F4", "0141")).encoding == "8bit"
    assert decode_pdu(with_dcs("08", "04010D0161")).text == "čš"
    assert decode_pdu(with_dcs("E0", "04010D0161")).text == "čš"  # MWI group, UCS2
    with pytest.raises(PduError, match="compressed"):
        decode_pdu(with_dcs("20", "0141"))


def test_deliver_status_report_indication_and_pid():
    hexpdu = "00240B912460803377F63F0042103021436500" + "0141"
    msg = decode_pdu(hexpdu)
    assert msg.status_report_indication and msg.pid == 0x3F


def test_deliver_8bit_and_ucs2_encoding_choice():
    assert decode_pdu(encode_deliver("+1", "abc", timestamp=TS)).encoding == "gsm7"
    assert decode_pdu(encode_deliver("+1", "Жаба", timestamp=TS)).encoding == "ucs2"
    msg = decode_pdu(encode_deliver("+1", "\xe9\x00", timestamp=TS, encoding="8bit"))
    assert msg.encoding == "8bit" and msg.text == "\xe9\x00"


def test_deliver_parts_multipart():
    pdus = deliver_parts("+420777123456", "Привет! " * 30, timestamp=TS, concat_reference=200)
    msgs = [decode_pdu(p) for p in pdus]
    assert [m.concat for m in msgs] == [Concat(200, 4, i) for i in (1, 2, 3, 4)]
    assert "".join(m.text for m in msgs) == "Привет! " * 30


def test_lone_surrogates_from_a_careless_sender():
    # Text is always valid Unicode: a lone half shows as U+FFFD. A UCS2 part that ends in the
    # high half (or starts with the low half) of a pair keeps it aside for reassembly.
    head = "00440B912460803377F60008" + "42103021436500"
    udh = "050003010201"
    part = decode_pdu(head + "0A" + udh + "0041D83D")
    assert part.text == "A\ufffd" and part.edge_surrogates == ("", "\ud83d")
    part = decode_pdu(head + "0A" + udh + "DE000041")
    assert part.text == "\ufffdA" and part.edge_surrogates == ("\ude00", "")
    middle = decode_pdu(head + "0C" + udh + "0041D83D0042")
    assert middle.text == "A\ufffdB" and middle.edge_surrogates == ("", "")
    single = decode_pdu("00040B912460803377F60008" + "42103021436500" + "04" + "0041D83D")
    assert single.text == "A\ufffd" and single.edge_surrogates == ("", "")
    single.text.encode("utf-8")


# --- STATUS-REPORT ----------------------------------------------------------------------

def test_status_report_roundtrip():
    sub = datetime(2024, 5, 6, 7, 8, 9, tzinfo=CET)
    dis = datetime(2024, 5, 6, 7, 8, 19, tzinfo=CET)
    hexpdu = encode_status_report(42, "+420608337726", status=0, submitted=sub, discharged=dis,
                                  smsc="+420603052000")
    msg = decode_pdu(hexpdu)
    assert msg == StatusReport(smsc="+420603052000", reference=42, recipient="+420608337726",
                               submitted=sub, discharged=dis, status=0)
    assert msg.delivered and msg.final
    tpdu = hexpdu[16:]
    assert decode_tpdu(tpdu) == StatusReport("", 42, "+420608337726", sub, dis, 0)
    assert decode_pdu(tpdu, tpdu_length=len(tpdu) // 2) == decode_tpdu(tpdu)
    assert decode_pdu(hexpdu, tpdu_length=len(tpdu) // 2) == msg


def test_status_report_status_classes():
    def report(status):
        return decode_pdu(encode_status_report(1, "+1", status=status, submitted=TS,
                                               discharged=TS))

    assert report(0x00).delivered and report(0x1F).delivered
    pending = report(0x30)
    assert not pending.delivered and not pending.final
    failed = report(0x41)
    assert not failed.delivered and failed.final
    assert report(0x60).final


def test_status_report_with_optional_parameters():
    base = encode_status_report(1, "+1", status=0, submitted=TS, discharged=TS)
    assert decode_pdu(base + "00").status == 0  # TP-PI with nothing announced


def test_decode_pdu_length_mismatch():
    pdu = encode_submit("+1", "x", encoding="gsm7")
    with pytest.raises(PduError, match="the modem said 99"):
        decode_pdu(pdu.hex, tpdu_length=99)
    assert decode_pdu(pdu.hex, tpdu_length=pdu.tpdu_length).text == "x"


def test_timestamp_normalisation():
    naive = datetime(2024, 1, 2, 3, 4, 5)
    assert decode_pdu(encode_deliver("+1", "x", timestamp=naive)).timestamp == naive.replace(
        tzinfo=timezone.utc)
    odd = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(minutes=7)))
    got = decode_pdu(encode_deliver("+1", "x", timestamp=odd)).timestamp
    assert got == odd and got.utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="year"):
        encode_deliver("+1", "x", timestamp=datetime(2100, 1, 1))


# --- malformed input --------------------------------------------------------------------

GOOD = "07912460305002F0040C912460803377620000422050311550800441F45B0D"


@pytest.mark.parametrize("bad, message", [
    ("", "empty"),
    ("0", "odd number of hex digits"),
    ("0G", "not hex: unexpected character 'G'"),
    ("00", "first octet"),
    ("0003", "reserved TP-MTI"),
    ("0C91", "SMSC address length 12"),
    (GOOD[:30], "PDU truncated"),
    (GOOD[:-2], "TP-UDL 4 needs 4 octet"),
    (GOOD + "00", "1 unexpected octet"),
    (GOOD.replace("0000422050", "0000A22050"), "non-decimal digit"),
    (GOOD.replace("4220503115", "4231503115"), "not a valid date"),
    (GOOD.replace("0441F45B0D", "A141F45B0D"), "more than 160"),
    ("00440B912460803377F60000421030214365000A" + "09" + "00" * 8, "header length 9 exceeds"),
    ("00440B912460803377F60000421030214365000A" + "0500050000" + "00" * 4, "IE 00 claims 5"),
    ("00440B912460803377F60000421030214365000100", "shorter than the user data header"),
    ("00040B912460803377F6000842103021436500030041" + "00", "odd number of octets"),
    ("00040B912460803377F6000042103021436500" + "", "TP-UDL"),
    ("00041B912460803377F60000421030214365000141", "more than 20"),
])
def test_malformed_pdus_say_what_is_wrong(bad, message):
    with pytest.raises(PduError, match=message):
        decode_pdu(bad)


def test_good_reference_pdu_is_good():
    msg = decode_pdu(GOOD)
    assert msg.text == "Ahoj" and msg.timestamp.utcoffset() == timedelta(hours=2)


def test_non_string_input():
    with pytest.raises(PduError):
        decode_pdu(b"\xff\xfe")
    with pytest.raises(PduError):
        decode_pdu(None)
    assert decode_pdu(GOOD.encode()).text == "Ahoj"


@settings(max_examples=400)
@given(st.binary(max_size=200))
@example(b"")
def test_random_bytes_raise_only_pdu_error(data):
    for hexpdu in (data.hex(), data.hex()[:-1]):
        try:
            decode_pdu(hexpdu)
        except PduError:
            pass
        try:
            decode_tpdu(hexpdu)
        except PduError:
            pass


@given(st.text(max_size=80))
def test_random_text_raises_only_pdu_error(text):
    try:
        decode_pdu(text)
    except PduError:
        pass


valid_pdus = st.sampled_from([
    GOOD,
    encode_submit("+420608337726", "Ahoj 😀", encoding="ucs2", concat=Concat(7, 2, 1),
                  validity_minutes=5).hex,
    encode_deliver("Vodafone", "x{y}" * 20, timestamp=TS, concat=Concat(300, 3, 3, 16)),
    encode_status_report(9, "+44", status=0x41, submitted=TS, discharged=TS, smsc="+1"),
])


@settings(max_examples=400)
@given(valid_pdus, st.data())
def test_mutated_pdus_raise_only_pdu_error(hexpdu, data):
    raw = bytearray.fromhex(hexpdu)
    cut = data.draw(st.integers(0, len(raw)))
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] = data.draw(st.integers(0, 255))
    for candidate in (bytes(raw).hex(), bytes(raw[:cut]).hex()):
        try:
            decode_pdu(candidate)
        except PduError:
            pass


# --- round trips ------------------------------------------------------------------------

numbers = st.from_regex(r"\+?[0-9]{1,20}", fullmatch=True)
gsm7_text = st.text(alphabet=sorted(GSM7_CHARS), max_size=500)
any_text = st.text(max_size=400)  # hypothesis text: every code point but lone surrogates


def _joined(pdus):
    msgs = [decode_pdu(p) for p in pdus]
    if len(msgs) > 1:
        assert [m.concat.sequence for m in msgs] == list(range(1, len(msgs) + 1))
        assert {m.concat.total for m in msgs} == {len(msgs)}
    return "".join(m.text for m in msgs), msgs


@given(numbers, gsm7_text, st.integers(0, 0xFFFF))
def test_submit_roundtrip_gsm7(number, text, ref):
    pdus = build_submits(number, text, concat_reference=ref)
    got, msgs = _joined([p.hex for p in pdus])
    assert got == text
    assert all(m.number == number and m.encoding == "gsm7" for m in msgs)
    for p in pdus:
        assert p.tpdu_length == len(p.hex) // 2 - 1 and p.tpdu_length <= 164


@given(numbers, any_text, st.integers(0, 0xFFFF), st.booleans(),
       st.none() | st.integers(1, 100000))
def test_submit_roundtrip_any_text(number, text, ref, srr, validity):
    pdus = build_submits(number, text, concat_reference=ref, status_report=srr,
                         validity_minutes=validity)
    got, msgs = _joined([p.hex for p in pdus])
    assert got == text
    assert all(m.status_report == srr for m in msgs)
    if validity is not None:
        assert all(m.validity_minutes >= validity for m in msgs)


@given(st.text(min_size=1, max_size=400))
def test_transliterated_submit_roundtrip(text):
    from smss.gsm.alphabet import transliterate
    pdus = build_submits("+1", text, concat_reference=5, transliterate=True)
    got, _ = _joined([p.hex for p in pdus])
    assert got == transliterate(text)


timestamps = st.builds(
    lambda dt, q: dt.replace(tzinfo=timezone(timedelta(minutes=15 * q))),
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2089, 12, 31),
                 ).map(lambda d: d.replace(microsecond=0)),
    st.integers(-79, 79),
)
senders = numbers | st.text(alphabet=sorted(GSM7_CHARS - set("^{}\\[~]|€\f")),
                            min_size=1, max_size=11).filter(lambda s: not s.isdigit())


@given(senders, any_text, timestamps, st.integers(0, 0xFFFF))
def test_deliver_roundtrip(sender, text, ts, ref):
    got, msgs = _joined(deliver_parts(sender, text, timestamp=ts, concat_reference=ref))
    assert got == text
    for m in msgs:
        assert m.timestamp == ts and m.timestamp.utcoffset() == ts.utcoffset()
        assert m.sender == sender


@given(st.integers(0, 255), numbers, st.integers(0, 255), timestamps, timestamps)
def test_status_report_roundtrip_property(ref, number, status, sub, dis):
    msg = decode_pdu(encode_status_report(ref, number, status=status, submitted=sub,
                                          discharged=dis))
    assert (msg.reference, msg.recipient, msg.status) == (ref, number, status)
    assert msg.submitted == sub and msg.discharged == dis
