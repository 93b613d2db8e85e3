"""SMS PDU codec (3GPP TS 23.040): SMS-SUBMIT, SMS-DELIVER and SMS-STATUS-REPORT.

Owns the octet layout of the TPDUs and of the SMSC address field in front of them, as the
hex strings AT+CMGS / AT+CMGL / +CMT / +CDS carry in PDU mode: addresses (international,
national, alphanumeric), time stamps with time zone, relative validity period, data coding
scheme, the user data header with the concatenation IE (8- and 16-bit reference) and the
septet fill bits after it. Encoders serve the dispatcher (SUBMIT) and the modem simulator
(DELIVER, STATUS-REPORT); ``decode_pdu`` reads all three. Pure functions, no I/O; every
decoding failure is a ``PduError`` saying what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Union

from . import alphabet
from .alphabet import pack_septets, plan_parts, to_septets, unpack_septets

__all__ = [
    "PduError", "Concat", "SubmitPdu", "Deliver", "Submit", "StatusReport",
    "encode_submit", "build_submits", "decode_pdu", "decode_tpdu",
    "encode_deliver", "deliver_parts", "encode_status_report",
    "validity_to_minutes", "minutes_to_validity",
]


class PduError(ValueError):
    """A PDU that cannot be decoded; the message says what is wrong and where."""


@dataclass(frozen=True)
class Concat:
    """Concatenation information element: part ``sequence`` (1-based) of ``total``."""

    reference: int
    total: int
    sequence: int
    ref_bits: int = 8  # 8 (IEI 0x00) or 16 (IEI 0x08)


@dataclass(frozen=True)
class SubmitPdu:
    hex: str  # full PDU including the SMSC field
    tpdu_length: int  # octets after the SMSC field: the <length> of AT+CMGS=<length>


@dataclass(frozen=True)
class Deliver:
    """SMS-DELIVER (mobile terminated)."""

    smsc: str
    sender: str  # "+420..." international, digits otherwise, the name for alphanumeric
    sender_type: str  # "international" | "national" | "unknown" | "alphanumeric" | ...
    timestamp: datetime  # TP-SCTS, timezone-aware
    text: str
    encoding: str  # "gsm7" | "ucs2" | "8bit" (8-bit data decoded as latin-1)
    concat: Concat | None
    pid: int
    dcs: int
    message_class: int | None
    status_report_indication: bool
    # A careless sender may split a UTF-16 surrogate pair (an emoji) between two parts. The
    # text shows such a half as U+FFFD (text is always valid Unicode); the halves themselves,
    # (low half at the start, high half at the end), let reassembly put the pair together.
    edge_surrogates: tuple[str, str] = ("", "")


@dataclass(frozen=True)
class Submit:
    """SMS-SUBMIT (mobile originated), as a modem receives it in AT+CMGS."""

    smsc: str
    number: str
    text: str
    encoding: str
    reference: int
    concat: Concat | None
    status_report: bool
    validity_minutes: int | None


@dataclass(frozen=True)
class StatusReport:
    """SMS-STATUS-REPORT for the SUBMIT whose TP-MR was ``reference``."""

    smsc: str
    reference: int
    recipient: str
    submitted: datetime
    discharged: datetime
    status: int  # TP-ST

    @property
    def delivered(self) -> bool:
        return 0x00 <= self.status <= 0x1F

    @property
    def final(self) -> bool:
        """False while the SC is still trying (temporary error, 0x20..0x3F)."""
        return not (0x20 <= self.status < 0x40)


Decoded = Union[Deliver, Submit, StatusReport]

# --- first octet bits ----------------------------------------------------------------
_MTI_DELIVER, _MTI_SUBMIT, _MTI_STATUS = 0, 1, 2
_MMS = 0x04  # DELIVER / STATUS-REPORT: set = no more messages waiting
_VPF_RELATIVE = 0x10
_SRR = 0x20  # SUBMIT: status report request; DELIVER: status report indication
_UDHI = 0x40

_TON_NAMES = {
    0: "unknown", 1: "international", 2: "national", 3: "network",
    4: "subscriber", 5: "alphanumeric", 6: "abbreviated", 7: "reserved",
}
_BCD_DIGITS = "0123456789*#abc"
_NUMBER_RE = re.compile(r"\+?[0-9*#]{1,20}")

# =====================================================================================
# Encoding
# =====================================================================================


def _bcd(digits: str) -> bytes:
    """Semi-octets, low nibble first, padded with F."""
    if len(digits) % 2:
        digits += "F"
    return bytes.fromhex("".join(digits[i + 1] + digits[i] for i in range(0, len(digits), 2))
                         .replace("*", "A").replace("#", "B"))


def _address(number: str, *, allow_alpha: bool = False) -> tuple[int, bytes]:
    """(TOA, value octets) of a phone number, or of an alphanumeric name if allowed."""
    if _NUMBER_RE.fullmatch(number):
        if number.startswith("+"):
            return 0x91, _bcd(number[1:])
        return 0x81, _bcd(number)
    if allow_alpha and number and alphabet.is_gsm7(number) and len(number) <= 11:
        return 0xD0, pack_septets(to_septets(number))
    raise ValueError(
        f"not a phone number: {number!r} (digits with an optional leading +, at most 20)"
    )


def _tp_address(number: str, *, allow_alpha: bool = False) -> bytes:
    """TP-DA / TP-OA / TP-RA: length in useful semi-octets, TOA, value."""
    toa, value = _address(number, allow_alpha=allow_alpha)
    if toa == 0xD0:
        semi = (len(to_septets(number)) * 7 + 3) // 4
    else:
        semi = len(number.lstrip("+"))
    return bytes([semi, toa]) + value


def _smsc_field(smsc: str | None) -> bytes:
    """RP SMSC address: length in octets (TOA included), TOA, value; '00' = the SIM's SMSC."""
    if not smsc:
        return b"\x00"
    toa, value = _address(smsc)
    return bytes([len(value) + 1, toa]) + value


