"""Byte-level input framing of the simulated modem (pure, no I/O).

Owns: cutting the byte stream a terminal sends into command lines (ended by CR,
the S3 character), the ``A/`` repeat, backspace editing, and - after AT+CMGS /
AT+CMGW asked for it - collecting the message body up to Ctrl-Z (send) or ESC
(cancel).  Input may arrive split anywhere or several commands per read: bytes
are buffered and events are pulled one at a time with ``next_event()``, so the
device can switch to body mode between two events of the same read.

Each event carries the bytes it consumed (``raw``), which is what the modem
echoes when echo is on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

CR = 0x0D
LF = 0x0A
BS = 0x08
CTRL_Z = 0x1A
ESC = 0x1B

MAX_LINE = 1024  # a longer command line is discarded and answered ERROR
MAX_BODY = 4096  # a longer message body is discarded and answered with an error


@dataclass(frozen=True)
class Echo:
    """Bytes consumed without completing anything (echoed when echo is on)."""

    raw: bytes


@dataclass(frozen=True)
class Line:
    """A command line ended by CR; ``text`` is the line without the CR."""

    text: bytes
    raw: bytes


@dataclass(frozen=True)
class Repeat:
    """``A/``: repeat the previous command line."""

    raw: bytes


@dataclass(frozen=True)
class Overflow:
    """A command line or body grew past its limit and was discarded."""

    raw: bytes
    body: bool


@dataclass(frozen=True)
class Body:
    """The message body, up to (not including) Ctrl-Z."""

    data: bytes
    raw: bytes


@dataclass(frozen=True)
class Cancel:
    """ESC while a body was expected."""

    raw: bytes


@dataclass(frozen=True)
class Reprompt:
    """CR inside a text-mode body: the modem answers with a new ``> `` prompt."""

    raw: bytes


Event = object  # one of the dataclasses above


class InputFramer:
    """Turns a byte stream into events; see the module docstring."""

    def __init__(self) -> None:
        self._pending = bytearray()  # bytes fed, not yet looked at
        self._line = bytearray()  # the command line or body being collected
        self._body = False
        self._reprompt = False
        self._discarding = False  # after an overflow, skip to the next terminator
        self._after_cr = False  # the previous body byte was CR (text mode)

    @property
    def in_body(self) -> bool:
        return self._body

    def feed(self, data: bytes) -> None:
        self._pending += data

    def expect_body(self, reprompt: bool) -> None:
        """Collect the following bytes as a message body (until Ctrl-Z or ESC).
        ``reprompt``: CR inside the body yields ``Reprompt`` (text mode)."""
        self._body = True
        self._reprompt = reprompt
        self._line.clear()
        self._discarding = False
        self._after_cr = True  # the command line ended with CR: a LF right after it is dropped

    def reset(self) -> None:
        self._pending.clear()
        self._line.clear()
        self._body = False
        self._discarding = False

    def next_event(self) -> Optional[Event]:
        """The next complete event, or None when more input is needed.  Bytes
        consumed without an event are reported as ``Echo`` so echo stays in order."""
        consumed = bytearray()
        while self._pending:
            byte = self._pending[0]
            del self._pending[0]
            consumed.append(byte)
            event = self._body_byte(byte, consumed) if self._body else self._command_byte(
                byte, consumed
            )
            if event is not None:
                return event
        if consumed:
            return Echo(bytes(consumed))
        return None

    # -- command mode
    def _command_byte(self, byte: int, consumed: bytearray) -> Optional[Event]:
        if byte == CR:
            if self._discarding:
                self._discarding = False
                return Echo(bytes(consumed))
            text = bytes(self._line)
            self._line.clear()
            return Line(text, bytes(consumed))
        if self._discarding or byte in (LF, 0, CTRL_Z, ESC):
            return None
        if byte in (BS, 0x7F):
            if self._line:
                del self._line[-1]
            return None
        self._line.append(byte)
        if len(self._line) == 2 and self._line.upper() == b"A/":
            self._line.clear()
            return Repeat(bytes(consumed))
        if len(self._line) > MAX_LINE:
            self._line.clear()
            self._discarding = True
            return Overflow(bytes(consumed), body=False)
        return None

    # -- body mode
    def _body_byte(self, byte: int, consumed: bytearray) -> Optional[Event]:
        if byte == CTRL_Z:
            data = bytes(self._line)
            self._line.clear()
            self._body = False
            if self._discarding:
                self._discarding = False
                return Overflow(bytes(consumed), body=True)
            return Body(data, bytes(consumed))
        if byte == ESC:
            self._line.clear()
            self._body = False
            self._discarding = False
            return Cancel(bytes(consumed))
        if self._discarding:
            return None
        after_cr, self._after_cr = self._after_cr, False
        if byte == CR and self._reprompt:
            self._line.append(LF)
            self._after_cr = True
            return Reprompt(bytes(consumed))
        if byte == LF and after_cr:
            return None  # CR LF from the terminal counts as one line break
        if byte in (BS, 0x7F):
            if self._line:
                del self._line[-1]
            return None
        self._line.append(byte)
        if len(self._line) > MAX_BODY:
            self._line.clear()
            self._discarding = True
        return None
