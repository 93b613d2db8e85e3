"""The GSM 03.38 (3GPP TS 23.038) 7-bit default alphabet and how a text is cut into SMS parts.

Owns: the default table and its extension table (``^ { } \\ [ ~ ] | €`` and form feed,
sent as an escape pair ``0x1B code``), packing septets into octets (with fill bits after a
user data header), Czech/Slovak transliteration, and the part plan: GSM-7 when every
character is in the alphabet, UCS2 otherwise, and where a long text is split.
Pure functions, no I/O.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Iterable, Sequence

ESC = 0x1B

# Index = septet value. 0x1B is the escape to the extension table (never a character).
_DEFAULT = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(_DEFAULT) == 128

_EXTENSION = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

_CHAR_TO_SEPTET = {ch: i for i, ch in enumerate(_DEFAULT) if i != ESC}
_CHAR_TO_EXT = {ch: code for code, ch in _EXTENSION.items()}
# Per character: its septets (1 for the default table, 2 for an escape pair).
_ENCODE = {ch: (s,) for ch, s in _CHAR_TO_SEPTET.items()}
_ENCODE.update({ch: (ESC, code) for ch, code in _CHAR_TO_EXT.items()})

GSM7_CHARS = frozenset(_ENCODE)

SINGLE_SEPTETS = 160  # one GSM-7 SMS
PART_SEPTETS = 153  # one part of a concatenated GSM-7 SMS (6-octet UDH)
SINGLE_UNITS = 70  # one UCS2 SMS, in UTF-16 code units
PART_UNITS = 67  # one part of a concatenated UCS2 SMS
MAX_PARTS = 255  # the concatenation IE counts parts in one octet


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` is in the default alphabet or its extension."""
    return GSM7_CHARS.issuperset(text)


def septet_length(text: str) -> int:
    """Septets ``text`` needs in GSM-7 (extension characters count 2). ValueError if not GSM-7."""
    n = 0
    for ch in text:
        seq = _ENCODE.get(ch)
        if seq is None:
            raise ValueError(f"character {ch!r} (U+{ord(ch):04X}) is not in the GSM 7-bit alphabet")
        n += len(seq)
    return n


def to_septets(text: str) -> list[int]:
    """Septet values for ``text``; an extension character becomes ``[0x1B, code]``."""
    out: list[int] = []
    for ch in text:
        seq = _ENCODE.get(ch)
        if seq is None:
            raise ValueError(f"character {ch!r} (U+{ord(ch):04X}) is not in the GSM 7-bit alphabet")
        out.extend(seq)
    return out


def from_septets(septets: Iterable[int]) -> str:
    """Text for septet values. Per 23.038 an escape followed by a code the extension table
    does not define shows the default-table character; ``ESC ESC`` and a trailing lone
    escape show a space."""
    out: list[str] = []
    escaped = False
    for s in septets:
        if not 0 <= s <= 0x7F:
            raise ValueError(f"septet value {s!r} is outside 0..127")
        if escaped:
            escaped = False
            if s == ESC:
                out.append(" ")
            else:
                out.append(_EXTENSION.get(s) or _DEFAULT[s])
        elif s == ESC:
            escaped = True
        else:
            out.append(_DEFAULT[s])
    if escaped:
        out.append(" ")
    return "".join(out)


def pack_septets(septets: Sequence[int], fill_bits: int = 0) -> bytes:
    """Pack septets LSB first into octets, after ``fill_bits`` zero bits (0..6; used to
    align text on a septet boundary after a user data header)."""
    if not 0 <= fill_bits <= 6:
        raise ValueError(f"fill_bits must be 0..6, not {fill_bits}")
    out = bytearray()
    acc = 0
    nbits = fill_bits
    for s in septets:
        if not 0 <= s <= 0x7F:
            raise ValueError(f"septet value {s!r} is outside 0..127")
        acc |= s << nbits
        nbits += 7
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 0xFF)
    return bytes(out)


def packed_length(count: int, fill_bits: int = 0) -> int:
    """Octets that ``count`` septets take after ``fill_bits`` fill bits."""
    return (count * 7 + fill_bits + 7) // 8


