"""Phone numbers: what a client typed -> E.164 (``+420608337726``) or a short number.

Spaces, dots, dashes, slashes and brackets are ignored; ``00`` and ``+`` mean
international.  Digits without a prefix are read as a national number of the
default country first and as an international number without ``+`` second;
an interpretation that is a valid number wins over one that is only of a
possible length.  Short service numbers (``4603``) are allowed only when they
match one of the configured patterns, because they can cost money.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from typing import Iterable, Optional, Tuple

import phonenumbers

_IGNORED = re.compile(r"[\s.\-/()\[\]]")


class PhoneError(ValueError):
    """The number cannot be used; the message says why."""


def normalise(raw: str, default_country_code: int, short_numbers: Iterable[str] = ()) -> str:
    """E.164 (or the short number); raises PhoneError.  Answers are cached: scheduled
    tasks send to the same few numbers, and libphonenumber's parse is the costly part."""
    number, error = _cached(raw, default_country_code, tuple(short_numbers))
    if error is not None:
        raise PhoneError(error)
    return number


@functools.lru_cache(maxsize=4096)
def _cached(raw: str, default_country_code: int, short_numbers: Tuple[str, ...]
            ) -> Tuple[str, Optional[str]]:
    try:
        return _normalise(raw, default_country_code, short_numbers), None
    except PhoneError as exc:
        return "", str(exc)


def _normalise(raw: str, default_country_code: int, short_numbers: Iterable[str]) -> str:
    cleaned = _IGNORED.sub("", raw)
    if not cleaned:
        raise PhoneError("missing phone number")
    international = False
    if cleaned.startswith("+"):
        international, digits = True, cleaned[1:]
    elif cleaned.startswith("00"):
        international, digits = True, cleaned[2:]
    else:
        digits = cleaned
    if not digits.isdigit() or not digits.isascii():
        raise PhoneError(f"invalid phone number {raw.strip()!r}: only digits, + and 00 allowed")
    if not international and any(fnmatch.fnmatchcase(digits, p) for p in short_numbers):
        return digits
    candidates = ["+" + digits] if international else [digits, "+" + digits]
    region = phonenumbers.region_code_for_country_code(default_country_code)
    possible = []
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return _e164(number)
        if phonenumbers.is_possible_number(number):
            possible.append(number)
    if possible:
        return _e164(possible[0])
    raise PhoneError(f"invalid phone number {raw.strip()!r}")


def _e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