def minutes_to_validity(minutes: int) -> int:
    """Relative TP-VP octet for at least ``minutes`` (the next longer step; 63 weeks at most)."""
    if minutes <= 0:
        raise ValueError(f"validity must be a positive number of minutes, not {minutes}")
    if minutes <= 720:  # 5-minute steps up to 12 hours
        return (minutes + 4) // 5 - 1
    if minutes <= 1440:  # 30-minute steps up to 24 hours
        return 143 + (minutes - 720 + 29) // 30
    days = (minutes + 1439) // 1440
    if days <= 30:
        return 166 + days
    weeks = (days + 6) // 7
    return 192 + min(weeks, 63)


def validity_to_minutes(vp: int) -> int:
    """Minutes meant by a relative TP-VP octet."""
    if vp <= 143:
        return (vp + 1) * 5
    if vp <= 167:
        return 720 + (vp - 143) * 30
    if vp <= 196:
        return (vp - 166) * 1440
    return (vp - 192) * 7 * 1440


def _timestamp(ts: datetime) -> bytes:
    """TP-SCTS / TP-DT: YY MM DD hh mm ss TZ as swapped semi-octets. A naive datetime is
    taken as UTC; an offset that is not a whole quarter hour is converted to UTC."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        ts = ts.replace(tzinfo=timezone.utc)
    offset = ts.utcoffset()
    assert offset is not None
    if offset % timedelta(minutes=15) or abs(offset) > timedelta(hours=19, minutes=45):
        # not expressible in TP-SCTS (quarter hours, at most 79 of them)
        ts = ts.astimezone(timezone.utc)
        offset = timedelta(0)
    if not 1990 <= ts.year <= 2089:
        raise ValueError(f"time stamp year {ts.year} is outside 1990..2089")
    quarters = int(offset.total_seconds()) // 900
    tz = abs(quarters)
    digits = f"{ts.year % 100:02d}{ts.month:02d}{ts.day:02d}{ts.hour:02d}{ts.minute:02d}"
    digits += f"{ts.second:02d}"
    out = bytearray(_bcd(digits))
    tz_octet = (tz % 10) << 4 | (tz // 10)
    if quarters < 0:
        tz_octet |= 0x08
    out.append(tz_octet)
    return bytes(out)


def _udh(concat: Concat | None) -> bytes:
    """User data header with the concatenation IE, including the UDHL octet; b'' if none."""
    if concat is None:
        return b""
    if not 1 <= concat.total <= 255 or not 1 <= concat.sequence <= concat.total:
        raise ValueError(f"bad concatenation: part {concat.sequence} of {concat.total}")
    if concat.ref_bits == 8:
        if not 0 <= concat.reference <= 0xFF:
            raise ValueError(f"8-bit concatenation reference {concat.reference} is not 0..255")
        ie = bytes([0x00, 3, concat.reference, concat.total, concat.sequence])
    elif concat.ref_bits == 16:
        if not 0 <= concat.reference <= 0xFFFF:
            raise ValueError(f"16-bit concatenation reference {concat.reference} is not 0..65535")
        ie = bytes([0x08, 4]) + concat.reference.to_bytes(2, "big") + bytes(
            [concat.total, concat.sequence]
        )
    else:
        raise ValueError(f"concatenation ref_bits must be 8 or 16, not {concat.ref_bits}")
    return bytes([len(ie)]) + ie


def _user_data(text: str, encoding: str, concat: Concat | None) -> tuple[int, bytes]:
    """(TP-DCS alphabet, TP-UDL + TP-UD octets) for one part."""
    udh = _udh(concat)
    if encoding == "gsm7":
        septets = to_septets(text)
        fill = (7 - len(udh) * 8 % 7) % 7
        udh_septets = (len(udh) * 8 + fill) // 7
        udl = udh_septets + len(septets)
        if udl > 160:
            raise ValueError(
                f"text needs {len(septets)} septets, one SMS holds {160 - udh_septets}"
            )
        return 0x00, bytes([udl]) + udh + pack_septets(septets, fill)
    if encoding == "ucs2":
        data = text.encode("utf-16-be", "surrogatepass")
        dcs = 0x08
    elif encoding == "8bit":
        try:
            data = text.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise ValueError(f"8-bit user data takes latin-1 text only: {exc}") from None
        dcs = 0x04
    else:
        raise ValueError(f"encoding must be 'gsm7', 'ucs2' or '8bit', not {encoding!r}")
    if len(udh) + len(data) > 140:
        raise ValueError(
            f"text needs {len(data)} octets in {encoding}, one SMS holds {140 - len(udh)}"
        )
    return dcs, bytes([len(udh) + len(data)]) + udh + data


def encode_submit(number: str, text: str, *, encoding: str, reference: int = 0,
                  concat: Concat | None = None, status_report: bool = False,
                  validity_minutes: int | None = None, smsc: str | None = None) -> SubmitPdu:
    """One SMS-SUBMIT. ``number`` "+420..." is international, plain digits unknown TON;
    ``reference`` is TP-MR (0..255). ValueError if the text does not fit or cannot be
    written in ``encoding``."""
    if not 0 <= reference <= 255:
        raise ValueError(f"message reference {reference} is not 0..255")
    first = _MTI_SUBMIT
    if status_report:
        first |= _SRR
    if concat is not None:
        first |= _UDHI
    vp = b""
    if validity_minutes is not None:
        first |= _VPF_RELATIVE
        vp = bytes([minutes_to_validity(validity_minutes)])
    dcs, ud = _user_data(text, encoding, concat)
    tpdu = bytes([first, reference]) + _tp_address(number) + bytes([0x00, dcs]) + vp + ud
    return SubmitPdu((_smsc_field(smsc) + tpdu).hex().upper(), len(tpdu))


def _check_parts(plan: alphabet.PartPlan) -> None:
    if plan.count > alphabet.MAX_PARTS:
        raise ValueError(
            f"text needs {plan.count} SMS parts, at most {alphabet.MAX_PARTS} are possible"
        )


def _concat_ref_bits(reference: int) -> int:
    if 0 <= reference <= 0xFF:
        return 8
    if reference <= 0xFFFF:
        return 16
    raise ValueError(f"concatenation reference {reference} is not 0..65535")


def build_submits(number: str, text: str, *, concat_reference: int, status_report: bool = False,
                  validity_minutes: int | None = None, smsc: str | None = None,
                  transliterate: bool = False) -> list[SubmitPdu]:
    """The SUBMIT PDUs for a whole text: one, or a concatenated series sharing
    ``concat_reference`` (8-bit IE for 0..255, 16-bit IE up to 65535, one character less
    per part). TP-MR is 0 (the modem
    assigns it). ``transliterate`` first turns Czech/Slovak diacritics into plain letters."""
    if transliterate:
        text = alphabet.transliterate(text)
    bits = _concat_ref_bits(concat_reference)
    plan = plan_parts(text, ref_bits=bits)
    _check_parts(plan)
    if plan.count == 1:
        return [encode_submit(number, plan.parts[0], encoding=plan.encoding,
                              status_report=status_report, validity_minutes=validity_minutes,
                              smsc=smsc)]
    return [
        encode_submit(number, part, encoding=plan.encoding,
                      concat=Concat(concat_reference, plan.count, i, bits),
                      status_report=status_report, validity_minutes=validity_minutes, smsc=smsc)
        for i, part in enumerate(plan.parts, 1)
    ]


def encode_deliver(sender: str, text: str, *, timestamp: datetime, encoding: str | None = None,
                   concat: Concat | None = None, smsc: str = "") -> str:
    """One SMS-DELIVER as hex with the SMSC field. ``sender`` may be a number or an
    alphanumeric name (up to 11 GSM-7 characters). ``encoding`` None picks gsm7 or ucs2."""
    if encoding is None:
        encoding = "gsm7" if alphabet.is_gsm7(text) else "ucs2"
    first = _MTI_DELIVER | _MMS
    if concat is not None:
        first |= _UDHI
    dcs, ud = _user_data(text, encoding, concat)
    tpdu = (bytes([first]) + _tp_address(sender, allow_alpha=True) + bytes([0x00, dcs])
            + _timestamp(timestamp) + ud)
    return (_smsc_field(smsc) + tpdu).hex().upper()


def deliver_parts(sender: str, text: str, *, timestamp: datetime, concat_reference: int,
                  smsc: str = "") -> list[str]:
    """The DELIVER PDUs of a whole text, concatenated when it needs more than one part."""
    bits = _concat_ref_bits(concat_reference)
    plan = plan_parts(text, ref_bits=bits)
    _check_parts(plan)
    if plan.count == 1:
        return [encode_deliver(sender, plan.parts[0], timestamp=timestamp,
                               encoding=plan.encoding, smsc=smsc)]
    return [
        encode_deliver(sender, part, timestamp=timestamp, encoding=plan.encoding,
                       concat=Concat(concat_reference, plan.count, i, bits), smsc=smsc)
        for i, part in enumerate(plan.parts, 1)
    ]


def encode_status_report(reference: int, recipient: str, *, status: int, submitted: datetime,
                         discharged: datetime, smsc: str = "") -> str:
    """One SMS-STATUS-REPORT as hex with the SMSC field."""
    if not 0 <= reference <= 255:
        raise ValueError(f"message reference {reference} is not 0..255")
    if not 0 <= status <= 255:
        raise ValueError(f"status {status} is not 0..255")
    tpdu = (bytes([_MTI_STATUS | _MMS, reference]) + _tp_address(recipient)
            + _timestamp(submitted) + _timestamp(discharged) + bytes([status]))
    return (_smsc_field(smsc) + tpdu).hex().upper()


# =====================================================================================
# Decoding
# =====================================================================================


class _Reader:
    """Octets with a cursor; running past the end is a PduError naming the field."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise PduError(
                f"PDU truncated: {what} needs {n} octet(s) at offset {self.pos}, "
                f"only {len(self.data) - self.pos} left"
            )
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def octet(self, what: str) -> int:
        return self.take(1, what)[0]

    def rest(self) -> int:
        return len(self.data) - self.pos


