"""The TE character set of text mode (27.007 +CSCS), pure.

Owns: turning bytes a terminal typed into text and text into the bytes the
modem shows, for "GSM" (one byte per GSM 03.38 septet, so ``@`` is 0x00),
"IRA" (ASCII), "8859-1" and "UCS2" (hex of UTF-16BE).  Output is returned as a
``str`` whose code points are the bytes to send (latin-1 on the wire).
Bytes above 0x7F in GSM or IRA are read as latin-1 rather than rejected, so a
careless client still gets through (documented leniency).
"""

from __future__ import annotations

import binascii

from smss.gsm import alphabet


class CharsetError(ValueError):
    """Input that the current character set cannot represent (e.g. bad UCS2 hex)."""


def decode(data: bytes, charset: str) -> str:
    """Text from bytes the terminal sent in ``charset``."""
    if charset == "UCS2":
        hex_text = data.decode("latin-1").strip().replace(" ", "")
        try:
            raw = binascii.unhexlify(hex_text)
        except (binascii.Error, ValueError) as exc:
            raise CharsetError(f"bad UCS2 hex: {exc}") from None
        if len(raw) % 2:
            raise CharsetError("UCS2 hex must have a multiple of 4 digits")
        return raw.decode("utf-16-be", errors="replace")
    if charset == "GSM":
        out = []
        pending = bytearray()
        for b in data:
            if b < 0x80:
                pending.append(b)
            else:
                out.append(alphabet.from_septets(pending))
                pending.clear()
                out.append(chr(b))
        out.append(alphabet.from_septets(pending))
        return "".join(out)
    return data.decode("latin-1")


def encode(text: str, charset: str) -> str:
    """The bytes (as code points 0..255) that show ``text`` in ``charset``; characters
    the set lacks become ``?``."""
    if charset == "UCS2":
        return text.encode("utf-16-be").hex().upper()
    if charset == "GSM":
        out = []
        for ch in text:
            try:
                out.extend(chr(s) for s in alphabet.to_septets(ch))
            except ValueError:
                out.append("?")
        return "".join(out)
    limit = 0x80 if charset == "IRA" else 0x100
    return "".join(ch if ord(ch) < limit else "?" for ch in text)


def to_gsm7(text: str) -> str:
    """``text`` with every character the GSM 7-bit alphabet lacks replaced by ``?``
    (what a modem sends in text mode with a 7-bit data coding scheme)."""
    return "".join(ch if alphabet.is_gsm7(ch) else "?" for ch in text)
