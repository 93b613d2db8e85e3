"""SMPP 3.4 PDU codec: bytes to ``Pdu`` and back, and the framer that cuts a stream into PDUs.

Owns the octet layout of every PDU an ESME sends or may receive (binds, submit_sm,
deliver_sm, data_sm, enquire_link, unbind, generic_nack, alert_notification, outbind and
their responses), TLVs, the command ids, the command_status values and their names.
Pure functions, no I/O.  Every decoding failure is a ``PduError`` carrying the
command_status the peer should get for it (ESME_RINVCMDLEN, ESME_RINVCMDID, ...).

Decoding is lenient where real SMSCs are sloppy (a C-Octet String longer than the
specification's maximum, a response without its body when command_status is not 0),
and strict where the frame would be ambiguous; encoding is strict.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

HEADER = struct.Struct(">IIII")
HEADER_SIZE = HEADER.size
MAX_PDU_SIZE = 65536  # no legitimate PDU comes near this; a larger length is a broken stream

# -- command ids
GENERIC_NACK = 0x80000000
BIND_RECEIVER = 0x00000001
BIND_TRANSMITTER = 0x00000002
QUERY_SM = 0x00000003
SUBMIT_SM = 0x00000004
DELIVER_SM = 0x00000005
UNBIND = 0x00000006
REPLACE_SM = 0x00000007
CANCEL_SM = 0x00000008
BIND_TRANSCEIVER = 0x00000009
OUTBIND = 0x0000000B
ENQUIRE_LINK = 0x00000015
SUBMIT_MULTI = 0x00000021
ALERT_NOTIFICATION = 0x00000102
DATA_SM = 0x00000103
RESPONSE = 0x80000000  # the bit that makes a command id a response

COMMAND_NAMES = {
    GENERIC_NACK: "generic_nack",
    BIND_RECEIVER: "bind_receiver",
    BIND_TRANSMITTER: "bind_transmitter",
    QUERY_SM: "query_sm",
    SUBMIT_SM: "submit_sm",
    DELIVER_SM: "deliver_sm",
    UNBIND: "unbind",
    REPLACE_SM: "replace_sm",
    CANCEL_SM: "cancel_sm",
    BIND_TRANSCEIVER: "bind_transceiver",
    OUTBIND: "outbind",
    ENQUIRE_LINK: "enquire_link",
    SUBMIT_MULTI: "submit_multi",
    ALERT_NOTIFICATION: "alert_notification",
    DATA_SM: "data_sm",
}
for _id, _name in list(COMMAND_NAMES.items()):
    if _id != GENERIC_NACK:
        COMMAND_NAMES[_id | RESPONSE] = _name + "_resp"

# -- command_status values (SMPP 3.4 section 5.1.3)
ESME_ROK = 0x00
ESME_RINVMSGLEN = 0x01
ESME_RINVCMDLEN = 0x02
ESME_RINVCMDID = 0x03
ESME_RINVBNDSTS = 0x04
ESME_RALYBND = 0x05
ESME_RINVPRTFLG = 0x06
ESME_RINVREGDLVFLG = 0x07
ESME_RSYSERR = 0x08
ESME_RINVSRCADR = 0x0A
ESME_RINVDSTADR = 0x0B
ESME_RINVMSGID = 0x0C
ESME_RBINDFAIL = 0x0D
ESME_RINVPASWD = 0x0E
ESME_RINVSYSID = 0x0F
ESME_RCANCELFAIL = 0x11
ESME_RREPLACEFAIL = 0x13
ESME_RMSGQFUL = 0x14
ESME_RINVSERTYP = 0x15
ESME_RINVNUMDESTS = 0x33
ESME_RINVDLNAME = 0x34
ESME_RINVDESTFLAG = 0x40
ESME_RINVSUBREP = 0x42
ESME_RINVESMCLASS = 0x43
ESME_RCNTSUBDL = 0x44
ESME_RSUBMITFAIL = 0x45
ESME_RINVSRCTON = 0x48
ESME_RINVSRCNPI = 0x49
ESME_RINVDSTTON = 0x50
ESME_RINVDSTNPI = 0x51
ESME_RINVSYSTYP = 0x53
ESME_RINVREPFLAG = 0x54
ESME_RINVNUMMSGS = 0x55
ESME_RTHROTTLED = 0x58
ESME_RINVSCHED = 0x61
ESME_RINVEXPIRY = 0x62
ESME_RINVDFTMSGID = 0x63
ESME_RX_T_APPN = 0x64
ESME_RX_P_APPN = 0x65
ESME_RX_R_APPN = 0x66
ESME_RQUERYFAIL = 0x67
ESME_RINVOPTPARSTREAM = 0xC0
ESME_ROPTPARNOTALLWD = 0xC1
ESME_RINVPARLEN = 0xC2
ESME_RMISSINGOPTPARAM = 0xC3
ESME_RINVOPTPARAMVAL = 0xC4
ESME_RDELIVERYFAILURE = 0xFE
ESME_RUNKNOWNERR = 0xFF
# SMPP 5.0 additions some SMSCs use with 3.4 binds
ESME_RSERTYPUNAUTH = 0x100
ESME_RPROHIBITED = 0x101
ESME_RSERTYPUNAVAIL = 0x102
ESME_RSERTYPDENIED = 0x103
ESME_RINVDCS = 0x104

STATUS_NAMES = {value: name for name, value in globals().items()
                if name.startswith("ESME_R") and isinstance(value, int)}


def status_name(status: int) -> str:
    """``ESME_RTHROTTLED (0x58)``; vendor codes as their number."""
    name = STATUS_NAMES.get(status)
    return f"{name} (0x{status:X})" if name else f"command_status 0x{status:X}"


# -- TLV tags used here
TLV_SC_INTERFACE_VERSION = 0x0210
TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427
TLV_NETWORK_ERROR_CODE = 0x0423
TLV_SAR_MSG_REF_NUM = 0x020C
TLV_SAR_TOTAL_SEGMENTS = 0x020E
TLV_SAR_SEGMENT_SEQNUM = 0x020F
TLV_MESSAGE_PAYLOAD = 0x0424
TLV_SOURCE_PORT = 0x020A
TLV_DEST_PORT = 0x020B


class PduError(ValueError):
    """A PDU that cannot be decoded or encoded; ``status`` is the command_status it maps to."""

    def __init__(self, message: str, status: int = ESME_RSYSERR) -> None:
        super().__init__(message)
        self.status = status


# -- body layouts.  Field kinds: ("c", max octets incl. NUL, status if bad), ("u8",),
#    ("sm",) = sm_length followed by short_message.
_C = "c"
_U8 = "u8"
_SM = "sm"

_BIND = (
    ("system_id", _C, 16, ESME_RINVSYSID),
    ("password", _C, 9, ESME_RINVPASWD),
    ("system_type", _C, 13, ESME_RINVSYSTYP),
    ("interface_version", _U8),
    ("addr_ton", _U8),
    ("addr_npi", _U8),
    ("address_range", _C, 41, ESME_RINVCMDLEN),
)
_BIND_RESP = (("system_id", _C, 16, ESME_RINVSYSID),)
_SM_FIELDS = (
    ("service_type", _C, 6, ESME_RINVSERTYP),
    ("source_addr_ton", _U8),
    ("source_addr_npi", _U8),
    ("source_addr", _C, 21, ESME_RINVSRCADR),
    ("dest_addr_ton", _U8),
    ("dest_addr_npi", _U8),
    ("destination_addr", _C, 21, ESME_RINVDSTADR),
    ("esm_class", _U8),
    ("protocol_id", _U8),
    ("priority_flag", _U8),
    ("schedule_delivery_time", _C, 17, ESME_RINVSCHED),
    ("validity_period", _C, 17, ESME_RINVEXPIRY),
    ("registered_delivery", _U8),
    ("replace_if_present_flag", _U8),
    ("data_coding", _U8),
    ("sm_default_msg_id", _U8),
    ("short_message", _SM),
)
_DATA_SM = (
    ("service_type", _C, 6, ESME_RINVSERTYP),
    ("source_addr_ton", _U8),
    ("source_addr_npi", _U8),
    ("source_addr", _C, 65, ESME_RINVSRCADR),
    ("dest_addr_ton", _U8),
    ("dest_addr_npi", _U8),
    ("destination_addr", _C, 65, ESME_RINVDSTADR),
    ("esm_class", _U8),
    ("registered_delivery", _U8),
    ("data_coding", _U8),
)
_MESSAGE_ID = (("message_id", _C, 65, ESME_RINVMSGID),)
_ALERT = (
    ("source_addr_ton", _U8),
    ("source_addr_npi", _U8),
    ("source_addr", _C, 65, ESME_RINVSRCADR),
    ("esme_addr_ton", _U8),
    ("esme_addr_npi", _U8),
    ("esme_addr", _C, 65, ESME_RINVDSTADR),
)
_OUTBIND = (("system_id", _C, 16, ESME_RINVSYSID), ("password", _C, 9, ESME_RINVPASWD))

# command id -> (fields, takes TLVs)
LAYOUTS: Dict[int, Tuple[tuple, bool]] = {
    GENERIC_NACK: ((), False),
    BIND_RECEIVER: (_BIND, False),
    BIND_TRANSMITTER: (_BIND, False),
    BIND_TRANSCEIVER: (_BIND, False),
    BIND_RECEIVER | RESPONSE: (_BIND_RESP, True),
    BIND_TRANSMITTER | RESPONSE: (_BIND_RESP, True),
    BIND_TRANSCEIVER | RESPONSE: (_BIND_RESP, True),
    OUTBIND: (_OUTBIND, False),
    UNBIND: ((), False),
    UNBIND | RESPONSE: ((), False),
    ENQUIRE_LINK: ((), False),
    ENQUIRE_LINK | RESPONSE: ((), False),
    SUBMIT_SM: (_SM_FIELDS, True),
    SUBMIT_SM | RESPONSE: (_MESSAGE_ID, False),
    DELIVER_SM: (_SM_FIELDS, True),
    DELIVER_SM | RESPONSE: (_MESSAGE_ID, False),
    DATA_SM: (_DATA_SM, True),
    DATA_SM | RESPONSE: (_MESSAGE_ID, True),
    ALERT_NOTIFICATION: (_ALERT, True),
}

_DEFAULTS = {_C: "", _U8: 0, _SM: b""}
_FIELD_NAMES = {command: frozenset(spec[0] for spec in fields)
                for command, (fields, _) in LAYOUTS.items()}


def is_response(command_id: int) -> bool:
    return bool(command_id & RESPONSE)


@dataclass
class Pdu:
    """One PDU.  ``params`` holds the mandatory fields by their specification names
    (C-Octet Strings as ``str``, read as Latin-1 so any byte survives; short_message as
    ``bytes``); ``tlvs`` the optional parameters in wire order as (tag, value bytes)."""

    command_id: int
    sequence: int = 0
    status: int = ESME_ROK
    params: Dict[str, object] = field(default_factory=dict)
    tlvs: List[Tuple[int, bytes]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return COMMAND_NAMES.get(self.command_id, f"command 0x{self.command_id:08X}")

    @property
    def is_response(self) -> bool:
        return is_response(self.command_id)

    def get(self, name: str):
        """A mandatory field, or its default when absent (e.g. in an error response)."""
        if name in self.params:
            return self.params[name]
        for spec in LAYOUTS.get(self.command_id, ((), False))[0]:
            if spec[0] == name:
                return _DEFAULTS[spec[1]]
        raise KeyError(name)

    def tlv(self, tag: int) -> Optional[bytes]:
        """The first TLV with ``tag``, or None."""
        for found, value in self.tlvs:
            if found == tag:
                return value
        return None

    def tlv_int(self, tag: int) -> Optional[int]:
        value = self.tlv(tag)
        if value is None or not value or len(value) > 4:
            return None
        return int.from_bytes(value, "big")

    def tlv_cstring(self, tag: int) -> Optional[str]:
        value = self.tlv(tag)
        if value is None:
            return None
        return value.split(b"\0", 1)[0].decode("latin-1")

    def response(self, status: int = ESME_ROK, **params) -> "Pdu":
        """The response to this request: same sequence; generic_nack for an unknown command."""
        command = self.command_id | RESPONSE if self.command_id in LAYOUTS else GENERIC_NACK
        return Pdu(command, self.sequence, status, dict(params))


# -- encoding

def _cstring(value: object, size: int, name: str, status: int) -> bytes:
    if value == "":
        return b"\0"
    if isinstance(value, bytes):
        data = value
    else:
        try:
            data = str(value).encode("latin-1")
        except UnicodeEncodeError:
            raise PduError(f"{name}: not a Latin-1 string: {value!r}", status) from None
    if b"\0" in data:
        raise PduError(f"{name}: contains a NUL octet", status)
    if len(data) + 1 > size:
        raise PduError(f"{name}: {len(data)} octets, at most {size - 1} allowed", status)
    return data + b"\0"


def _u8(value: object, name: str) -> bytes:
    number = int(value)  # type: ignore[arg-type]
    if not 0 <= number <= 0xFF:
        raise PduError(f"{name}: {number} does not fit one octet", ESME_RINVCMDLEN)
    return bytes((number,))


def encode_tlv(tag: int, value: bytes) -> bytes:
    if not 0 <= tag <= 0xFFFF or len(value) > 0xFFFF:
        raise PduError(f"TLV 0x{tag:04X}: tag or length out of range", ESME_RINVPARLEN)
    return struct.pack(">HH", tag, len(value)) + value


def encode(pdu: Pdu) -> bytes:
    """The wire form of ``pdu``.  A response with a non-zero status that has no params
    set is sent header-only, as SMPP 3.4 allows."""
    layout = LAYOUTS.get(pdu.command_id)
    if layout is None:
        raise PduError(f"cannot encode {pdu.name}", ESME_RINVCMDID)
    fields, takes_tlvs = layout
    unknown = pdu.params.keys() - _FIELD_NAMES[pdu.command_id]
    if unknown:
        raise PduError(f"{pdu.name}: unknown field(s) {sorted(unknown)}", ESME_RINVCMDLEN)
    if pdu.tlvs and not takes_tlvs:
        raise PduError(f"{pdu.name}: takes no TLVs", ESME_ROPTPARNOTALLWD)
    body = bytearray()
    header_only = pdu.is_response and pdu.status != ESME_ROK and not pdu.params and not pdu.tlvs
    if not header_only:
        for spec in fields:
            name, kind = spec[0], spec[1]
            value = pdu.params.get(name, _DEFAULTS[kind])
            if kind == _C:
                body += _cstring(value, spec[2], name, spec[3])
            elif kind == _U8:
                if value.__class__ is int and 0 <= value <= 0xFF:  # the usual case, quickly
                    body.append(value)
                else:
                    body += _u8(value, name)
            else:
                data = bytes(value)  # type: ignore[arg-type]
                if len(data) > 254:
                    raise PduError(f"short_message: {len(data)} octets, at most 254 allowed",
                                   ESME_RINVMSGLEN)
                body += bytes((len(data),)) + data
        for tag, value in pdu.tlvs:
            body += encode_tlv(tag, bytes(value))
    length = HEADER_SIZE + len(body)
    if length > MAX_PDU_SIZE:
        raise PduError(f"{pdu.name}: {length} octets is too long", ESME_RINVCMDLEN)
    if not 0 <= pdu.sequence <= 0xFFFFFFFF or not 0 <= pdu.status <= 0xFFFFFFFF:
        raise PduError("sequence or status out of range", ESME_RINVCMDLEN)
    return HEADER.pack(length, pdu.command_id, pdu.status, pdu.sequence) + bytes(body)


# -- decoding

def decode_header(data: bytes) -> Tuple[int, int, int, int]:
    """(command_length, command_id, command_status, sequence_number) of a frame."""
    if len(data) < HEADER_SIZE:
        raise PduError(f"{len(data)} octets: shorter than a PDU header", ESME_RINVCMDLEN)
    return HEADER.unpack_from(data)


def _read_tlvs(body: bytes, offset: int, name: str) -> List[Tuple[int, bytes]]:
    tlvs = []
    while offset < len(body):
        if len(body) - offset < 4:
            raise PduError(f"{name}: {len(body) - offset} stray octet(s) after the fields",
                           ESME_RINVOPTPARSTREAM)
        tag, length = struct.unpack_from(">HH", body, offset)
        offset += 4
        if offset + length > len(body):
            raise PduError(f"{name}: TLV 0x{tag:04X} of {length} octets overruns the PDU",
                           ESME_RINVPARLEN)
        tlvs.append((tag, bytes(body[offset:offset + length])))
        offset += length
    return tlvs


def decode(data: bytes) -> Pdu:
    """One whole PDU (as the framer cuts it) to a ``Pdu``; raises PduError."""
    length, command_id, status, sequence = decode_header(data)
    if length != len(data):
        raise PduError(f"command_length {length} but {len(data)} octets", ESME_RINVCMDLEN)
    layout = LAYOUTS.get(command_id)
    if layout is None:
        raise PduError(f"unknown command id 0x{command_id:08X}", ESME_RINVCMDID)
    fields, takes_tlvs = layout
    name = COMMAND_NAMES[command_id]
    body = bytes(data[HEADER_SIZE:])
    pdu = Pdu(command_id, sequence, status)
    offset = 0
    for spec in fields:
        field_name, kind = spec[0], spec[1]
        if offset >= len(body) and is_response(command_id):
            break  # a response may leave its body out (error responses usually do)
        if kind == _C:
            end = body.find(b"\0", offset)
            if end < 0:
                if not is_response(command_id):
                    raise PduError(f"{name}: {field_name} is not NUL-terminated", spec[3])
                end = len(body)  # some SMSCs end a response's message_id without the NUL
            pdu.params[field_name] = body[offset:end].decode("latin-1")
            offset = end + 1
        elif kind == _U8:
            if offset >= len(body):
                raise PduError(f"{name}: ends before {field_name}", ESME_RINVCMDLEN)
            pdu.params[field_name] = body[offset]
            offset += 1
        else:
            if offset >= len(body):
                raise PduError(f"{name}: ends before sm_length", ESME_RINVCMDLEN)
            sm_length = body[offset]
            offset += 1
            if offset + sm_length > len(body):
                raise PduError(f"{name}: sm_length {sm_length} overruns the PDU", ESME_RINVMSGLEN)
            pdu.params[field_name] = body[offset:offset + sm_length]
            offset += sm_length
    if offset < len(body):
        if not takes_tlvs:
            raise PduError(f"{name}: {len(body) - offset} octet(s) after the last field",
                           ESME_RINVCMDLEN)
        pdu.tlvs = _read_tlvs(body, offset, name)
    return pdu


class FramingError(PduError):
    """The stream cannot be cut into PDUs any more (a command_length that cannot be true);
    the connection must be closed."""


class Framer:
    """Bytes in, whole PDU frames out.  Feed it any chunks; ``feed`` returns the frames
    completed so far (bytes, to be given to ``decode``)."""

    def __init__(self, max_size: int = MAX_PDU_SIZE) -> None:
        self.max_size = max_size
        self._buffer = bytearray()

    def feed(self, data: bytes) -> List[bytes]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= 4:
            (length,) = struct.unpack_from(">I", self._buffer)
            if length < HEADER_SIZE or length > self.max_size:
                raise FramingError(f"command_length {length} is impossible", ESME_RINVCMDLEN)
            if len(self._buffer) < length:
                break
            frames.append(bytes(self._buffer[:length]))
            del self._buffer[:length]
        return frames

    @property
    def pending(self) -> int:
        """Octets of an unfinished frame held back."""
        return len(self._buffer)

