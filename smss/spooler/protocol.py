"""The wire protocol on port 2021, sans I/O: bytes in, records and errors out.

A record is ``#PHONE;TEXT``.  It ends at the next unescaped ``#``, at CR or LF,
or at the end of the stream.  In TEXT, ``\\#``, ``\\;``, ``\\\\``, ``\\n`` and
``\\r`` are escapes; any other backslash is kept as it is (old clients send
Windows paths).  Bytes are UTF-8; bytes that are not valid UTF-8 are decoded
with a legacy code page (cp1250 by default).  Nothing here touches a socket:
``RecordParser.feed`` takes whatever bytes arrived, in any split, and returns
what they completed; ``RecordParser.close`` ends the stream.

Leniency, on purpose: blank lines and spaces between records are ignored, an
empty record (``#`` followed by the end of the record) is no record, a ``;``
inside TEXT needs no escape.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import List, Union

# Error codes shared by every front door (TCP, HTTP API).
BAD_SYNTAX = 400
FORBIDDEN = 403
TIMEOUT = 408
TOO_LONG = 413
INVALID = 422
TOO_MANY = 429
UNAVAILABLE = 503
IN_DOUBT = 504  # the database did not confirm the commit: maybe stored


@dataclass(frozen=True)
class Record:
    phone: str
    text: str


@dataclass(frozen=True)
class RecordError:
    code: int
    reason: str

    def reply(self) -> bytes:
        return f"ERR {self.code} {self.reason}\r\n".encode()


Event = Union[Record, RecordError]

_OUTSIDE, _JUNK, _PHONE, _TEXT = range(4)
_PHONE_STOP = re.compile(rb"[;#\r\n]")
_TEXT_STOP = re.compile(rb"[\\#\r\n]")
_JUNK_STOP = re.compile(rb"[#\r\n]")
_ESCAPES = {ord("#"): b"#", ord(";"): b";", ord("\\"): b"\\", ord("n"): b"\n", ord("r"): b"\r"}
_EOL = (ord("\r"), ord("\n"))
# between records; NUL because telnet sends CR NUL for a bare CR
_BLANK = (ord("\r"), ord("\n"), ord(" "), ord("\t"), 0)


def _legacy_handler_name(encoding: str) -> str:
    """Register (once) a decode error handler that decodes bad UTF-8 bytes as ``encoding``."""
    name = f"smss-legacy-{codecs.lookup(encoding).name}"
    try:
        codecs.lookup_error(name)
    except LookupError:

        def handler(exc: UnicodeError) -> tuple:
            if not isinstance(exc, UnicodeDecodeError):
                raise exc
            bad = exc.object[exc.start : exc.end]
            return bad.decode(encoding, "replace"), exc.end

        codecs.register_error(name, handler)
    return name


class RecordParser:
    """Incremental parser of one connection's byte stream."""

    def __init__(self, max_record_bytes: int = 8192, legacy_encoding: str = "cp1250") -> None:
        self.max_record_bytes = max_record_bytes
        self._errors = _legacy_handler_name(legacy_encoding)
        self._state = _OUTSIDE
        self._phone = bytearray()
        self._text = bytearray()
        self._escape = False  # a backslash was the last byte seen in TEXT
        self._size = 0  # raw bytes of the current record
        self._overflow = False  # the record outgrew the limit: parsed on, not kept

    # -- public

    def feed(self, data: bytes) -> List[Event]:
        events: List[Event] = []
        pos, end = 0, len(data)
        while pos < end:
            pos = self._step(data, pos, events)
        return events

    def close(self) -> List[Event]:
        """End of stream: a record still open is complete (or an error)."""
        events: List[Event] = []
        self._end_record(events)
        self._state = _OUTSIDE
        return events

    # -- states

    def _step(self, data: bytes, pos: int, events: List[Event]) -> int:
        state = self._state
        if state == _OUTSIDE:
            byte = data[pos]
            if byte == 0x23:  # '#'
                self._begin_record()
            elif byte not in _BLANK:
                self._state = _JUNK
                events.append(RecordError(BAD_SYNTAX, "expected '#' at the start of a record"))
            return pos + 1
        if state == _JUNK:
            match = _JUNK_STOP.search(data, pos)
            if match is None:
                return len(data)
            if data[match.start()] == 0x23:
                self._begin_record()
            else:
                self._state = _OUTSIDE
            return match.end()
        if state == _PHONE:
            return self._in_phone(data, pos, events)
        return self._in_text(data, pos, events)

    def _in_phone(self, data: bytes, pos: int, events: List[Event]) -> int:
        match = _PHONE_STOP.search(data, pos)
        stop = match.start() if match else len(data)
        self._take(data[pos:stop], self._phone, events)
        if match is None:
            return stop
        byte = data[stop]
        if byte == 0x3B:  # ';'
            self._state = _TEXT
            self._count(1, events)
        else:
            self._end_record(events)
            if byte == 0x23:
                self._begin_record()
        return stop + 1

    def _in_text(self, data: bytes, pos: int, events: List[Event]) -> int:
        if self._escape:
            self._escape = False
            byte = data[pos]
            if byte in _EOL:  # a backslash at the end of the record is a backslash
                self._text += b"\\"
                self._end_record(events)
                return pos + 1
            replacement = _ESCAPES.get(byte)
            chunk = replacement if replacement is not None else b"\\" + data[pos : pos + 1]
            self._take(chunk, self._text, events, raw_size=1)
            return pos + 1
        match = _TEXT_STOP.search(data, pos)
        stop = match.start() if match else len(data)
        self._take(data[pos:stop], self._text, events)
        if match is None:
            return stop
        byte = data[stop]
        if byte == 0x5C:  # backslash
            self._escape = True
            self._count(1, events)
            return stop + 1
        self._end_record(events)
        if byte == 0x23:
            self._begin_record()
        return stop + 1

    # -- helpers

    def _begin_record(self) -> None:
        self._state = _PHONE
        self._phone.clear()
        self._text.clear()
        self._escape = False
        self._size = 1
        self._overflow = False

    def _take(self, chunk: bytes, into: bytearray, events: List[Event], raw_size: int = -1) -> None:
        """Append ``chunk`` unless the record has grown too long (then it is only counted)."""
        if self._count(len(chunk) if raw_size < 0 else raw_size, events):
            into += chunk

    def _count(self, size: int, events: List[Event]) -> bool:
        """Count raw bytes; False once the record is over the limit (reported once)."""
        self._size += size
        if self._size <= self.max_record_bytes:
            return True
        if not self._overflow:
            self._overflow = True
            events.append(
                RecordError(TOO_LONG, f"record longer than {self.max_record_bytes} bytes, skipped")
            )
            self._phone.clear()
            self._text.clear()
        return False

    def _end_record(self, events: List[Event]) -> None:
        state = self._state
        self._state = _OUTSIDE
        if self._overflow:
            pass  # already answered with TOO_LONG
        elif state == _TEXT:
            if self._escape:
                self._text += b"\\"
                self._escape = False
            events.append(Record(self._decode(self._phone), self._decode(self._text)))
        elif state == _PHONE and self._phone.strip():
            events.append(RecordError(BAD_SYNTAX, "missing ';' between phone number and text"))
        self._phone.clear()
        self._text.clear()
        self._escape = False
        self._overflow = False

    def _decode(self, raw: bytearray) -> str:
        return bytes(raw).decode("utf-8", self._errors)


def escape_text(text: str) -> str:
    """Escape ``text`` so that it parses back to itself."""
    return (
        text.replace("\\", "\\\\")
        .replace("#", "\\#")
        .replace(";", "\\;")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )


def format_record(phone: str, text: str) -> bytes:
    return f"#{phone};{escape_text(text)}".encode()
