"""What makes a record a message we accept: a usable number and a text that fits.

Shared by every front door (TCP, HTTP API), so a record is judged the same way
whichever door it came through.  Parts are counted the way the modem will send
them (``smss.gsm.alphabet.plan_parts``), after transliteration when it is on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple, Union

from smss import phone as phones
from smss.gsm import alphabet
from smss.protocol import INVALID, Record, RecordError


@dataclass(frozen=True)
class Rules:
    default_country_code: int = 420
    short_numbers: Tuple[str, ...] = ()
    max_parts: int = 10
    transliterate: bool = False

    @classmethod
    def from_config(cls, config) -> "Rules":
        return cls(
            default_country_code=config.get("messages", "default_country_code"),
            short_numbers=config.get("messages", "short_numbers"),
            max_parts=config.get("messages", "max_parts"),
            transliterate=config.get("messages", "transliterate"),
        )


@dataclass(frozen=True)
class Message:
    """A record that passed: the number in E.164 (or a short number) and its text."""

    phone: str
    text: str
    parts: int


def check(record: Record, rules: Rules) -> Union[Message, RecordError]:
    try:
        number = phones.normalise(record.phone, rules.default_country_code, rules.short_numbers)
    except phones.PhoneError as exc:
        return RecordError(INVALID, str(exc))
    text = record.text
    if not text.strip():
        return RecordError(INVALID, "empty text")
    sendable = alphabet.transliterate(text) if rules.transliterate else text
    parts = len(alphabet.plan_parts(sendable).parts)
    if parts > rules.max_parts:
        return RecordError(
            INVALID, f"text too long: {parts} SMS parts, at most {rules.max_parts} allowed"
        )
    return Message(number, text, parts)
