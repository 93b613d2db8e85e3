"""Phone numbers to E.164 and the text checks every front door applies."""

from __future__ import annotations

import pytest

from smss.spooler.phone import PhoneError, normalise
from smss.spooler.protocol import INVALID, Record, RecordError
from smss.spooler.validate import Message, Rules, check


@pytest.mark.parametrize("raw,expected", [
    ("420608337726", "+420608337726"),
    ("608337726", "+420608337726"),
    ("00420608337726", "+420608337726"),
    ("+420 608 337 726", "+420608337726"),
    ("+420-608.337/726", "+420608337726"),
    ("(+420) 608 337 726", "+420608337726"),
    ("+1 (212) 555-0100", "+12125550100"),
    ("447911123456", "+447911123456"),     # another country's number without '+'
    ("0044 7911 123456", "+447911123456"),
])
def test_normalise(raw, expected):
    assert normalise(raw, 420) == expected


def test_national_numbers_take_the_configured_country():
    assert normalise("030 1234567", 49) == "+49301234567"


@pytest.mark.parametrize("raw", ["", "  ", "abc", "+42060833772x", "123", "+", "00", "12;3",
                                 "４２０６０８３３７７２６"])
def test_invalid_numbers(raw):
    with pytest.raises(PhoneError):
        normalise(raw, 420)


def test_short_numbers_only_when_configured():
    with pytest.raises(PhoneError):
        normalise("4603", 420)
    assert normalise("4603", 420, ["4603"]) == "4603"
    assert normalise("90 123", 420, ["9*"]) == "90123"
    with pytest.raises(PhoneError):
        normalise("+4603", 420, ["4603"])  # '+' means an international number


RULES = Rules(default_country_code=420, max_parts=3)


def test_check_accepts_and_counts_parts():
    assert check(Record("608337726", "AHOJ"), RULES) == Message("+420608337726", "AHOJ", 1)
    assert check(Record("608337726", "x" * 161), RULES).parts == 2
    assert check(Record("608337726", "ř" * 71), RULES).parts == 2


def test_gsm_extension_characters_count_double():
    assert check(Record("608337726", "€" * 80), RULES).parts == 1
    assert check(Record("608337726", "€" * 81), RULES).parts == 2


def test_too_many_parts_is_refused_with_the_count():
    verdict = check(Record("608337726", "x" * (153 * 3 + 1)), RULES)
    assert verdict == RecordError(INVALID, "text too long: 4 SMS parts, at most 3 allowed")
    assert isinstance(check(Record("608337726", "x" * 153 * 3), RULES), Message)


def test_transliteration_can_save_parts():
    text = "Příliš žluťoučký kůň úpěl ďábelské ódy. " * 2  # 80 chars, UCS2 without transliteration
    assert check(Record("608337726", text), RULES).parts == 2
    rules = Rules(default_country_code=420, max_parts=3, transliterate=True)
    verdict = check(Record("608337726", text), rules)
    assert verdict.parts == 1 and verdict.text == text  # stored as written, sent transliterated


@pytest.mark.parametrize("text", ["", " ", "\r\n"])
def test_empty_text(text):
    assert check(Record("608337726", text), RULES) == RecordError(INVALID, "empty text")


def test_bad_number_reason_names_the_number():
    verdict = check(Record("12ab", "x"), RULES)
    assert verdict.code == INVALID and "'12ab'" in verdict.reason
