"""What makes a record a message we accept: a usable number and a text that fits.

Shared by every front door (TCP, HTTP API), so a record is judged the same way
whichever door it came through.  Parts are counted the way the modem will send
them (``smss.gsm.alphabet.plan_parts``), after transliteration when it is on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union

from smss.gsm import alphabet
from smss.spooler import phone as phones
from smss.spooler.protocol import INVALID, Record, RecordError


@dataclass(frozen=True)
class Rules:
    default_country_code: int = 420
    short_numbers: Tuple[str, ...] = ()
    max_parts: int = 10
    transliterate: bool = False
    transports: Tuple[str, ...] = ()  # names a client may pin with #phone@NAME;text
    routes: Tuple[Tuple[str, str], ...] = ()  # (number prefix, transport), longest first

    @classmethod
    def from_config(cls, config) -> "Rules":
        named = tuple(config.transport_names()) if config.has_named_transports() else ()
        return cls(
            default_country_code=config.get("messages", "default_country_code"),
            short_numbers=config.get("messages", "short_numbers"),
            max_parts=config.get("messages", "max_parts"),
            transliterate=config.get("messages", "transliterate"),
            transports=named,
            routes=tuple(config.routes()),
        )

    def route(self, number: str, pinned: str) -> Optional[str]:
        """msg.route: the pinned transport, ``~NAME`` of the longest matching prefix rule,
        or None (any transport)."""
        if pinned:
            return pinned
        for prefix, name in self.routes:
            if number.startswith(prefix):
                return "~" + name  # preferred, with failover (check_and_send.lanes)
        return None


@dataclass(frozen=True)
class Message:
    """A record that passed: the number in E.164 (or a short number) and its text."""

    phone: str
    text: str
    parts: int
    route: Optional[str] = None


def check(record: Record, rules: Rules) -> Union[Message, RecordError]:
    raw, at, pinned = record.phone.rpartition("@") if "@" in record.phone else (
        record.phone, "", "")
    pinned = pinned.strip()
    if at and pinned not in rules.transports:
        known = ", ".join(rules.transports) or "none configured"
        return RecordError(INVALID, f"unknown route {pinned!r} (routes: {known})")
    try:
        number = phones.normalise(raw, rules.default_country_code, rules.short_numbers)
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
    return Message(number, text, parts, rules.route(number, pinned))
