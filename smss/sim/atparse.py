"""Syntax of AT command lines (V.250 / 3GPP TS 27.007 section 4), pure.

Owns: splitting the text after the ``AT`` prefix into single commands - basic
ones (``E0``, ``V1``, ``Z``, ``I3``, ``&F``, ``S7=60``, ``D...``) and extended
ones (``+CMGF=1``, ``+CPMS?``, ``+CNMI=?``, ``^CURC=0``) concatenated with or
without ``;`` - and splitting an extended command's parameters (quoted strings
may contain commas and semicolons).  Knows nothing about what commands mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

EXEC = "exec"  # AT+CGMI, ATZ
SET = "set"  # AT+CMGF=1, ATE0
READ = "read"  # AT+CMGF?
TEST = "test"  # AT+CMGF=?

_EXT_PREFIXES = "+^$%*#!@"
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!%-./:_")


class AtSyntaxError(ValueError):
    """The command line is not valid AT syntax (the modem answers ERROR)."""


@dataclass(frozen=True)
class Command:
    """One command of a line: ``name`` upper case without ``AT`` (``+CMGF``, ``E``,
    ``&F``, ``S0``, ``D``, ``I``); ``args`` the raw parameter text."""

    name: str
    kind: str
    args: str = ""

    @property
    def label(self) -> str:
        """The name as counted and logged: ``AT+CMGF``, ``ATE``, ``AT`` for an empty line."""
        return "AT" + self.name


def strip_prefix(line: str) -> Optional[str]:
    """The text after the ``AT`` prefix (case-insensitive, leading junk skipped), or
    None when the line holds no ``AT`` at all (a modem ignores such a line)."""
    upper = line.upper()
    pos = upper.find("AT")
    if pos < 0:
        return None
    return line[pos + 2 :]


def parse_line(body: str) -> List[Command]:
    """Commands in ``body`` (the text after ``AT``).  An empty body is the bare ``AT``
    command.  AtSyntaxError for anything a modem would reject as a whole."""
    commands: List[Command] = []
    i = 0
    n = len(body)
    while i < n:
        ch = body[i]
        if ch in " ;":
            i += 1
            continue
        if ch in _EXT_PREFIXES:
            command, i = _extended(body, i)
        else:
            command, i = _basic(body, i)
        commands.append(command)
    if not commands:
        commands.append(Command("", EXEC))
    return commands


def _extended(body: str, i: int) -> tuple:
    start = i
    i += 1
    while i < len(body) and body[i].upper() in _NAME_CHARS:
        i += 1
    name = body[start:i].upper()
    if len(name) < 2:
        raise AtSyntaxError(f"extended command without a name at {body[start:]!r}")
    if body.startswith("=?", i):
        return Command(name, TEST), i + 2
    if body.startswith("?", i):
        return Command(name, READ), i + 1
    if body.startswith("=", i):
        end = _args_end(body, i + 1)
        return Command(name, SET, body[i + 1 : end].strip()), end
    return Command(name, EXEC), i


def _args_end(body: str, i: int) -> int:
    quoted = False
    while i < len(body):
        ch = body[i]
        if ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            return i
        i += 1
    if quoted:
        raise AtSyntaxError("unterminated quoted string")
    return i


def _basic(body: str, i: int) -> tuple:
    ch = body[i].upper()
    if ch == "D":  # dial: the rest of the line is the dial string
        return Command("D", SET, body[i + 1 :].strip()), len(body)
    if ch == "&":
        if i + 1 >= len(body) or not body[i + 1].isalpha():
            raise AtSyntaxError("'&' without a command letter")
        name = "&" + body[i + 1].upper()
        i += 2
    elif ch == "S" and i + 1 < len(body) and body[i + 1].isdigit():
        j = i + 1
        while j < len(body) and body[j].isdigit():
            j += 1
        name = "S" + str(int(body[i + 1 : j]))
        if body.startswith("=?", j):
            return Command(name, TEST), j + 2
        if body.startswith("?", j):
            return Command(name, READ), j + 1
        if body.startswith("=", j):
            k = j + 1
            while k < len(body) and body[k].isdigit():
                k += 1
            return Command(name, SET, body[j + 1 : k]), k
        return Command(name, EXEC), j
    elif ch.isalpha():
        name = ch
        i += 1
    else:
        raise AtSyntaxError(f"unexpected character {body[i]!r}")
    j = i
    while j < len(body) and body[j].isdigit():
        j += 1
    if j > i:
        return Command(name, SET, body[i:j]), j
    if body.startswith("?", i):
        return Command(name, READ), i + 1
    return Command(name, EXEC), i


def split_args(args: str) -> List[Optional[str]]:
    """Parameters of an extended command: quoted strings lose their quotes, empty
    parameters are None.  ``'1,"a,b",,15'`` -> ``['1', 'a,b', None, '15']``."""
    if not args.strip():
        return []
    out: List[Optional[str]] = []
    current: list = []
    quoted = False
    was_quoted = False
    for ch in args:
        if ch == '"':
            quoted = not quoted
            was_quoted = True
            continue
        if ch == "," and not quoted:
            out.append(_finish(current, was_quoted))
            current = []
            was_quoted = False
            continue
        current.append(ch)
    if quoted:
        raise AtSyntaxError("unterminated quoted string")
    out.append(_finish(current, was_quoted))
    return out


def _finish(chars: list, was_quoted: bool) -> Optional[str]:
    text = "".join(chars)
    if was_quoted:
        return text
    text = text.strip()
    return text or None
