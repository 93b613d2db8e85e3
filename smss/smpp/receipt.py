"""Delivery receipts and message ids: reading a receipt, and making two ids comparable.

Owns the receipt text of SMPP 3.4 appendix B (``id:… sub:… dlvrd:… submit date:… done
date:… stat:DELIVRD err:… text:…``, read leniently: any order, any case, missing
fields, ``dlvr:`` and ``submit_date:`` spellings), the receipted_message_id and
message_state TLVs that take precedence over it, what each state means for the
dispatcher (delivered, failed, still trying), and the normal form of a message id.
SMSCs disagree on ids: the same message may be ``0A1B2C`` in submit_sm_resp and
``0a1b2c``, ``A1B2C`` or its decimal value ``662316`` in the receipt.  ``normalise``
removes case and leading zeros; ``convert`` reads the other base.
Pure functions, no I/O.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Dict, Optional

from smss.smpp import pdu as p
from smss.smpp.pdu import Pdu

# message_state values (SMPP 3.4 section 5.2.28; SKIPPED is SMPP 5.0)
ENROUTE, DELIVERED, EXPIRED, DELETED, UNDELIVERABLE, ACCEPTED, UNKNOWN, REJECTED, SKIPPED = (
    range(1, 10))
STATES_BY_STAT = {
    "ENROUTE": ENROUTE, "DELIVRD": DELIVERED, "EXPIRED": EXPIRED, "DELETED": DELETED,
    "UNDELIV": UNDELIVERABLE, "ACCEPTD": ACCEPTED, "UNKNOWN": UNKNOWN, "REJECTD": REJECTED,
    "SKIPPED": SKIPPED,
    # spellings seen in the wild
    "DELIVERED": DELIVERED, "UNDELIVERABLE": UNDELIVERABLE, "REJECTED": REJECTED,
    "ACCEPTED": ACCEPTED,
}
FAILED_STATES = frozenset((EXPIRED, DELETED, UNDELIVERABLE, UNKNOWN, REJECTED, SKIPPED))

_FIELD = re.compile(
    r"(?i)\b(id|sub|dlvrd?|submit[ _]date|done[ _]date|stat|err)\s*:\s*(\S*)")
_SPELLINGS = {"dlvr": "dlvrd", "submit_date": "submit date", "done_date": "done date"}
_HEX = frozenset(string.hexdigits)


def parse_text(text: str) -> Dict[str, str]:
    """The fields of a receipt text, keys lower case and in the spelling of SMPP 3.4
    Appendix B (``dlvr:`` is read as ``dlvrd``, ``submit_date:`` as ``submit date``); the
    ``text:`` tail is ignored."""
    head = re.split(r"(?i)\btext\s*:", text, maxsplit=1)[0]
    fields: Dict[str, str] = {}
    for key, value in _FIELD.findall(head):
        name = key.lower()
        fields.setdefault(_SPELLINGS.get(name, name), value)
    return fields


@dataclass(frozen=True)
class Receipt:
    message_id: str  # as the SMSC wrote it: receipted_message_id, else the text's id
    from_tlv: bool  # message_id came from receipted_message_id
    state: int  # message_state (1..9); 0 when neither the TLV nor stat: says
    stat: str  # the text's stat: field, or the state's name
    error: str  # the text's err: field, or network_error_code as hex
    recipient: str  # the handset the message went to (the receipt's source_addr)

    @property
    def delivered(self) -> Optional[bool]:
        """True delivered, False finally failed, None still trying (or unknown)."""
        if self.state == DELIVERED:
            return True
        if self.state in FAILED_STATES:
            return False
        return None


def parse(pdu: Pdu, text: str) -> Optional[Receipt]:
    """The receipt in a deliver_sm / data_sm whose esm_class marks a receipt; None when it
    names no message id at all."""
    fields = parse_text(text)
    tlv_id = pdu.tlv_cstring(p.TLV_RECEIPTED_MESSAGE_ID)
    text_id = fields.get("id")
    message_id = (tlv_id or "").strip() or (text_id or "").strip()
    if not message_id:
        return None
    state = pdu.tlv_int(p.TLV_MESSAGE_STATE)
    stat = fields.get("stat", "").upper()
    if state is None or not 1 <= state <= 9:
        state = STATES_BY_STAT.get(stat, 0)
    if not stat:
        names = {v: k for k, v in STATES_BY_STAT.items() if len(k) == 7}
        stat = names.get(state, "")
    error = fields.get("err", "")
    network_error = pdu.tlv(p.TLV_NETWORK_ERROR_CODE)
    if not error and network_error:
        error = network_error.hex()
    ton = int(pdu.get("source_addr_ton"))
    recipient = str(pdu.get("source_addr"))
    if ton == 1 and recipient and not recipient.startswith("+"):
        recipient = "+" + recipient
    return Receipt(message_id, bool((tlv_id or "").strip()), state, stat, error, recipient)


def normalise(message_id: str) -> str:
    """The comparable form of an id: a hexadecimal or decimal one in lower case without
    leading zeros (``000A1B`` -> ``a1b``, ``0042`` -> ``42``); any other id as it is."""
    value = message_id.strip()
    if value and _HEX.issuperset(value):
        return value.lower().lstrip("0") or "0"
    return value


def convert(message_id: str, written_in: str) -> Optional[str]:
    """The id in the other base, normalised: ``written_in="decimal"`` reads a decimal id
    and gives its hexadecimal form (for an SMSC that answers submit_sm with hex ids and
    writes receipts in decimal), ``"hex"`` the reverse.  None when it is not a number in
    that base."""
    value = message_id.strip()
    try:
        if written_in == "decimal":
            if not value.isascii() or not value.isdigit():
                return None
            return format(int(value, 10), "x")
        if written_in == "hex":
            if not value or not all(ch in _HEX for ch in value):
                return None
            return str(int(value, 16))
    except ValueError:
        return None
    raise ValueError(f"written_in must be 'decimal' or 'hex', not {written_in!r}")
