"""Texts in short messages: data_coding, splitting (UDH, SAR, message_payload) and reading
them back, concatenated, in any data_coding; also the inbox that turns PDUs into messages."""

from __future__ import annotations

import struct
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smss.smpp import inbox
from smss.smpp import pdu as p
from smss.smpp import text as t
from smss.smpp.pdu import Pdu
from smss.smpp.spool import Entry

NOW = datetime(2024, 1, 1, 12, 0, 0)


def test_gsm7_text_is_unpacked_septets_with_data_coding_0():
    plan = t.plan_submit("Cena 10€ {ok}")
    [part] = plan.submits
    assert (plan.encoding, plan.sms, part.data_coding, part.esm_class) == ("gsm7", 1, 0, 0)
    assert part.short_message == bytes([0x43, 0x65, 0x6E, 0x61, 0x20, 0x31, 0x30, 0x1B, 0x65,
                                        0x20, 0x1B, 0x28, 0x6F, 0x6B, 0x1B, 0x29])


def test_czech_text_is_ucs2_utf16be():
    plan = t.plan_submit("Příliš žluťoučký kůň")
    [part] = plan.submits
    assert (plan.encoding, part.data_coding) == ("ucs2", 8)
    assert part.short_message == "Příliš žluťoučký kůň".encode("utf-16-be")


def test_long_gsm7_text_gets_a_concatenation_udh_per_part():
    text = "x" * 200
    plan = t.plan_submit(text, reference=0x1A7)
    assert plan.sms == 2 and len(plan.submits) == 2
    first, second = plan.submits
    assert first.esm_class == second.esm_class == t.ESM_UDHI
    assert first.short_message[:6] == bytes([5, 0, 3, 0xA7, 2, 1])
    assert second.short_message[:6] == bytes([5, 0, 3, 0xA7, 2, 2])
    assert len(first.short_message) == 6 + 153 and len(second.short_message) == 6 + 47


def test_sar_and_payload_modes():
    text = "ž" * 100
    sar = t.plan_submit(text, long_messages=t.SAR, reference=0x1234)
    assert [dict(s.tlvs)[p.TLV_SAR_SEGMENT_SEQNUM] for s in sar.submits] == [b"\x01", b"\x02"]
    assert all(dict(s.tlvs)[p.TLV_SAR_MSG_REF_NUM] == b"\x12\x34" for s in sar.submits)
    assert all(s.esm_class == 0 for s in sar.submits)
    payload = t.plan_submit(text, long_messages=t.PAYLOAD)
    [only] = payload.submits
    assert payload.sms == 2 and only.short_message == b""
    assert dict(only.tlvs)[p.TLV_MESSAGE_PAYLOAD] == text.encode("utf-16-be")


def test_escape_and_surrogate_pairs_never_straddle_parts():
    text = "a" * 152 + "€" + "b" * 10
    first, _ = t.plan_submit(text).submits
    assert first.short_message[6:].endswith(b"a")  # the escape pair moved to part 2
    emoji = "x" * 66 + "😀" + "y" * 5
    first, second = t.plan_submit(emoji).submits
    assert len(first.short_message) - 6 == 66 * 2
    assert second.short_message[6:10] == "😀".encode("utf-16-be")


def test_default_alphabet_latin1_and_ascii():
    plan = t.plan_submit("café", default_alphabet=t.LATIN1)
    assert (plan.encoding, plan.submits[0].short_message) == ("latin1", "café".encode("latin-1"))
    assert t.plan_submit("café", default_alphabet=t.ASCII).encoding == "ucs2"
    assert t.plan_submit("10€", default_alphabet=t.LATIN1).encoding == "ucs2"


def test_too_many_parts_is_refused():
    with pytest.raises(ValueError):
        t.plan_submit("x" * 153 * 3, max_parts=2)


@pytest.mark.parametrize("dc, alphabet, message_class", [
    (0x00, "gsm", None), (0x01, "ascii", None), (0x03, "latin1", None), (0x08, "ucs2", None),
    (0x04, "binary", None), (0x02, "binary", None), (0x10, "gsm", 0), (0x18, "ucs2", 0),
    (0x11, "gsm", 1), (0xF0, "gsm", 0), (0xF4, "binary", 0), (0xF1, "gsm", 1),
    (0xE0, "ucs2", None), (0xC8, "gsm", None),
])
def test_data_codings(dc, alphabet, message_class):
    assert t.coding_of(dc) == t.Coding(alphabet, message_class)


