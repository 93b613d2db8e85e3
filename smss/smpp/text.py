"""Text in SMPP short messages: what a submit_sm carries, and what a deliver_sm says.

Owns the choice of data_coding for a text (0: the SMSC's default alphabet, GSM 03.38
unpacked one septet per octet unless configured as Latin-1 or ASCII; 8: UCS2 as
UTF-16BE), splitting a long text into parts with a concatenation UDH (esm_class UDHI),
SAR TLVs, or one message_payload, and the reverse: decoding an inbound short_message or
message_payload in any data_coding (GoIP sends UTF-16BE with 8), with its UDH or SAR
concatenation.  Pure functions, no I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

from smss.gsm import alphabet
from smss.smpp import pdu as p
from smss.smpp.pdu import Pdu

UDH, SAR, PAYLOAD = "udh", "sar", "payload"
LONG_MESSAGE_MODES = (UDH, SAR, PAYLOAD)
GSM, LATIN1, ASCII = "gsm", "latin1", "ascii"
DEFAULT_ALPHABETS = (GSM, LATIN1, ASCII)

ESM_UDHI = 0x40
ESM_TYPE_MASK = 0x3C
ESM_DELIVERY_RECEIPT = 0x04
ESM_INTERMEDIATE = 0x20
DC_DEFAULT, DC_IA5, DC_LATIN1, DC_UCS2 = 0x00, 0x01, 0x03, 0x08
MAX_PAYLOAD = 64000  # message_payload is a 16-bit TLV; stay well inside it


@dataclass(frozen=True)
class SubmitPart:
    """The message-dependent fields of one submit_sm."""

    esm_class: int
    data_coding: int
    short_message: bytes
    tlvs: Tuple[Tuple[int, bytes], ...] = ()


@dataclass(frozen=True)
class SubmitPlan:
    encoding: str  # "gsm7", "latin1", "ascii" (all data_coding 0) or "ucs2"
    sms: int  # SMS the text takes on the air (what the operator bills)
    submits: Tuple[SubmitPart, ...]


# each GSM 03.38 character as its septet(s), one per octet (an extension: escape + code)
_SEPTETS = {ord(ch): "".join(map(chr, alphabet.to_septets(ch))) for ch in alphabet.GSM7_CHARS}


def _gsm_octets(text: str) -> bytes:
    """``bytes(alphabet.to_septets(text))`` in one C-level pass (the text is GSM-7)."""
    return text.translate(_SEPTETS).encode("latin-1")


def _gsm_cost(ch: str) -> int:
    return len(_SEPTETS[ord(ch)])


def _utf16_cost(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def _split(text: str, cost: Callable[[str], int], single: int, per_part: int) -> List[str]:
    costs = [cost(ch) for ch in text]
    if sum(costs) <= single:
        return [text]
    parts, start, used = [], 0, 0
    for index, units in enumerate(costs):
        if used + units > per_part:  # an escape or surrogate pair never straddles parts
            parts.append(text[start:index])
            start, used = index, 0
        used += units
    parts.append(text[start:])
    return parts


def _fits(text: str, default_alphabet: str) -> bool:
    if not alphabet.is_gsm7(text):
        return False
    if default_alphabet == GSM:
        return True
    codec = "latin-1" if default_alphabet == LATIN1 else "ascii"
    try:
        text.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


def _octets(text: str, encoding: str) -> bytes:
    if encoding == "gsm7":
        return _gsm_octets(text)
    if encoding == "ucs2":
        return text.encode("utf-16-be")
    return text.encode("latin-1" if encoding == LATIN1 else "ascii")


def plan_submit(text: str, *, long_messages: str = UDH, default_alphabet: str = GSM,
                reference: int = 0, max_parts: int = 255) -> SubmitPlan:
    """How ``text`` goes out.  Data coding 0 when every character is in GSM 03.38 (and in
    the SMSC's default alphabet if that is Latin-1 or ASCII), else UCS2 (8).  A single SMS
    holds 160 septets / 70 UTF-16 units; a part of a long one 153 / 67.  ``reference`` is
    the concatenation reference (8 bits used in a UDH, 16 in SAR).  Raises ValueError for
    a text longer than ``max_parts`` parts (or than message_payload holds)."""
    if long_messages not in LONG_MESSAGE_MODES:
        raise ValueError(f"long_messages must be one of {LONG_MESSAGE_MODES}")
    if default_alphabet not in DEFAULT_ALPHABETS:
        raise ValueError(f"default_alphabet must be one of {DEFAULT_ALPHABETS}")
    if _fits(text, default_alphabet):
        encoding = "gsm7" if default_alphabet == GSM else default_alphabet
        coding = DC_DEFAULT
        if encoding == "gsm7":  # the common case, one SMS: no per-character work
            data = _gsm_octets(text)
            if len(data) <= alphabet.SINGLE_SEPTETS:
                return SubmitPlan(encoding, 1, (SubmitPart(0, coding, data),))
        pieces = _split(text, _gsm_cost, alphabet.SINGLE_SEPTETS, alphabet.PART_SEPTETS)
    else:
        encoding, coding = "ucs2", DC_UCS2
        pieces = _split(text, _utf16_cost, alphabet.SINGLE_UNITS, alphabet.PART_UNITS)
    count = len(pieces)
    if count > max_parts:
        raise ValueError(f"text needs {count} SMS parts, at most {max_parts} allowed")
    if count == 1:
        return SubmitPlan(encoding, 1, (SubmitPart(0, coding, _octets(text, encoding)),))
    if long_messages == PAYLOAD:
        data = _octets(text, encoding)
        if len(data) > MAX_PAYLOAD:
            raise ValueError(f"text of {len(data)} octets is too long for message_payload")
        return SubmitPlan(encoding, count,
                          (SubmitPart(0, coding, b"", ((p.TLV_MESSAGE_PAYLOAD, data),)),))
    submits = []
    for number, piece in enumerate(pieces, 1):
        data = _octets(piece, encoding)
        if long_messages == UDH:
            udh = bytes((5, 0x00, 3, reference & 0xFF, count, number))
            submits.append(SubmitPart(ESM_UDHI, coding, udh + data))
        else:
            tlvs = ((p.TLV_SAR_MSG_REF_NUM, struct.pack(">H", reference & 0xFFFF)),
                    (p.TLV_SAR_TOTAL_SEGMENTS, bytes((count,))),
                    (p.TLV_SAR_SEGMENT_SEQNUM, bytes((number,))))
            submits.append(SubmitPart(0, coding, data, tlvs))
    return SubmitPlan(encoding, count, tuple(submits))


# -- inbound

@dataclass(frozen=True)
class Coding:
    alphabet: str  # "gsm", "ascii", "latin1", "iso-8859-5", "iso-8859-8", "ucs2", "binary"
    message_class: Optional[int] = None


def coding_of(data_coding: int, default_alphabet: str = GSM) -> Coding:
    """What ``data_coding`` means: SMPP's own values 0-0x0F, else the GSM 03.38 groups."""
    dc = data_coding
    if dc <= 0x0F:
        return Coding({0x00: default_alphabet, 0x01: ASCII, 0x03: LATIN1, 0x06: "iso-8859-5",
                       0x07: "iso-8859-8", 0x08: "ucs2"}.get(dc, "binary"))
    if dc & 0xC0 in (0x00, 0x40):  # general data coding (0x40: automatic deletion)
        if dc & 0x20:
            return Coding("binary")  # compressed
        message_class = dc & 0x03 if dc & 0x10 else None
        return Coding(("gsm", "binary", "ucs2", "binary")[(dc >> 2) & 0x03], message_class)
    if 0xC0 <= dc <= 0xDF:
        return Coding(GSM)  # message waiting indication, GSM 7-bit
    if 0xE0 <= dc <= 0xEF:
        return Coding("ucs2")
    if dc >= 0xF0:
        return Coding("binary" if dc & 0x04 else GSM, dc & 0x03)
    return Coding("binary")


def decode_octets(data: bytes, coding: Coding) -> Tuple[str, Optional[str]]:
    """(text, problem) of user data without its header; problem is None when clean."""
    kind = coding.alphabet
    if kind == GSM:
        if all(octet < 0x80 for octet in data):
            return alphabet.from_septets(data), None
        return data.decode("latin-1"), "data_coding 0 carried octets above 0x7F: read as Latin-1"
    if kind == "ucs2":
        problem = None
        if len(data) % 2:
            data, problem = data[:-1], "UCS2 text with an odd number of octets"
        text = data.decode("utf-16-be", errors="replace")
        if "\ufffd" in text and problem is None:
            problem = "UCS2 text with an unpaired surrogate"
        return text, problem
    if kind == ASCII:
        text = data.decode("ascii", errors="replace")
        return text, ("IA5 text with octets above 0x7F" if "\ufffd" in text else None)
    if kind in (LATIN1, "iso-8859-5", "iso-8859-8"):
        return data.decode("latin-1" if kind == LATIN1 else kind), None
    return "", f"binary data ({len(data)} octets)"


@dataclass(frozen=True)
class Concat:
    reference: int
    total: int
    sequence: int


def split_udh(data: bytes) -> Tuple[Optional[Concat], bytes, Optional[str]]:
    """(concatenation, user data after the header, problem) of UDHI user data."""
    if not data:
        return None, b"", "UDHI set but no user data header"
    length = data[0]
    if length + 1 > len(data):
        return None, data, "user data header longer than the message"
    header, rest = data[1:length + 1], data[length + 1:]
    concat = None
    offset = 0
    while offset + 2 <= len(header):
        iei, size = header[offset], header[offset + 1]
        value = header[offset + 2:offset + 2 + size]
        if len(value) < size:
            return None, rest, "truncated information element in the user data header"
        if iei == 0x00 and size == 3:
            concat = Concat(value[0], value[1], value[2])
        elif iei == 0x08 and size == 4:
            concat = Concat((value[0] << 8) | value[1], value[2], value[3])
        offset += 2 + size
    if concat is not None and not (concat.total and 1 <= concat.sequence <= concat.total):
        return None, rest, f"concatenation part {concat.sequence} of {concat.total}"
    return concat, rest, None


def address(ton: int, digits: str) -> str:
    """A phone number as smss stores it: ``+`` in front of an international one."""
    if ton == 1 and digits and not digits.startswith("+"):
        return "+" + digits
    return digits


@dataclass(frozen=True)
class Segment:
    """What one deliver_sm / data_sm carries as a short message (one part of an SMS)."""

    sender: str
    recipient: str
    coding: Coding
    user_data: bytes  # without the header
    concat: Optional[Concat]
    problem: Optional[str]


def segment(pdu: Pdu, default_alphabet: str = GSM) -> Segment:
    data = pdu.get("short_message") if pdu.command_id == p.DELIVER_SM else b""
    payload = pdu.tlv(p.TLV_MESSAGE_PAYLOAD)
    if not data and payload is not None:
        data = payload
    esm_class = int(pdu.get("esm_class"))
    concat, problem = None, None
    if esm_class & ESM_UDHI:
        concat, data, problem = split_udh(bytes(data))
    if concat is None:
        total = pdu.tlv_int(p.TLV_SAR_TOTAL_SEGMENTS)
        number = pdu.tlv_int(p.TLV_SAR_SEGMENT_SEQNUM)
        reference = pdu.tlv_int(p.TLV_SAR_MSG_REF_NUM)
        if total and number and reference is not None and 1 <= number <= total and total > 1:
            concat = Concat(reference, total, number)
    return Segment(
        sender=address(int(pdu.get("source_addr_ton")), str(pdu.get("source_addr"))),
        recipient=address(int(pdu.get("dest_addr_ton")), str(pdu.get("destination_addr"))),
        coding=coding_of(int(pdu.get("data_coding")), default_alphabet),
        user_data=bytes(data), concat=concat, problem=problem,
    )


def join_text(parts: Sequence[Segment]) -> Tuple[str, Optional[str]]:
    """The text of parts in order.  Parts in the same coding are joined as octets before
    decoding, so a surrogate pair or escape split between two parts still reads right."""
    problems: List[str] = []
    runs: List[Tuple[Coding, bytearray]] = []
    for part in parts:
        if part.problem:
            problems.append(part.problem)
        if runs and runs[-1][0] == part.coding:
            runs[-1][1].extend(part.user_data)
        else:
            runs.append((part.coding, bytearray(part.user_data)))
    texts = []
    for coding, data in runs:
        text, problem = decode_octets(bytes(data), coding)
        texts.append(text)
        if problem:
            problems.append(problem)
    return "".join(texts), ("; ".join(dict.fromkeys(problems)) or None)