def _parse_hex(pdu: str | bytes) -> bytes:
    if isinstance(pdu, (bytes, bytearray)):
        try:
            pdu = pdu.decode("ascii")
        except UnicodeDecodeError:
            raise PduError("PDU is not hex text (non-ASCII bytes)") from None
    if not isinstance(pdu, str):
        raise PduError(f"PDU must be a hex string, not {type(pdu).__name__}")
    text = "".join(pdu.split())  # tolerate line breaks or spaces a terminal put in
    if not text:
        raise PduError("PDU is empty")
    if len(text) % 2:
        raise PduError(f"PDU has an odd number of hex digits ({len(text)})")
    try:
        return bytes.fromhex(text)
    except ValueError:
        bad = next((c for c in text if c not in "0123456789abcdefABCDEF"), "?")
        raise PduError(f"PDU is not hex: unexpected character {bad!r}") from None


def _digits(value: bytes, count: int | None = None) -> str:
    out = []
    for octet in value:
        for nibble in (octet & 0x0F, octet >> 4):
            if nibble != 0x0F:
                out.append(_BCD_DIGITS[nibble])
    s = "".join(out)
    return s if count is None else s[:count]


def _read_smsc(r: _Reader) -> str:
    length = r.octet("SMSC length")
    if length == 0:
        return ""
    if length > 11:
        raise PduError(f"SMSC address length {length} octets is more than 11")
    toa = r.octet("SMSC type of address")
    digits = _digits(r.take(length - 1, "SMSC address"))
    return "+" + digits if (toa >> 4) & 7 == 1 else digits


