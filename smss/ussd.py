"""USSD for people and programs: ``run(config, "*100#", via=None)`` -> the network's answer.

The request goes through one configured transport (``via``: a ``[transport:NAME]``
name or a type such as ``modem``, ``goip``, ``yeastar``; default: the first transport)
and comes back as text.  The transport is opened for this request only and does not
receive SMS meanwhile, so it never takes messages a running ``check_and_send`` owns.  A
modem on a local serial port is opened exclusively: while ``check_and_send --loop``
holds it, the request fails with a clear error rather than disturbing it.

``decode_answer`` turns what a gateway hands over (plain text, GSM 7-bit packed hex or
UCS2 hex) into text; the modem decodes its own ``+CUSD`` answers (``smss.modem.ussd``).
"""

from __future__ import annotations

import re
from typing import Optional

from smss.modem import ussd as codec
from smss.transports.base import PERMANENT, SendFailed, Transport

USSD_CODE = re.compile(r"^[0-9*#+]{1,64}$")
_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})+$")
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
        return codec.decode_ussd(compact, GSM7_DCS)
    if len(compact) < 8:
        return value
    as_ucs2 = codec.decode_ussd(compact, UCS2_DCS)
    if as_ucs2 != compact and _common(as_ucs2):
        return as_ucs2
    as_gsm7 = codec.decode_ussd(compact, GSM7_DCS)
    if as_gsm7 != compact and _common(as_gsm7):
        return as_gsm7
    return value


def check_code(code: str) -> str:
    value = code.strip()
    if not USSD_CODE.match(value):
        raise SendFailed(PERMANENT, f"not a USSD code: {code!r} (digits, * and #, e.g. *100#)")
    return value


def run(config, code: str, via: Optional[str] = None, timeout: float = 60.0) -> str:
    """Send the USSD ``code`` through the transport ``via`` and return the answer text.
    Raises SendFailed (its ``kind`` and ``reason`` say what went wrong)."""
    from smss import transports

    value = check_code(code)
    transport = transports.from_config(config, via, receive=False)
    if type(transport).ussd is Transport.ussd:
        transport.ussd(value, timeout)  # says it cannot, without opening a link for nothing
    transport.open()
    try:
        return transport.ussd(value, timeout)
    finally:
        transport.close()
