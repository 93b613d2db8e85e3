"""USSD answers, pure: a modem's ``+CUSD`` line, and what GSM gateways hand over.

Modems differ in what they put in the ``+CUSD: <m>,<str>,<dcs>`` string:
plain text (already decoded in the TE character set), GSM 7-bit packed as
hex, or UCS2 as hex.  The data coding scheme (3GPP TS 23.038 section 5, the
cell broadcast DCS) says which alphabet the network used; whether the modem
passed it on as hex is guessed from the string itself and checked for
plausibility, so a plain answer is never turned into garbage.

GoIP and Yeastar gateways pass the answer on as plain text or as hex without a
DCS (or with a word saying UCS2): ``decode_answer`` reads those.
"""

from __future__ import annotations

import re
from typing import Optional, Tuple

from smss.gsm import alphabet

_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})+$")
# GSM-7 characters that real answers do not contain: a decoding that yields them was wrong.
_UNLIKELY = set("\u0394\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\x1b\x0c")

#: what <m> of +CUSD means (27.007 7.15)
MODES = {
    0: "no further user action required",
    1: "further user action required",
    2: "USSD terminated by network",
    3: "other local client has responded",
    4: "operation not supported",
    5: "network time out",
}


def parse_cusd(args: str) -> Tuple[int, Optional[str], Optional[int]]:
    """``0,"text",15`` -> (0, "text", 15).  ValueError when <m> is not a number."""
    head, _, rest = args.partition(",")
    if not re.fullmatch(r"[0-9]{1,2}", head.strip()):
        raise ValueError(f"USSD mode {head.strip()!r} is not a number")
    mode = int(head.strip())
    if not rest.strip():
        return mode, None, None
    if '"' in rest:
        start = rest.index('"')
        end = rest.rindex('"')
        text = rest[start + 1:end] if end > start else rest[start + 1:]
        tail = rest[end + 1:] if end > start else ""
    else:
        text, _, tail = rest.partition(",")
        text = text.strip()
    tail = tail.strip().lstrip(",").strip()
    dcs = int(tail) if re.fullmatch(r"[0-9]{1,3}", tail) else None
    return mode, text, dcs


def dcs_alphabet(dcs: Optional[int]) -> Optional[str]:
    """"gsm7", "ucs2", "8bit" for a cell broadcast / USSD DCS, None when unknown."""
    if dcs is None:
        return None
    group = dcs >> 4
    if group in (0x0, 0x2, 0x3) or dcs == 0x10:
        return "gsm7"
    if dcs == 0x11:
        return "ucs2"
    if 0x4 <= group <= 0x7 or group == 0x9:
        return {0: "gsm7", 1: "8bit", 2: "ucs2"}.get((dcs >> 2) & 0x3)
    if group == 0xF:
        return "8bit" if dcs & 0x04 else "gsm7"
    return None


def _plausible(text: str) -> bool:
    if not text:
        return False
    for ch in text:
        if ch in "\r\n":
            continue
        if ch in _UNLIKELY or not ch.isprintable():
            return False
    return True


def _from_packed(data: bytes) -> Optional[str]:
    count = len(data) * 8 // 7
    try:
        septets = alphabet.unpack_septets(data, count)
    except ValueError:
        return None
    if len(data) * 8 % 7 == 0 and septets and septets[-1] in (0x00, 0x0D):
        septets = septets[:-1]  # 23.038: spare septet padding (CR, or @ from some networks)
    try:
        text = alphabet.from_septets(septets)
    except ValueError:
        return None
    text = text.rstrip("\r")
    return text if _plausible(text) else None


def _from_ucs2(data: bytes, skip_language: bool) -> Optional[str]:
    if len(data) % 2:
        return None
    text = data.decode("utf-16-be", errors="replace")
    if skip_language:
        text = text[1:]
    return text if _plausible(text) and "\ufffd" not in text else None


def decode_ussd(text: Optional[str], dcs: Optional[int]) -> str:
    """The readable text of a +CUSD string, whichever way the modem encoded it."""
    if not text:
        return ""
    kind = dcs_alphabet(dcs)
    if _HEX.match(text):
        data = bytes.fromhex(text)
        if kind == "ucs2":
            decoded = _from_ucs2(data, dcs == 0x11)
            if decoded is not None:
                return decoded
        elif kind == "8bit":
            return data.decode("latin-1")
        else:
            decoded = _from_packed(data)
            if decoded is not None:
                return decoded
            if len(data) % 2 == 0:  # a modem with AT+CSCS="UCS2" sends UCS2 hex for any DCS
                decoded = _from_ucs2(data, False)
                if decoded is not None:
                    return decoded
    return text


def encode_request(code: str) -> str:
    """A USSD request as GSM 7-bit packed hex (for modems that want it that way)."""
    return alphabet.pack_septets(alphabet.to_septets(code)).hex().upper()


# -- answers handed over by gateways (GoIP, Yeastar), not by a modem's +CUSD

UCS2_DCS = 0x48  # a DCS that says UCS2 (23.038 general data coding, uncompressed)
GSM7_DCS = 0x0F


def _common(text: str) -> bool:
    """Characters an answer in a European, Cyrillic, Greek, Hebrew or Arabic script has;
    a hex string read as UCS2 by mistake gives CJK and private-use characters instead."""
    return all(ord(ch) < 0x2000 or 0x2000 <= ord(ch) <= 0x20CF for ch in text)


def decode_answer(text: Optional[str], alphabet: Optional[str] = None) -> str:
    """A gateway's USSD answer as text.  ``alphabet``: ``"ucs2"`` or ``"gsm7"`` when the
    gateway says how its hex is coded; None: plain text unless it is hex that decodes
    plausibly (at least 4 bytes, so a short numeric answer stays as it is)."""
    value = (text or "").strip()
    compact = "".join(value.split())
    if not compact or not _HEX.match(compact):
        return value
    if alphabet == "ucs2":
        data = bytes.fromhex(compact)
        return data.decode("utf-16-be", "replace") if len(data) % 2 == 0 else value
    if alphabet == "gsm7":
        return decode_ussd(compact, GSM7_DCS)
    if len(compact) < 8:
        return value
    as_ucs2 = decode_ussd(compact, UCS2_DCS)
    if as_ucs2 != compact and _common(as_ucs2):
        return as_ucs2
    as_gsm7 = decode_ussd(compact, GSM7_DCS)
    if as_gsm7 != compact and _common(as_gsm7):
        return as_gsm7
    return value