def _read_address(r: _Reader, what: str) -> tuple[str, str]:
    """(number or name, type name) of a TP address."""
    semi = r.octet(f"{what} length")
    if semi > 20:
        raise PduError(f"{what} length {semi} digits is more than 20")
    toa = r.octet(f"{what} type of address")
    value = r.take((semi + 1) // 2, what)
    ton = (toa >> 4) & 7
    kind = _TON_NAMES[ton]
    if ton == 5:
        septets = unpack_septets(value, semi * 4 // 7)
        return alphabet.from_septets(septets), kind
    digits = _digits(value, semi)
    return ("+" + digits if ton == 1 else digits), kind


def _bcd_value(octet: int, what: str) -> int:
    """Two swapped decimal semi-octets: 0x21 -> 12."""
    lo, hi = octet & 0x0F, octet >> 4
    if lo > 9 or hi > 9:
        raise PduError(f"{what} has a non-decimal digit in octet {octet:02X}")
    return lo * 10 + hi


def _read_timestamp(r: _Reader, what: str) -> datetime:
    raw = r.take(7, what)
    fields = [_bcd_value(octet, what) for octet in raw[:6]]
    tz_octet = raw[6]
    tens, units = tz_octet & 0x07, tz_octet >> 4
    if units > 9:
        raise PduError(f"{what} time zone has a non-decimal digit in octet {tz_octet:02X}")
    quarters = tens * 10 + units
    if tz_octet & 0x08:
        quarters = -quarters
    yy, mo, dd, hh, mi, ss = fields
    try:
        # Two-digit year: 90..99 are the 1990s (as gammu reads them), the rest 20xx.
        return datetime((1900 if yy >= 90 else 2000) + yy, mo, dd, hh, mi, ss,
                        tzinfo=timezone(timedelta(minutes=15 * quarters)))
    except ValueError as exc:
        raise PduError(f"{what} is not a valid date/time: {exc}") from None


def _dcs_info(dcs: int) -> tuple[str, int | None]:
    """(encoding, message class) from TP-DCS (23.038 chapter 4)."""
    group = dcs >> 4
    if group <= 0x7:  # general data coding (0x0-0x3) and automatic deletion (0x4-0x7)
        if dcs & 0x20:
            raise PduError(f"TP-DCS {dcs:02X}: compressed user data is not supported")
        cls = dcs & 0x03 if dcs & 0x10 else None
        alpha = (dcs >> 2) & 0x03
        return ("8bit" if alpha == 1 else "ucs2" if alpha == 2 else "gsm7"), cls
    if group in (0xC, 0xD):  # message waiting indication, GSM-7
        return "gsm7", None
    if group == 0xE:  # message waiting indication, UCS2
        return "ucs2", None
    if group == 0xF:
        return ("8bit" if dcs & 0x04 else "gsm7"), dcs & 0x03
    return "gsm7", None  # reserved groups are read as GSM-7 (23.038 chapter 4)


def _parse_udh(udh: bytes) -> Concat | None:
    """The concatenation IE of a user data header (without its UDHL octet), if valid."""
    concat = None
    pos = 0
    while pos < len(udh):
        if pos + 2 > len(udh):
            raise PduError("user data header ends inside an information element")
        iei, ielen = udh[pos], udh[pos + 1]
        data = udh[pos + 2:pos + 2 + ielen]
        if len(data) < ielen:
            raise PduError(
                f"user data header IE {iei:02X} claims {ielen} octets, only {len(data)} present"
            )
        pos += 2 + ielen
        if iei == 0x00 and ielen == 3:
            ref, total, seq = data
            bits = 8
        elif iei == 0x08 and ielen == 4:
            ref, total, seq = int.from_bytes(data[:2], "big"), data[2], data[3]
            bits = 16
        else:
            continue
        # 23.040 9.2.3.24.1: a zero count or an out-of-range sequence voids the IE.
        if total >= 1 and 1 <= seq <= total:
            concat = Concat(ref, total, seq, bits)
    return concat


def _ucs2_text(data: bytes) -> tuple[str, tuple[str, str]]:
    """Text with every lone surrogate shown as U+FFFD, and the lone halves at its edges."""
    if len(data) % 2:
        raise PduError(f"UCS2 user data has an odd number of octets ({len(data)})")
    text = data.decode("utf-16-be", "surrogatepass")  # valid pairs become one character
    if not any("\ud800" <= ch <= "\udfff" for ch in text):
        return text, ("", "")
    lead = text[0] if "\udc00" <= text[0] <= "\udfff" else ""
    trail = text[-1] if "\ud800" <= text[-1] <= "\udbff" else ""
    clean = "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)
    return clean, (lead, trail)


def _read_user_data(
    r: _Reader, encoding: str, udhi: bool
) -> tuple[str, Concat | None, tuple[str, str]]:
    """(text, concatenation IE, lone surrogate halves at the edges of a UCS2 part)."""
    udl = r.octet("TP-UDL")
    if encoding == "gsm7":
        if udl > 160:
            raise PduError(f"TP-UDL {udl} septets is more than 160")
        octets = (udl * 7 + 7) // 8
    else:
        if udl > 140:
            raise PduError(f"TP-UDL {udl} octets is more than 140")
        octets = udl
    if r.rest() < octets:
        raise PduError(
            f"PDU truncated: TP-UDL {udl} needs {octets} octet(s) of user data, "
            f"only {r.rest()} left"
        )
    if r.rest() > octets:
        raise PduError(
            f"{r.rest() - octets} unexpected octet(s) after the user data (TP-UDL {udl})"
        )
    ud = r.take(octets, "TP-UD")
    concat = None
    header = 0
    if udhi:
        if not ud:
            raise PduError("TP-UDHI is set but the user data is empty")
        header = 1 + ud[0]
        if header > len(ud):
            raise PduError(f"user data header length {ud[0]} exceeds the user data")
        concat = _parse_udh(ud[1:header])
    if encoding == "gsm7":
        fill = (7 - header * 8 % 7) % 7
        header_septets = (header * 8 + fill) // 7
        count = udl - header_septets
        if count < 0:
            raise PduError(f"TP-UDL {udl} septets is shorter than the user data header")
        septets = unpack_septets(ud[header:], count, fill)
        return alphabet.from_septets(septets), concat, ("", "")
    body = ud[header:]
    if encoding == "ucs2":
        text, edges = _ucs2_text(body)
        return text, concat, (edges if concat is not None else ("", ""))
    return body.decode("latin-1"), concat, ("", "")


def _relative_or_enhanced_vp(r: _Reader, vpf: int) -> int | None:
    if vpf == 0:
        return None
    if vpf == 2:
        return validity_to_minutes(r.octet("TP-VP"))
    raw = r.take(7, "TP-VP")
    if vpf == 3:
        return None  # absolute validity: a point in time, not a duration
    fmt = raw[0] & 0x07  # enhanced format (23.040 9.2.3.12.3)
    if fmt == 1:
        return validity_to_minutes(raw[1])
    if fmt == 2:
        return max(1, (raw[1] + 59) // 60)
    if fmt == 3:
        h, m, s = (_bcd_value(o, "TP-VP") for o in raw[1:4])
        return max(1, h * 60 + m + (1 if s else 0))
    return None


def _decode_deliver(r: _Reader, smsc: str, first: int) -> Deliver:
    sender, sender_type = _read_address(r, "TP-OA")
    pid = r.octet("TP-PID")
    dcs = r.octet("TP-DCS")
    encoding, cls = _dcs_info(dcs)
    ts = _read_timestamp(r, "TP-SCTS")
    text, concat, edges = _read_user_data(r, encoding, bool(first & _UDHI))
    return Deliver(smsc=smsc, sender=sender, sender_type=sender_type, timestamp=ts, text=text,
                   encoding=encoding, concat=concat, pid=pid, dcs=dcs, message_class=cls,
                   status_report_indication=bool(first & _SRR), edge_surrogates=edges)


def _decode_submit(r: _Reader, smsc: str, first: int) -> Submit:
    reference = r.octet("TP-MR")
    number, _ = _read_address(r, "TP-DA")
    r.octet("TP-PID")
    dcs = r.octet("TP-DCS")
    encoding, _ = _dcs_info(dcs)
    validity = _relative_or_enhanced_vp(r, (first >> 3) & 0x03)
    text, concat, _ = _read_user_data(r, encoding, bool(first & _UDHI))
    return Submit(smsc=smsc, number=number, text=text, encoding=encoding, reference=reference,
                  concat=concat, status_report=bool(first & _SRR), validity_minutes=validity)


def _decode_status_report(r: _Reader, smsc: str) -> StatusReport:
    reference = r.octet("TP-MR")
    recipient, _ = _read_address(r, "TP-RA")
    submitted = _read_timestamp(r, "TP-SCTS")
    discharged = _read_timestamp(r, "TP-DT")
    status = r.octet("TP-ST")
    # Optional TP-PI and what it announces (PID, DCS, user data) follow; they are not needed.
    return StatusReport(smsc=smsc, reference=reference, recipient=recipient,
                        submitted=submitted, discharged=discharged, status=status)


def _decode(r: _Reader, smsc: str) -> Decoded:
    first = r.octet("first octet")
    mti = first & 0x03
    if mti == _MTI_DELIVER:
        return _decode_deliver(r, smsc, first)
    if mti == _MTI_SUBMIT:
        return _decode_submit(r, smsc, first)
    if mti == _MTI_STATUS:
        return _decode_status_report(r, smsc)
    raise PduError(f"reserved TP-MTI 3 in first octet {first:02X}")


def decode_pdu(hex: str, tpdu_length: int | None = None) -> Decoded:
    """Decode a PDU that starts with the SMSC field, by TP-MTI: DELIVER, SUBMIT or
    STATUS-REPORT. ``tpdu_length`` (the <length> of +CMGL/+CMT/+CDS, optional) is checked;
    when the PDU is exactly that long it has no SMSC field (some modems omit it in +CDS).
    Anything malformed raises PduError."""
    data = _parse_hex(hex)
    if tpdu_length is not None and len(data) == tpdu_length:
        return _decode(_Reader(data), "")
    r = _Reader(data)
    smsc = _read_smsc(r)
    if tpdu_length is not None and r.rest() != tpdu_length:
        raise PduError(
            f"TPDU is {r.rest()} octets after the SMSC field, the modem said {tpdu_length}"
        )
    return _decode(r, smsc)


def decode_tpdu(hex: str) -> Decoded:
    """Like ``decode_pdu`` for a TPDU without the SMSC field."""
    return _decode(_Reader(_parse_hex(hex)), "")
