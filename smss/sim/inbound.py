"""Messages the network brings to the simulated modem, pure.

Owns: building the SMS-DELIVER PDUs of an injected message (split into
concatenated parts when long, with a forced encoding, delivered out of order or
with parts missing), building SMS-STATUS-REPORTs, and the unsolicited lines
that carry them to the terminal when AT+CNMI routes them directly
(``+CMT`` / ``+CDS``) in PDU or text mode.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

from smss.gsm import alphabet
from smss.gsm import pdu as pducodec
from smss.sim import textmode
from smss.sim.storage import tpdu_length

if TYPE_CHECKING:
    from smss.sim.settings import AtSettings

_LIMITS = {  # (single, per part with an 8-bit concatenation IE) in units of the encoding
    "ucs2": (70, 67),
    "8bit": (140, 134),
}


def _chunks(text: str, encoding: str, ref_bits: int) -> List[str]:
    single, per_part = _LIMITS[encoding]
    if ref_bits == 16:
        per_part -= 1  # the 16-bit IE takes one octet more
    if encoding == "ucs2":
        cost = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    else:
        cost = [1] * len(text)
    if sum(cost) <= single:
        return [text]
    parts, start, used = [], 0, 0
    for i, c in enumerate(cost):
        if used + c > per_part:
            parts.append(text[start:i])
            start, used = i, 0
        used += c
    parts.append(text[start:])
    return parts


def build(
    sender: str,
    text: str,
    *,
    timestamp: datetime,
    concat_reference: int,
    encoding: Optional[str] = None,
    smsc: str = "",
    order: Optional[Sequence[int]] = None,
    parts: Optional[Sequence[int]] = None,
) -> List[Tuple[int, str]]:
    """(part number, DELIVER PDU hex) in delivery order.  ``encoding`` None picks GSM-7
    or UCS2 like a phone; "gsm7", "ucs2" or "8bit" forces one.  ``order`` lists part
    numbers (1-based) in the order they arrive; ``parts`` keeps only those part numbers
    (the others never arrive)."""
    ref_bits = 8 if concat_reference <= 0xFF else 16
    if encoding is None or (encoding == "gsm7" and alphabet.is_gsm7(text)):
        pdus = pducodec.deliver_parts(
            sender, text, timestamp=timestamp, concat_reference=concat_reference, smsc=smsc
        )
    else:
        if encoding == "gsm7":
            raise ValueError("text has characters outside the GSM 7-bit alphabet")
        if encoding not in _LIMITS:
            raise ValueError(f"encoding must be gsm7, ucs2 or 8bit, not {encoding!r}")
        chunks = _chunks(text, encoding, ref_bits)
        total = len(chunks)
        pdus = [
            pducodec.encode_deliver(
                sender, chunk, timestamp=timestamp, encoding=encoding, smsc=smsc,
                concat=pducodec.Concat(concat_reference, total, i, ref_bits) if total > 1 else None,
            )
            for i, chunk in enumerate(chunks, 1)
        ]
    numbered = list(enumerate(pdus, 1))
    if order is not None:
        by_number = dict(numbered)
        if sorted(order) != sorted(set(order)) or not set(order) <= set(by_number):
            raise ValueError(f"order must list distinct part numbers 1..{len(pdus)}")
        numbered = [(n, by_number[n]) for n in order]
    if parts is not None:
        keep = set(parts)
        numbered = [(n, p) for n, p in numbered if n in keep]
    return numbered


def status_report_pdu(
    mr: int, number: str, status: int, submitted: datetime, discharged: datetime, smsc: str
) -> str:
    return pducodec.encode_status_report(
        mr, number, status=status, submitted=submitted, discharged=discharged, smsc=smsc
    )


def is_status_report(pdu_hex: str) -> bool:
    return textmode.first_octet(pdu_hex) & 0x03 == 0x02


def message_class(pdu_hex: str) -> Optional[int]:
    try:
        msg = pducodec.decode_pdu(pdu_hex)
    except pducodec.PduError:
        return None
    return getattr(msg, "message_class", None)


def cmt_lines(settings: "AtSettings", pdu_hex: str) -> Tuple[str, ...]:
    """The +CMT indication of a new SMS as the modem's current settings write it."""
    if settings.cmgf == 1:
        return textmode.cmt_entry(pdu_hex, settings.cscs, settings.csdh)
    return (f"+CMT: ,{tpdu_length(pdu_hex)}", pdu_hex)


def cds_lines(settings: "AtSettings", pdu_hex: str, with_smsc: bool) -> Tuple[str, ...]:
    """The +CDS indication of a status report; ``with_smsc``: keep the SMSC address
    in front of the TPDU, as some modems do."""
    if settings.cmgf == 1:
        return textmode.cds_entry(pdu_hex, settings.cscs)
    length = tpdu_length(pdu_hex)
    if not with_smsc:
        pdu_hex = pdu_hex[2 + 2 * int(pdu_hex[0:2], 16) :]
    return (f"+CDS: {length}", pdu_hex)
