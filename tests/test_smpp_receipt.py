"""Delivery receipts (text and TLVs), message id normal forms, and the inbox spool file."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smss.smpp import pdu as p
from smss.smpp import receipt as r
from smss.smpp.pdu import Pdu
from smss.smpp.spool import Spool

TEXT = ("id:0000A1B2C3 sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 "
        "stat:DELIVRD err:000 text:id:trick stat:REJECTD")


def receipt_pdu(text: str = TEXT, tlvs=()) -> Pdu:
    return Pdu(p.DELIVER_SM, 1, params={"source_addr_ton": 1, "source_addr": "420608337726",
                                        "esm_class": 4, "short_message": text.encode()},
               tlvs=list(tlvs))


def test_text_fields_and_the_text_tail_is_ignored():
    fields = r.parse_text(TEXT)
    assert fields["id"] == "0000A1B2C3" and fields["stat"] == "DELIVRD"
    assert fields["done date"] == "2401011201" and fields["err"] == "000"


def test_receipt_from_text_only():
    found = r.parse(receipt_pdu(), TEXT)
    assert (found.message_id, found.from_tlv, found.state, found.delivered, found.recipient) == (
        "0000A1B2C3", False, r.DELIVERED, True, "+420608337726")


def test_tlvs_win_over_the_text():
    tlvs = [(p.TLV_RECEIPTED_MESSAGE_ID, b"A1B2C3\0"), (p.TLV_MESSAGE_STATE, b"\x05"),
            (p.TLV_NETWORK_ERROR_CODE, b"\x03\x00\x0b")]
    found = r.parse(receipt_pdu("ID:42 STAT:DELIVRD", tlvs), "ID:42 STAT:DELIVRD")
    assert (found.message_id, found.from_tlv, found.state, found.delivered) == (
        "A1B2C3", True, r.UNDELIVERABLE, False)
    assert found.error == "03000b"  # the text has no err:; network_error_code is used then
    found = r.parse(receipt_pdu("id:1 err:017", tlvs), "id:1 err:017")
    assert found.error == "017" and found.stat == "UNDELIV"  # stat named after the TLV


@pytest.mark.parametrize("stat, delivered", [
    ("DELIVRD", True), ("EXPIRED", False), ("DELETED", False), ("UNDELIV", False),
    ("REJECTD", False), ("UNKNOWN", False), ("ENROUTE", None), ("ACCEPTD", None),
    ("odd", None),
])
def test_states(stat, delivered):
    assert r.parse(receipt_pdu(f"id:1 stat:{stat}"), f"id:1 stat:{stat}").delivered is delivered


# Receipt texts without the receipted_message_id / message_state TLVs.  The form is SMPP
# 3.4 Appendix B ("id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done
# date:YYMMDDhhmm stat:DDDDDDD err:E Text: . . ."); the appendix itself calls it vendor
# specific, so the variants below are what maintained clients accept: Cloudhopper's
# DeliveryReceipt reads the fields in any order and case, with 10-, 12- or 14-digit dates;
# Kannel (gw/smsc/smsc_smpp.c) reads id:, stat: and err: wherever they stand; "dlvr:"
# and "submit_date:" are spellings SMSCs use for the same fields.
VARIANTS = [
    ("id:0123456789 sub:001 dlvrd:001 submit date:0610191018 done date:0610191018 "
     "stat:DELIVRD err:000 Text:Hello world", "0123456789", r.DELIVERED, "000"),  # Appendix B
    ("id:0000A1B2C3 sub:001 dlvr:001 submit date:2401011200 done date:2401011201 "
     "stat:DELIVRD err:000 text:", "0000A1B2C3", r.DELIVERED, "000"),  # dlvr:, hex id
    ("id:000000123456 sub:001 dlvrd:000 submit date:240101120000 done date:240101120100 "
     "stat:UNDELIV err:001 text:abc", "000000123456", r.UNDELIVERABLE, "001"),  # 12 digits
    ("ID:1A2B SUB:001 DLVRD:001 SUBMIT DATE:20240101120000 DONE DATE:20240101120100 "
     "STAT:EXPIRED ERR:000 TEXT:", "1A2B", r.EXPIRED, "000"),  # upper case, 14 digits
    ("id:42 submit_date:2401011200 done_date:2401011201 stat:REJECTD err:0x0B",
     "42", r.REJECTED, "0x0B"),  # underscores, no sub/dlvrd
    ("stat:DELIVRD err:000 id:16fd2706-8baf-433b text:id:trick", "16fd2706-8baf-433b",
     r.DELIVERED, "000"),  # another order; an id that is no number; id: in the text
    ("id: 77 stat: ACCEPTD", "77", r.ACCEPTED, ""),  # spaces after the colons, no err
]


@pytest.mark.parametrize("text, message_id, state, error", VARIANTS)
def test_receipt_text_variants_without_tlvs(text, message_id, state, error):
    found = r.parse(receipt_pdu(text), text)
    assert (found.message_id, found.from_tlv, found.state, found.error) == (
        message_id, False, state, error)


def test_field_spellings_are_read_as_one():
    assert r.parse_text("id:1 dlvr:001 submit_date:2401011200 done_date:2401011201") == {
        "id": "1", "dlvrd": "001", "submit date": "2401011200", "done date": "2401011201"}


@pytest.mark.parametrize("text_id, sent_id, written_in", [
    ("0000A1B2C3", "a1b2c3", None), ("a1b2c3", "A1B2C3", None),  # hex, any case and zeros
    ("0000123456", "123456", None),  # decimal with leading zeros
    ("0000123456", "1e240", "decimal"), ("00001E240", "123456", "hex"),  # the other base
])
def test_receipt_ids_match_the_submit_sm_resp_id(text_id, sent_id, written_in):
    found = r.parse(receipt_pdu(f"id:{text_id} stat:DELIVRD"), f"id:{text_id} stat:DELIVRD")
    ours = r.normalise(sent_id)
    if written_in is None:
        assert r.normalise(found.message_id) == ours
    else:
        assert r.normalise(found.message_id) != ours
        assert r.convert(found.message_id, written_in) == ours


def test_no_id_no_receipt():
    assert r.parse(receipt_pdu("stat:DELIVRD"), "stat:DELIVRD") is None


@pytest.mark.parametrize("raw, normal", [
    ("0A1B2C", "a1b2c"), ("a1b2c", "a1b2c"), ("000042", "42"), ("0000", "0"),
    (" 42 ", "42"), ("msg-7Xz", "msg-7Xz"), ("", ""),
])
def test_normalise(raw, normal):
    assert r.normalise(raw) == normal


def test_convert_between_bases():
    assert r.convert("0169552957", "decimal") == r.normalise("0A1B2C3D")
    assert r.convert("0A1B2C3D", "hex") == "169552957"
    assert r.convert("xyz", "hex") is None and r.convert("1A", "decimal") is None
    with pytest.raises(ValueError):
        r.convert("1", "octal")


@given(st.integers(0, 2**64))
def test_a_number_matches_itself_in_either_base(number):
    as_hex = format(number, "X").zfill(10)
    as_decimal = str(number).zfill(12)
    assert r.convert(as_decimal, "decimal") == r.normalise(as_hex)
    assert r.convert(as_hex, "hex") == r.normalise(as_decimal)


# -- the spool

def test_spool_keeps_entries_across_reopen_until_removed(tmp_path):
    path = str(tmp_path / "sub" / "inbox")
    spool = Spool(path)
    spool.open()
    first, second = spool.add([(b"one", "transceiver"), (b"two", "receiver")])
    spool.remove([first.handle])
    spool.close()
    again = Spool(path)
    again.open()
    assert [(e.handle, e.frame, e.link) for e in again.entries()] == [
        (second.handle, b"two", "receiver")]
    again.remove([second.handle, "unknown"])
    assert len(again) == 0
    again.close()
    with open(path, encoding="utf-8") as handle:
        assert handle.read() == ""  # compacted once empty


def test_spool_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "inbox"
    spool = Spool(str(path))
    spool.open()
    [kept] = spool.add([(b"kept", "transceiver")])
    spool.close()
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"op": "add", "h": "x", "at": "2024"})[:20])  # cut by a crash
    again = Spool(str(path))
    again.open()
    assert [e.handle for e in again.entries()] == [kept.handle]


def test_spool_compacts_when_removals_dominate(tmp_path):
    path = tmp_path / "inbox"
    spool = Spool(str(path))
    spool.open()
    keep = spool.add([(b"keep", "t")])
    for _ in range(120):
        [entry] = spool.add([(b"x", "t")])
        spool.remove([entry.handle])
    with open(path, encoding="utf-8") as handle:
        lines = handle.readlines()
    assert len(lines) < 120 and [e.handle for e in spool.entries()] == [keep[0].handle]


def test_spool_meta_survives_reopen_and_compaction(tmp_path):
    path = str(tmp_path / "inbox")
    spool = Spool(path)
    spool.open()
    spool.set_meta("receipt_id_format", "decimal")
    [entry] = spool.add([(b"x", "t")])
    spool.remove([entry.handle])  # empties the spool: the file is rewritten
    spool.close()
    again = Spool(path)
    again.open()
    assert again.get_meta("receipt_id_format") == "decimal" and len(again) == 0
