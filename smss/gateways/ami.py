"""The Asterisk Manager Interface on the wire (pure): bytes in, packets out; actions out.

AMI is text over TCP.  The server greets with one banner line (``Asterisk Call
Manager/1.1``); after that every packet is ``Key: Value`` lines ended by an empty line,
CRLF-terminated.  Two irregular shapes are handled here so nobody else has to:

- a ``Response: Follows`` packet (Asterisk's and Yeastar's ``Command``/``smscommand``)
  carries the command's output after its headers, in lines ended by a bare LF, up to a
  ``--END COMMAND--`` marker (sometimes glued to the last output line) and then the empty
  line; newer Asterisk sends the output as ``Output:`` headers instead.  Both end up in
  ``Packet.output``.
- Yeastar's SMS events end with a line that is not ``Key: Value``
  (``--END SMS EVENT--``): such lines are kept in ``Packet.extra``.

Limits: a line longer than ``MAX_LINE`` bytes or a packet of more than ``MAX_LINES``
lines is an ``AmiProtocolError`` (the connection must then be dropped).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

MAX_LINE = 65536
MAX_LINES = 2000
END_COMMAND = "--END COMMAND--"

_HEADER = re.compile(r"^([A-Za-z0-9_\-. ]*[A-Za-z0-9_\-.]):[ \t]?(.*)$")
_BANNER = re.compile(r"Call Manager/\S+")

_NORMAL, _FOLLOWS_HEAD, _FOLLOWS_OUTPUT, _FOLLOWS_END = range(4)


class AmiProtocolError(ValueError):
    """The peer does not speak AMI (or breaks its limits)."""


@dataclass
class Packet:
    fields: List[Tuple[str, str]] = field(default_factory=list)
    output: List[str] = field(default_factory=list)  # command output lines
    extra: List[str] = field(default_factory=list)  # lines that are not "Key: Value"
    raw: bytes = b""  # the bytes it came in, as received

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        """The first value of ``key`` (names compare case-insensitively)."""
        wanted = key.lower()
        for name, value in self.fields:
            if name.lower() == wanted:
                return value
        return default

    def as_dict(self) -> Dict[str, str]:
        result: Dict[str, str] = {}
        for name, value in self.fields:
            result.setdefault(name, value)
        return result

    @property
    def event(self) -> Optional[str]:
        return self.get("Event")

    @property
    def response(self) -> Optional[str]:
        return self.get("Response")

    @property
    def action_id(self) -> Optional[str]:
        return self.get("ActionID")


class AmiParser:
    """Feed it bytes as they come (any split); it returns the packets they complete."""

    def __init__(self, expect_banner: bool = True) -> None:
        self.expect_banner = expect_banner
        self.banner: Optional[str] = None
        self._buffer = bytearray()
        self._raw = bytearray()
        self._reset()

    def _reset(self) -> None:
        self._packet = Packet()
        self._mode = _NORMAL
        self._lines = 0
        self._raw = bytearray()

    @property
    def pending(self) -> bool:
        """Part of a packet has arrived and waits for the rest."""
        return bool(self._buffer) or self._lines > 0

    def feed(self, data: bytes) -> List[Packet]:
        self._buffer.extend(data)
        packets: List[Packet] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE:
                    raise AmiProtocolError(f"a line longer than {MAX_LINE} bytes")
                return packets
            if end > MAX_LINE:
                raise AmiProtocolError(f"a line longer than {MAX_LINE} bytes")
            chunk = bytes(self._buffer[:end + 1])
            del self._buffer[:end + 1]
            crlf = chunk.endswith(b"\r\n")
            text = chunk[:-2 if crlf else -1].decode("utf-8", "replace")
            if self.expect_banner and self.banner is None:
                if not _BANNER.search(text):
                    raise AmiProtocolError(f"not an AMI server: it said {text[:80]!r}")
                self.banner = text.strip()
                continue
            self._raw.extend(chunk)
            packet = self._line(text, crlf)
            if packet is not None:
                packets.append(packet)

    def _line(self, text: str, crlf: bool) -> Optional[Packet]:
        packet, mode = self._packet, self._mode
        if text == "" and (mode == _NORMAL or mode == _FOLLOWS_END or crlf):
            if mode == _NORMAL and not packet.fields and not packet.extra:
                self._raw = bytearray()
                return None  # blank lines between packets
            return self._emit()
        self._lines += 1
        if self._lines > MAX_LINES:
            raise AmiProtocolError(f"a packet of more than {MAX_LINES} lines")
        if mode in (_FOLLOWS_HEAD, _FOLLOWS_OUTPUT) and text.endswith(END_COMMAND):
            before = text[:-len(END_COMMAND)]
            if before.strip():
                packet.output.append(before)
            self._mode = _FOLLOWS_END
            return None
        header = _HEADER.match(text)
        if mode == _FOLLOWS_OUTPUT or (mode == _FOLLOWS_HEAD and (not crlf or header is None)):
            packet.output.append(text)
            self._mode = _FOLLOWS_OUTPUT
            return None
        if header is None:
            packet.extra.append(text)
            return None
        key, value = header.group(1), header.group(2)
        packet.fields.append((key, value))
        if key.lower() == "output":
            packet.output.append(value)
        if (mode == _NORMAL and len(packet.fields) == 1 and key.lower() == "response"
                and value.strip().lower() == "follows"):
            self._mode = _FOLLOWS_HEAD
        return None

    def _emit(self) -> Packet:
        packet = self._packet
        packet.raw = bytes(self._raw)
        self._reset()
        return packet


Fields = Union[Mapping[str, object], Sequence[Tuple[str, object]]]


def _pairs(fields: Fields) -> Iterable[Tuple[str, object]]:
    return fields.items() if isinstance(fields, Mapping) else fields


def encode(fields: Fields) -> bytes:
    """One packet (an action, or a server's response or event): ``Key: Value`` lines and
    the empty line.  A key or value with CR or LF in it would break the framing: ValueError."""
    lines = []
    for key, value in _pairs(fields):
        text = str(value)
        if not _HEADER.match(f"{key}: x") or any(c in text for c in "\r\n"):
            raise ValueError(f"AMI field {key!r} cannot carry {text[:40]!r}")
        lines.append(f"{key}: {text}\r\n")
    return ("".join(lines) + "\r\n").encode("utf-8")
