"""Fuzzing the PDU decoder: any text, and valid PDUs with damage, raise only PduError.

``check_pdu`` (also the atheris target) decodes one input with ``decode_pdu``
(with and without a ``tpdu_length``) and ``decode_tpdu``.  Every call either
returns a ``Deliver``, ``Submit`` or ``StatusReport`` whose text fields are
valid Unicode (they are stored as UTF-8) and whose concatenation info is in
range, or raises ``PduError``; any other exception, or a hang, fails.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import List, Optional, Union

from hypothesis import given
from hypothesis import strategies as st
from support_fuzz import fuzz_settings, no_hang

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
)

DECODED = (Deliver, Submit, StatusReport)


def check_decoded(result) -> None:
    assert type(result) in DECODED, result
    for name, value in vars(result).items():
        if isinstance(value, str):
            value.encode("utf-8")  # raises on a lone surrogate
        elif isinstance(value, datetime):
            assert value.tzinfo is not None, name
    concat = getattr(result, "concat", None)
    if concat is not None:
        assert isinstance(concat, Concat)
        assert 1 <= concat.sequence <= concat.total, concat
        assert concat.ref_bits in (8, 16)


def decode_checked(call, *args) -> bool:
    """True when ``call`` decoded the input; False when it raised PduError."""
    try:
        result = call(*args)
    except PduError as exc:
        assert str(exc), "a PduError says what is wrong"
        return False
    check_decoded(result)
    return True


def check_pdu(pdu: Union[str, bytes], tpdu_length: Optional[int]) -> None:
    decode_checked(decode_pdu, pdu)
    decode_checked(decode_pdu, pdu, tpdu_length)
    decode_checked(decode_tpdu, pdu)


def valid_pdus() -> List[str]:
    """PDUs of every kind the encoders make: SUBMIT, DELIVER, STATUS-REPORT, multipart, UCS2."""
    when = datetime(2024, 3, 1, 12, 30, 5, tzinfo=timezone(timedelta(hours=1)))
    long_text = "Zálohování serveru srv-01 selhalo: disk plný. " * 8
    pdus = [
        encode_submit("+420608337726", "AHOJ", encoding="gsm7").hex,
        encode_submit("608337726", "Příliš žluťoučký kůň", encoding="ucs2", reference=7,
                      status_report=True, validity_minutes=1440, smsc="+420603052000").hex,
        encode_submit("+420608337726", "8bit", encoding="8bit").hex,
        *[p.hex for p in build_submits("+420777123456", long_text, concat_reference=200)],
        *[p.hex for p in build_submits("+420777123456", "€[]{}" * 60, concat_reference=4000,
                                       status_report=True)],
        encode_deliver("+420608337726", "Dobrý den", timestamp=when),
        encode_deliver("Operator", "alphanumeric sender", timestamp=when,
                       smsc="+420603052000"),
        encode_deliver("+420608337726", "emoji 😀 split", timestamp=when, encoding="ucs2"),
        *deliver_parts("+420608337726", long_text, timestamp=when, concat_reference=17),
        encode_status_report(42, "+420608337726", status=0, submitted=when, discharged=when),
        encode_status_report(43, "608337726", status=0x30, submitted=when,
                             discharged=when + timedelta(minutes=5), smsc="+420603052000"),
    ]
    return pdus


VALID = valid_pdus()


def test_the_seed_pdus_are_valid():
    # The mutations below start from PDUs that decode; otherwise they would test nothing.
    for pdu in VALID:
        assert decode_checked(decode_pdu, pdu), pdu


@st.composite
def mutated(draw) -> str:
    octets = bytearray(bytes.fromhex(draw(st.sampled_from(VALID))))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["set", "set", "insert", "delete", "truncate", "extend"]))
        at = draw(st.integers(0, max(0, len(octets) - 1)))
        if kind == "set" and octets:
            octets[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            octets[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete" and octets:
            del octets[at:at + draw(st.integers(1, 3))]
        elif kind == "truncate":
            del octets[at:]
        elif kind == "extend":
            octets += draw(st.binary(min_size=1, max_size=8))
    text = octets.hex()
    return text.upper() if draw(st.booleans()) else text


hex_text = st.binary(max_size=200).map(bytes.hex)
lengths = st.one_of(st.none(), st.integers(-3, 300))


@fuzz_settings()
@given(pdu=mutated(), tpdu_length=lengths)
def test_damaged_valid_pdus_raise_only_pdu_error(pdu, tpdu_length):
    with no_hang():
        check_pdu(pdu, tpdu_length)


@fuzz_settings()
@given(pdu=st.one_of(hex_text, st.text(max_size=120), st.binary(max_size=120),
                     st.text(alphabet="0123456789ABCDEFabcdef \r\n\t", max_size=120)),
       tpdu_length=lengths)
def test_arbitrary_text_raises_only_pdu_error(pdu, tpdu_length):
    with no_hang():
        check_pdu(pdu, tpdu_length)
