"""How stored and incoming messages look in text mode (27.005 AT+CMGF=1), pure.

Owns: the header lines of +CMGL, +CMGR, +CMT and +CDS in text mode (with and
without AT+CSDH=1), the ``"yy/MM/dd,hh:mm:ss+zz"`` time format, type-of-address
numbers, and the data line: GSM-7 text in the TE character set, UCS2 and 8-bit
data as hex, as real modems show them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Tuple

from smss.gsm import pdu as pducodec
from smss.sim import charset
from smss.sim.storage import STAT_NAMES

_TOA = {"international": 145, "national": 161, "alphanumeric": 208}


def toa(number: str, kind: str = "") -> int:
    if kind:
        return _TOA.get(kind, 129)
    return 145 if number.startswith("+") else 129


def scts(ts: datetime) -> str:
    offset = ts.utcoffset()
    quarters = int(offset.total_seconds()) // 900 if offset is not None else 0
    sign = "-" if quarters < 0 else "+"
    return ts.strftime("%y/%m/%d,%H:%M:%S") + f"{sign}{abs(quarters):02d}"


def first_octet(pdu_hex: str) -> int:
    smsc_len = int(pdu_hex[0:2], 16)
    pos = 2 + 2 * smsc_len
    return int(pdu_hex[pos : pos + 2], 16)


def data_line(text: str, encoding: str, cscs: str) -> Tuple[str, int]:
    """(data as shown, <length>): GSM-7 text in the TE set; UCS2/8-bit data as hex."""
    if encoding == "gsm7":
        return charset.encode(text, cscs), len(text)
    if encoding == "ucs2":
        raw = text.encode("utf-16-be", "surrogatepass")
    else:
        raw = text.encode("latin-1", errors="replace")
    return raw.hex().upper(), len(raw)


def _q(text: str, cscs: str) -> str:
    return '"' + charset.encode(text, cscs) + '"'


def _status_fields(report: pducodec.StatusReport, fo: int, cscs: str) -> str:
    return (
        f"{fo},{report.reference},{_q(report.recipient, cscs)},{toa(report.recipient)},"
        f'"{scts(report.submitted)}","{scts(report.discharged)}",{report.status}'
    )


def list_entry(index: int, stat: int, pdu_hex: str, cscs: str, csdh: int) -> Tuple[str, ...]:
    """The +CMGL lines of one stored message."""
    msg = pducodec.decode_pdu(pdu_hex)
    stat_name = f'"{STAT_NAMES[stat]}"'
    fo = first_octet(pdu_hex)
    if isinstance(msg, pducodec.StatusReport):
        return (f"+CMGL: {index},{stat_name},{_status_fields(msg, fo, cscs)}",)
    if isinstance(msg, pducodec.Deliver):
        data, length = data_line(msg.text, msg.encoding, cscs)
        head = f'+CMGL: {index},{stat_name},{_q(msg.sender, cscs)},,"{scts(msg.timestamp)}"'
        if csdh:
            head += f",{toa(msg.sender, msg.sender_type)},{length}"
        return (head, data)
    data, length = data_line(msg.text, msg.encoding, cscs)
    head = f"+CMGL: {index},{stat_name},{_q(msg.number, cscs)},,"
    if csdh:
        head += f",{toa(msg.number)},{length}"
    return (head, data)


def read_entry(stat: int, pdu_hex: str, cscs: str, csdh: int, sca: str) -> Tuple[str, ...]:
    """The +CMGR lines of one stored message."""
    msg = pducodec.decode_pdu(pdu_hex)
    stat_name = f'"{STAT_NAMES[stat]}"'
    fo = first_octet(pdu_hex)
    if isinstance(msg, pducodec.StatusReport):
        return (f"+CMGR: {stat_name},{_status_fields(msg, fo, cscs)}",)
    data, length = data_line(msg.text, msg.encoding, cscs)
    smsc = msg.smsc or sca
    if isinstance(msg, pducodec.Deliver):
        head = f'+CMGR: {stat_name},{_q(msg.sender, cscs)},,"{scts(msg.timestamp)}"'
        if csdh:
            head += (
                f",{toa(msg.sender, msg.sender_type)},{fo},{msg.pid},{msg.dcs},"
                f"{_q(smsc, cscs)},{toa(smsc)},{length}"
            )
        return (head, data)
    head = f"+CMGR: {stat_name},{_q(msg.number, cscs)},"
    if csdh:
        dcs = 8 if msg.encoding == "ucs2" else (4 if msg.encoding == "8bit" else 0)
        head += f",{toa(msg.number)},{fo},0,{dcs},,{_q(smsc, cscs)},{toa(smsc)},{length}"
    return (head, data)


def cmt_entry(pdu_hex: str, cscs: str, csdh: int) -> Tuple[str, ...]:
    msg = pducodec.decode_pdu(pdu_hex)
    data, length = data_line(msg.text, msg.encoding, cscs)
    head = f'+CMT: {_q(msg.sender, cscs)},,"{scts(msg.timestamp)}"'
    if csdh:
        fo = first_octet(pdu_hex)
        smsc = msg.smsc
        head += (
            f",{toa(msg.sender, msg.sender_type)},{fo},{msg.pid},{msg.dcs},"
            f"{_q(smsc, cscs)},{toa(smsc)},{length}"
        )
    return (head, data)


def cds_entry(pdu_hex: str, cscs: str) -> Tuple[str, ...]:
    msg = pducodec.decode_pdu(pdu_hex)
    return (f"+CDS: {_status_fields(msg, first_octet(pdu_hex), cscs)}",)