def unpack_septets(data: bytes, count: int, fill_bits: int = 0) -> list[int]:
    """Unpack ``count`` septets from ``data``, skipping ``fill_bits`` leading bits.
    ValueError when ``data`` is too short for them."""
    if not 0 <= fill_bits <= 6:
        raise ValueError(f"fill_bits must be 0..6, not {fill_bits}")
    if count < 0:
        raise ValueError(f"septet count must not be negative, not {count}")
    need = packed_length(count, fill_bits)
    if len(data) < need:
        raise ValueError(
            f"{count} septets need {need} octets, only {len(data)} present"
        )
    out: list[int] = []
    acc = 0
    nbits = -fill_bits  # the fill bits are consumed, then dropped, with the first octet
    pos = 0
    for _ in range(count):
        while nbits < 7:
            if nbits < 0:
                acc = data[pos] >> fill_bits
            else:
                acc |= data[pos] << nbits
            nbits += 8
            pos += 1
        out.append(acc & 0x7F)
        acc >>= 7
        nbits -= 7
    return out


# Characters that are not in GSM-7 and whose plain form is; the rest of the Czech/Slovak
# letters (and any other Latin letter with a diacritic) is handled by stripping combining
# marks after canonical decomposition.
_TRANSLIT_EXTRA = {
    "\u00a0": " ",  # no-break space
    "\u2007": " ",
    "\u202f": " ",
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2026": "...",
    "\u00ab": '"',
    "\u00bb": '"',
}


def _plain(ch: str) -> str:
    extra = _TRANSLIT_EXTRA.get(ch)
    if extra is not None:
        return extra
    if unicodedata.combining(ch):
        return ""  # a combining mark left over from decomposed input
    base = unicodedata.normalize("NFD", ch)
    stripped = "".join(c for c in base if not unicodedata.combining(c))
    if stripped != base and stripped and is_gsm7(stripped):
        return stripped
    return ch


def transliterate(text: str) -> str:
    """Czech and Slovak diacritics (á č ď é ě í ň ó ř š ť ú ů ý ž ĺ ľ ŕ ô ä and capitals), other
    Latin diacritics and typographic quotes/dashes become plain GSM-7 characters. Characters
    that are already in GSM-7 (é É ä Ä ö ü à è ...) stay, and so does anything with no plain
    form (Cyrillic, emoji): such a text still needs UCS2."""
    text = unicodedata.normalize("NFC", text)
    if is_gsm7(text):
        return text
    return "".join(ch if ch in GSM7_CHARS else _plain(ch) for ch in text)


@dataclass(frozen=True)
class PartPlan:
    """How a text goes out: the encoding and the text of each part (one for a single SMS)."""

    encoding: str  # "gsm7" or "ucs2"
    parts: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.parts)


def _utf16_units(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def _split(text: str, cost, single: int, per_part: int) -> list[str]:
    costs = [cost(ch) for ch in text]
    if sum(costs) <= single:
        return [text]
    parts: list[str] = []
    start = 0
    used = 0
    for i, c in enumerate(costs):
        if used + c > per_part:  # a character never straddles two parts
            parts.append(text[start:i])
            start = i
            used = 0
        used += c
    parts.append(text[start:])
    return parts


def plan_parts(text: str, *, ref_bits: int = 8) -> PartPlan:
    """GSM-7 when every character is in the alphabet, else UCS2. A single SMS holds 160
    septets / 70 UTF-16 units; each part of a multipart SMS 153 septets / 67 units (152 / 66
    with the 7-octet header of a 16-bit concatenation reference, ``ref_bits=16``). An escape
    pair (2 septets) or a surrogate pair (2 units) is never split. Empty text gives one empty
    part. The count may exceed MAX_PARTS (255), which the PDU encoders refuse."""
    if ref_bits not in (8, 16):
        raise ValueError(f"ref_bits must be 8 or 16, not {ref_bits}")
    shrink = 1 if ref_bits == 16 else 0
    if is_gsm7(text):
        encoding = "gsm7"
        parts = _split(text, lambda ch: len(_ENCODE[ch]), SINGLE_SEPTETS, PART_SEPTETS - shrink)
    else:
        encoding = "ucs2"
        parts = _split(text, _utf16_units, SINGLE_UNITS, PART_UNITS - shrink)
    return PartPlan(encoding, tuple(parts))
