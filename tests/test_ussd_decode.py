"""USSD answers from gateways decoded (pure): plain text stays, UCS2 hex and GSM 7-bit packed
hex become text, short numeric answers are not mistaken for hex; codes are checked."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smss.gsm import alphabet
from smss.gsm.ussd import decode_answer
from smss.transports.base import PERMANENT, SendFailed
from smss.ussd import check_code


def ucs2(text: str) -> str:
    return text.encode("utf-16-be").hex().upper()


def gsm7(text: str) -> str:
    return alphabet.pack_septets(alphabet.to_septets(text)).hex().upper()


@pytest.mark.parametrize("raw, text", [
    ("Баланс: 57.2 р.", "Баланс: 57.2 р."),
    ("1234", "1234"),  # short numeric: plain
    ("2024", "2024"),
    (ucs2("Ваш баланс 36.3 р."), "Ваш баланс 36.3 р."),
    (ucs2("Zůstatek 120 Kč"), "Zůstatek 120 Kč"),
    (gsm7("Your balance is 12.50 EUR"), "Your balance is 12.50 EUR"),
    ("  " + ucs2("Ок") + "  ", "Ок"),
    ("", ""),
])
def test_guessing(raw, text):
    assert decode_answer(raw) == text


def test_told_alphabets():
    assert decode_answer("0041", "ucs2") == "A"  # short, but the gateway said UCS2
    assert decode_answer(gsm7("Hi"), "gsm7") == "Hi"
    assert decode_answer("not hex", "ucs2") == "not hex"


@given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x4FF,
                             blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=2,
               max_size=60).filter(lambda t: t.strip() == t and t.isprintable()))
def test_ucs2_round_trip_for_european_and_cyrillic_answers(text):
    assert decode_answer(ucs2(text), "ucs2") == text


@pytest.mark.parametrize("code", ["*100#", "#123#", "*101*1#", "+123"])
def test_codes(code):
    assert check_code(code) == code


@pytest.mark.parametrize("code", ["", "100; rm -rf", "*10\n0#", "abc", "*" * 65])
def test_bad_codes(code):
    with pytest.raises(SendFailed) as caught:
        check_code(code)
    assert caught.value.kind == PERMANENT