def test_decoding_oddities():
    assert t.decode_octets(bytes([0x48, 0x1B, 0x65]), t.Coding("gsm")) == ("H€", None)
    text, problem = t.decode_octets("é".encode("latin-1"), t.Coding("gsm"))
    assert text == "é" and "Latin-1" in problem
    text, problem = t.decode_octets(b"\x00A\x00", t.Coding("ucs2"))
    assert text == "A" and "odd" in problem
    assert t.decode_octets(b"\xd8\x3d\xde\x00", t.Coding("ucs2")) == ("😀", None)


def test_udh_with_16_bit_reference_and_broken_headers():
    concat, rest, problem = t.split_udh(bytes([6, 8, 4, 0x12, 0x34, 3, 2]) + b"ab")
    assert (concat, rest, problem) == (t.Concat(0x1234, 3, 2), b"ab", None)
    assert t.split_udh(bytes([9, 0, 3]))[2] is not None
    assert t.split_udh(bytes([5, 0, 3, 1, 2, 3]))[2] is not None  # part 3 of 2


# -- the inbox: PDUs as the spool keeps them, to messages

def deliver(short_message: bytes, *, dc=8, esm=0, sender="420608337726", tlvs=()) -> bytes:
    return p.encode(Pdu(p.DELIVER_SM, 1, params={
        "source_addr_ton": 1, "source_addr": sender, "destination_addr": "smss",
        "esm_class": esm, "data_coding": dc, "short_message": short_message}, tlvs=list(tlvs)))


def entries(*frames: bytes, at: datetime = NOW):
    return [Entry(f"h{i}", at, frame, "transceiver") for i, frame in enumerate(frames)]


def read(items, now=NOW, timeout=3600.0):
    return inbox.read(items, now=now, multipart_timeout=timeout)


def test_multipart_ucs2_in_any_order_with_a_repeat_and_a_split_surrogate():
    text = "Ahoj 😀 světe"
    data = text.encode("utf-16-be")
    cut = data.index("😀".encode("utf-16-be")) + 2  # between the two halves of the pair
    udh = [bytes([5, 0, 3, 0x42, 2, n]) for n in (1, 2)]
    frames = (deliver(udh[1] + data[cut:], esm=0x40), deliver(udh[0] + data[:cut], esm=0x40),
              deliver(udh[1] + data[cut:], esm=0x40))
    result = read(entries(*frames))
    [message] = result.messages
    assert (message.phone, message.text, message.parts, message.error) == (
        "+420608337726", text, 2, None)
    assert sorted(message.handles) == ["h0", "h1", "h2"] and message.references == (0x42,)


def test_sar_multipart_and_an_incomplete_one_that_waits_then_is_stored():
    sar = [(p.TLV_SAR_MSG_REF_NUM, b"\x00\x07"), (p.TLV_SAR_TOTAL_SEGMENTS, b"\x03")]
    frames = [deliver(b"Hello ", dc=0, tlvs=sar + [(p.TLV_SAR_SEGMENT_SEQNUM, b"\x01")]),
              deliver(b"you", dc=0, tlvs=sar + [(p.TLV_SAR_SEGMENT_SEQNUM, b"\x03")])]
    items = entries(*frames)
    assert read(items).messages == [] and read(items).waiting == 2
    [late] = read(items, now=NOW + timedelta(hours=2)).messages
    assert late.text == "Hello  [...] you" and "2 of 3" in late.error and late.parts == 2


def test_binary_and_broken_pdus_are_kept_raw():
    binary = deliver(b"\x01\x02", dc=4)
    broken = struct.pack(">IIII", 19, p.DELIVER_SM, 0, 1) + b"\0\0\0"
    result = read(entries(binary, broken))
    assert [m.raw_pdu for m in result.messages] == [binary.hex(), broken.hex()]
    assert "binary" in result.messages[0].error and "undecodable" in result.messages[1].error


def test_receipts_are_told_apart_from_messages():
    receipt = deliver(b"id:0A1B sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 "
                      b"stat:UNDELIV err:011 text:", dc=0, esm=0x04)
    no_id = deliver(b"stat:DELIVRD", dc=0, esm=0x04)
    result = read(entries(receipt, no_id))
    [(_, found)] = result.receipts
    assert (found.message_id, found.delivered, found.state, found.error) == (
        "0A1B", False, 5, "011")
    [message] = result.messages
    assert "without a message id" in message.error


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=1, max_size=400), st.sampled_from([t.UDH, t.SAR, t.PAYLOAD]),
       st.integers(0, 0xFFFF))
def test_any_text_survives_the_trip_through_submit_parts_and_the_inbox(text, mode, reference):
    plan = t.plan_submit(text, long_messages=mode, reference=reference)
    frames = [deliver(part.short_message, dc=part.data_coding, esm=part.esm_class,
                      tlvs=part.tlvs) for part in plan.submits]
    result = read(entries(*reversed(frames)))
    [message] = result.messages
    assert message.text == text and message.error is None
