"""From stored deliver_sm / data_sm PDUs to whole inbound messages and receipts.

Owns telling receipts (esm_class 0x04 delivery receipt, 0x20 intermediate notification)
from mobile-originated messages, reassembling multipart messages (UDH 8- or 16-bit
reference, or SAR TLVs; parts in any order, repeats tolerated), giving up on a message
whose parts stopped coming after ``multipart_timeout`` (stored with what arrived), and
keeping what cannot be read (binary data, a broken PDU) as raw hex rather than losing
it.  Pure: entries in, messages out; the spool and the clock belong to the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Dict, List, Sequence, Tuple

from smss.smpp import pdu as p
from smss.smpp import receipt as receipts
from smss.smpp import text as texts
from smss.smpp.spool import Entry
from smss.transports.base import InboundMessage

RECEIPT_TYPES = (texts.ESM_DELIVERY_RECEIPT, texts.ESM_INTERMEDIATE)


def is_receipt(pdu: p.Pdu) -> bool:
    return int(pdu.get("esm_class")) & texts.ESM_TYPE_MASK in RECEIPT_TYPES


@dataclass(frozen=True)
class Read:
    messages: List[InboundMessage]
    receipts: List[Tuple[Entry, receipts.Receipt]]
    waiting: int  # parts kept back for their siblings


def _raw(entry: Entry, error: str) -> InboundMessage:
    return InboundMessage(handles=(entry.handle,), phone="", text="", raw_pdu=entry.frame.hex(),
                          error=error)


def read(entries: Sequence[Entry], *, now: datetime, multipart_timeout: float,
         default_alphabet: str = texts.GSM) -> Read:
    messages: List[InboundMessage] = []
    found: List[Tuple[Entry, receipts.Receipt]] = []
    groups: Dict[tuple, List[Tuple[Entry, texts.Segment]]] = {}
    for entry in entries:
        try:
            pdu = p.decode(entry.frame)
        except p.PduError as exc:
            messages.append(_raw(entry, f"undecodable PDU: {exc}"))
            continue
        segment = texts.segment(pdu, default_alphabet)
        if is_receipt(pdu):
            content, _ = texts.join_text([segment])
            parsed = receipts.parse(pdu, content)
            if parsed is not None:
                found.append((entry, parsed))
                continue
            messages.append(InboundMessage(
                handles=(entry.handle,), phone=segment.sender, text=content,
                raw_pdu=entry.frame.hex(), error="delivery receipt without a message id"))
            continue
        if segment.coding.alphabet == "binary":
            messages.append(_raw(entry, segment.problem or f"binary data (data_coding "
                                 f"0x{int(pdu.get('data_coding')):02X})"))
            continue
        if segment.concat is None:
            content, problem = texts.join_text([segment])
            messages.append(InboundMessage(
                handles=(entry.handle,), phone=segment.sender, text=content, error=problem,
                raw_pdu=entry.frame.hex() if problem else None,
                message_class=segment.coding.message_class))
            continue
        concat = segment.concat
        key = (segment.sender, segment.recipient, concat.reference, concat.total)
        groups.setdefault(key, []).append((entry, segment))
    waiting = 0
    for (sender, _, reference, total), parts in groups.items():
        by_number: Dict[int, Tuple[Entry, texts.Segment]] = {}
        for entry, segment in parts:
            assert segment.concat is not None
            by_number.setdefault(segment.concat.sequence, (entry, segment))  # a repeat: first wins
        handles = tuple(entry.handle for entry, _ in parts)
        ordered = [by_number[number] for number in sorted(by_number)]
        first = ordered[0][1]
        if len(by_number) == total:
            content, problem = texts.join_text([segment for _, segment in ordered])
            messages.append(InboundMessage(
                handles=handles, phone=sender, text=content, parts=total, error=problem,
                message_class=first.coding.message_class, references=(reference,)))
            continue
        oldest = min(entry.received_at for entry, _ in parts)
        if now - oldest < timedelta(seconds=multipart_timeout):
            waiting += len(parts)
            continue
        pieces = [texts.join_text([segment])[0] for _, segment in ordered]
        messages.append(InboundMessage(
            handles=handles, phone=sender, text=" [...] ".join(pieces), parts=len(by_number),
            error=f"incomplete: {len(by_number)} of {total} parts arrived",
            message_class=first.coding.message_class, references=(reference,)))
    return Read(messages, found, waiting)

