"""Sans-I/O parser of what an AT modem says: bytes in, events out.

The parser knows which command is pending (``begin``) so it can tell the
answer to that command from unsolicited result codes that arrive at any time,
including in the middle of an ``AT+CMGS`` exchange.  It never does I/O and
never raises on input: noise is dropped, overlong lines are discarded and
reported, and the same bytes give the same events however they are split
into chunks.

Events:

- ``Echo``: the modem echoing the pending command (or the PDU typed after the prompt).
- ``Info``: an information line belonging to the pending command.
- ``Prompt``: the ``> `` of ``AT+CMGS``/``AT+CMGW`` (it has no line terminator).
- ``Final``: a final result code: ``OK``, ``ERROR``, ``+CME ERROR: n``, ``+CMS ERROR: n``
  (also verbose texts), and for dial commands ``NO CARRIER``, ``BUSY``, ...
- ``Unsolicited``: everything else: ``+CMTI``, ``+CDS`` (with the PDU of the next line),
  ``+CUSD``, ``RING``, ``+CREG:``, ``^RSSI`` ..., and any stray line while nothing is pending.
- ``Discarded``: bytes thrown away (a line longer than ``max_line``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Union

from .errors import code_for_text


@dataclass(frozen=True)
class Echo:
    text: str


@dataclass(frozen=True)
class Info:
    text: str


@dataclass(frozen=True)
class Prompt:
    pass


@dataclass(frozen=True)
class Final:
    text: str  # the line as received
    ok: bool
    family: Optional[str] = None  # "CMS", "CME" or None
    code: Optional[int] = None
    reason: Optional[str] = None  # verbose text given instead of (or without) a number


@dataclass(frozen=True)
class Unsolicited:
    name: str  # "+CMTI", "RING", "^RSSI"; "" when the line has no recognisable name
    args: str  # what follows "name:", stripped
    text: str  # the whole line
    pdu: Optional[str] = None  # the second line of +CMT / +CDS / +CBM


@dataclass(frozen=True)
class Discarded:
    data: bytes
    why: str


Event = Union[Echo, Info, Prompt, Final, Unsolicited, Discarded]

# Final result codes of every command.
_FINAL_OK = {"OK"}
_FINAL_ERROR = {"ERROR", "COMMAND NOT SUPPORT", "TOO MANY PARAMETERS", "ABORTED"}
# Final only for call commands (ATD, ATA, ATO); otherwise a call event, i.e. unsolicited.
_CALL_RESULTS = {"NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE"}
# Names that are unsolicited unless the pending command asked for them.
_URC_NAMES = frozenset(
    {
        "+CMTI", "+CMT", "+CDS", "+CDSI", "+CBM", "+CBMI", "+CUSD", "+CRING", "+CLIP", "+CCWA",
        "+CREG", "+CGREG", "+CEREG", "+C5GREG", "+CIEV", "+CPIN", "+CGEV", "+CFUN", "+CSSI",
        "+CSSU", "+CTZV", "+CTZE", "+CTZU", "+NITZ", "+STIN", "+QIND", "+QUSIM", "+CUSATP",
        "+CUSATEND", "+PBREADY", "*PSUTTZ", "+CMGS",  # +CMGS only when no AT+CMGS is pending
    }
)
_URC_WORDS = frozenset(
    {"RING", "RDY", "CALL READY", "SMS READY", "SMS DONE", "PB DONE", "NORMAL POWER DOWN",
     "+PBREADY", "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE"}
)
# URCs followed by a second line (PDU mode: the PDU; text mode +CMT/+CBM: the text).
_TWO_LINE = frozenset({"+CMT", "+CBM"})
_HEX = re.compile(r"^[0-9A-Fa-f]+$")
_DIGITS = re.compile(r"^[0-9]+$")  # not str.isdigit(): lines are Latin-1 and "\xb3" is a digit
_COMMAND_NAMES = re.compile(r"(?:^AT|;)\s*([+^*$#%!][A-Z0-9]+)", re.IGNORECASE)
_ERROR_LINE = re.compile(r"^\+(CME|CMS) ERROR\s*:?\s*(.*)$", re.IGNORECASE)
_PROMPT_COMMANDS = re.compile(r"^AT\s*\+CMG[SWC]\s*=", re.IGNORECASE)
_CALL_COMMANDS = re.compile(r"^AT\s*(D|A\b|A$|O\b|O$)", re.IGNORECASE)
# Bytes that never belong to a line: C0 controls except CR/LF, DEL, 0xFF (line noise).
_DROP = bytes(range(0x00, 0x20)).replace(b"\r", b"").replace(b"\n", b"") + b"\x7f\xff"
_DROP_SET = frozenset(_DROP)


def command_names(command: str) -> List[str]:
    """The response names a command line expects: ``AT+CSQ`` -> ["+CSQ"]."""
    return [name.upper() for name in _COMMAND_NAMES.findall(command.strip())]


def split_name(line: str) -> tuple:
    """(name, args) of a line: "+CMTI: "SM",3" -> ("+CMTI", '"SM",3')."""
    head, sep, tail = line.partition(":")
    if sep and head and " " not in head.strip() and len(head) <= 24:
        return head.strip().upper(), tail.strip()
    return "", line.strip()


def parse_final(line: str) -> Optional[Final]:
    """The final result code in ``line`` (any command), or None."""
    upper = line.strip().upper()
    if upper in _FINAL_OK:
        return Final(line, True)
    if upper in _FINAL_ERROR:
        return Final(line, False)
    match = _ERROR_LINE.match(line.strip())
    if match:
        family = match.group(1).upper()
        detail = match.group(2).strip()
        if _DIGITS.match(detail):
            return Final(line, False, family, int(detail))
        return Final(line, False, family, code_for_text(family, detail), detail or None)
    return None


class AtParser:
    """Turns the byte stream of a modem into events; see the module docstring."""

    def __init__(self, *, max_line: int = 8192) -> None:
        self.max_line = max_line
        self._buf = bytearray()
        self._overflow = False  # inside a line that was too long: skip to its end
        self._command: Optional[str] = None
        self._names: List[str] = []
        self._expect_prompt = False
        self._pdu: Optional[str] = None
        self._held: Optional[Unsolicited] = None  # +CMT/+CDS waiting for its PDU line
        self._joining: Optional[tuple] = None  # (+CUSD event kind, text so far, lines)

    # --- what the engine tells the parser
    @property
    def pending(self) -> Optional[str]:
        """The command whose final result code has not arrived yet."""
        return self._command

    @property
    def expecting_prompt(self) -> bool:
        return self._expect_prompt

    def begin(self, command: str, *, prompt: Optional[bool] = None) -> None:
        """A command line was written.  ``prompt`` defaults to true for AT+CMGS/CMGW/CMGC."""
        self._command = command.strip()
        self._names = command_names(command)
        if prompt is None:
            prompt = bool(_PROMPT_COMMANDS.match(self._command))
        self._expect_prompt = prompt
        self._pdu = None

    def begin_pdu(self, pdu: str) -> None:
        """The PDU (and Ctrl-Z) was written after the prompt; its echo is not an answer."""
        self._expect_prompt = False
        self._pdu = pdu.strip().upper()

    def abort(self) -> None:
        """Forget the pending command (it timed out); later lines are unsolicited."""
        self._command = None
        self._names = []
        self._expect_prompt = False
        self._pdu = None

    def reset(self) -> None:
        """Forget everything, including a partial line (after the port was re-opened)."""
        self.abort()
        self._buf.clear()
        self._overflow = False
        self._held = None
        self._joining = None

    # --- bytes in, events out
    def feed(self, data: bytes) -> List[Event]:
        events: List[Event] = []
        for byte in data:
            if byte in (0x0D, 0x0A):
                if self._overflow:
                    self._overflow = False
                    continue
                if self._buf:
                    line = self._buf.decode("latin-1").strip()
                    self._buf.clear()
                    if line:
                        self._line(line, events)
                continue
            if byte in _DROP_SET or self._overflow:
                continue
            if not self._buf and byte == 0x20:
                continue  # leading blanks carry nothing
            self._buf.append(byte)
            if len(self._buf) > self.max_line:
                why = f"line longer than {self.max_line} bytes"
                events.append(Discarded(bytes(self._buf), why))
                self._buf.clear()
                self._overflow = True
                continue
            if self._expect_prompt and byte == 0x20 and self._buf == b"> ":
                self._buf.clear()
                self._expect_prompt = False
                self._flush_held(events)
                events.append(Prompt())
        return events

    def flush(self) -> List[Event]:
        """Events held back waiting for a next line that is not coming (e.g. +CDS without PDU)."""
        events: List[Event] = []
        self._flush_held(events)
        return events

    # --- one complete line
    def _line(self, line: str, events: List[Event]) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            if held.name in _TWO_LINE and not _looks_pdu_mode(held.args):
                events.append(Unsolicited(held.name, held.args, held.text, line))  # text mode
                return
            if _HEX.match(line) and len(line) % 2 == 0:
                events.append(Unsolicited(held.name, held.args, held.text, line.upper()))
                return
            events.append(held)  # no PDU after all; this line is something else
        if self._joining is not None:
            if parse_final(line) is None and self._joining[2] < 20:
                kind, text, count = self._joining
                text = text + "\n" + line
                if text.count('"') % 2 == 0:
                    self._joining = None
                    self._emit_cusd(kind, text, events)
                else:
                    self._joining = (kind, text, count + 1)
                return
            kind, text, _ = self._joining
            self._joining = None
            self._emit_cusd(kind, text, events)

        if self._expect_prompt and line == ">":
            self._expect_prompt = False
            events.append(Prompt())
            return
        if self._command is not None:
            upper = line.upper()
            if upper == self._command.upper() or (self._pdu and upper == self._pdu):
                events.append(Echo(line))
                return
            if self._pdu and upper.startswith("> ") and upper[2:].strip() == self._pdu:
                events.append(Echo(line))
                return
        final = parse_final(line)
        if final is not None:
            self._finish()
            events.append(final)
            return
        upper = line.upper()
        if upper in _CALL_RESULTS or upper.startswith("CONNECT"):
            if self._command is not None and _CALL_COMMANDS.match(self._command):
                self._finish()
                events.append(Final(line, upper.startswith("CONNECT")))
                return
        name, args = split_name(line)
        if not name and (upper in _URC_WORDS or upper.startswith("^")):
            name = upper if upper in _URC_WORDS else upper.split()[0]
        if self._command is not None and name and name in self._names:
            kind = "info"
        elif name in _URC_NAMES or upper in _URC_WORDS or (name.startswith("^")):
            kind = "urc"
        elif self._command is not None:
            kind = "info"
        else:
            kind = "urc"
        if name == "+CUSD" and line.count('"') % 2 == 1:
            self._joining = (kind, line, 0)
            return
        if kind == "info":
            events.append(Info(line))
            return
        event = Unsolicited(name, args, line)
        if name in _TWO_LINE or (name == "+CDS" and _DIGITS.match(args)):
            self._held = event
            return
        events.append(event)

    def _emit_cusd(self, kind: str, text: str, events: List[Event]) -> None:
        if kind == "info":
            events.append(Info(text))
        else:
            name, args = split_name(text)
            events.append(Unsolicited(name, args, text))

    def _flush_held(self, events: List[Event]) -> None:
        if self._held is not None:
            events.append(self._held)
            self._held = None
        if self._joining is not None:
            kind, text, _ = self._joining
            self._joining = None
            self._emit_cusd(kind, text, events)

    def _finish(self) -> None:
        self._command = None
        self._names = []
        self._expect_prompt = False
        self._pdu = None


def _looks_pdu_mode(args: str) -> bool:
    """+CMT/+CBM in PDU mode end with a numeric length ("+CMT: ,24", "+CBM: 88")."""
    last = args.rsplit(",", 1)[-1].strip()
    return bool(_DIGITS.match(last)) and args.count(",") <= 1
