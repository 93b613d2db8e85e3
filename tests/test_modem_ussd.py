"""USSD answer parsing and decoding (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from smss.gsm.alphabet import pack_septets, to_septets
from smss.gsm.ussd import dcs_alphabet, decode_ussd, encode_request, parse_cusd

TEXT = "Vas kredit je 123,45 Kc. Platnost do 31.12.2030."


def packed(text: str) -> str:
    return pack_septets(to_septets(text)).hex().upper()


def test_parse_cusd_forms():
    assert parse_cusd('0,"Ahoj",15') == (0, "Ahoj", 15)
    assert parse_cusd("2") == (2, None, None)
    assert parse_cusd('1,"a, \\"b\\"",72') == (1, 'a, \\"b\\"', 72)
    assert parse_cusd(" 0 , plain , 15") == (0, "plain", 15)
    assert parse_cusd('0,"no dcs"') == (0, "no dcs", None)


def test_dcs_alphabets():
    assert [dcs_alphabet(d) for d in (15, 0, 0x10, 0x11, 72, 0x44, 0x40, 0xF0, 0xF4, None)] == [
        "gsm7", "gsm7", "gsm7", "ucs2", "ucs2", "8bit", "gsm7", "gsm7", "8bit", None]


def test_gsm7_packed_answer():
    assert decode_ussd(packed(TEXT), 15) == TEXT
    # 7 characters fill 49 bits: the spare septet of the 7th octet is CR padding
    seven = pack_septets(to_septets("Kredit!") + [0x0D]).hex().upper()
    assert decode_ussd(seven, 15) == "Kredit!"


def test_ucs2_answers():
    hexed = "Kredit 123 Kč".encode("utf-16-be").hex()
    assert decode_ussd(hexed, 72) == "Kredit 123 Kč"
    # language-prefixed UCS2 (DCS 0x11): the first character is the language
    assert decode_ussd(("c" + "Kč").encode("utf-16-be").hex(), 0x11) == "Kč"
    # a modem set to AT+CSCS="UCS2" sends UCS2 hex although the DCS says GSM-7
    assert decode_ussd(TEXT.encode("utf-16-be").hex().upper(), 15) == TEXT


def test_plain_text_is_left_alone():
    assert decode_ussd(TEXT, 15) == TEXT
    assert decode_ussd("Kredit 1", None) == "Kredit 1"
    assert decode_ussd("", 15) == "" and decode_ussd(None, None) == ""
    assert decode_ussd("C0FFEE", 0x44) == "\xc0\xff\xee"  # 8-bit data


def test_encode_request():
    assert encode_request("*100#") == "AA180C3602"
    assert decode_ussd(encode_request("*100#"), 15) == "*100#"


@given(st.text(max_size=80), st.one_of(st.none(), st.integers(0, 255)))
def test_decoding_never_raises(text, dcs):
    assert isinstance(decode_ussd(text, dcs), str)


@given(st.binary(max_size=80), st.one_of(st.none(), st.integers(0, 255)))
def test_decoding_hex_never_raises(data, dcs):
    assert isinstance(decode_ussd(data.hex(), dcs), str)
