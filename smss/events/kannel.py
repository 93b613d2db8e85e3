"""Kannel's dlr-url escapes (``%d``, ``%A``, ``%p`` ...) filled in for a delivery report.

Pure functions.  The behaviour follows Kannel itself: the escape table of the
user guide ("Parameters (Escape Codes)", doc/userguide/userguide.xml) and its
implementation, ``urltrans_fill_escape_codes`` in gw/urltrans.c: every value
is URL-encoded the way ``octstr_url_encode`` does it (space as ``+``, only
letters, digits and ``-_.!~*'()`` left as they are), ``%t`` is
``YYYY-MM-DD+HH:MM:SS`` in UTC, ``%%`` is a percent sign, an unknown escape is
left as it is, and an escape whose value the message does not have (meta-data,
billing info, UDH ...) becomes empty.  In a delivery report Kannel does not
swap sender and receiver (gw/dlr.c ``create_dlr_from_msg``, gw/smsbox.c), so
``%p`` is the number the SMS went to and ``%P`` the sender (``from``).

The report types (``%d``) are Kannel's (gw/dlr.h): 1 delivered to the phone,
2 not delivered to the phone, 4 queued on the SMSC, 8 delivered to the SMSC,
16 not delivered to the SMSC; ``%A`` is the report's text: ``ACK/`` and
``NACK/reason`` as gw/bb_smscconn.c makes them, ``Success``, ``Failed`` and
``Buffered`` as its AT modem driver (gw/smsc/smsc_at.c) does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import List
from urllib.parse import quote_plus

DELIVERED, UNDELIVERED, BUFFERED, SMSC_SUCCESS, SMSC_FAILED = 1, 2, 4, 8, 16
MAX_MASK = 63  # Kannel refuses a larger dlr-mask (smsbox_req_handle)

# Kannel escapes whose values smss does not have: they become empty.
_EMPTY = set("BcCDfmMoOuvV")


@dataclass(frozen=True)
class Report:
    """What one delivery report says, in Kannel's terms."""

    type: int  # %d
    answer: str  # %A (and the words of %a %b %k %s %S %r)
    phone: str  # %p: where the SMS went
    sender: str  # %P: the request's from
    smsc: str  # %i: the transport
    message_id: str  # %I
    foreign_id: str  # %F: the transport's message reference
    service: str  # %n: the API token's name
    time: datetime  # %t %T, UTC
    dlr_url: str = ""  # %R


def encode(value: str) -> str:
    """Kannel's octstr_url_encode."""
    return quote_plus(value, safe="-_.!~*'()")


def _plus_for_00(number: str) -> str:
    return "%2B" + encode(number[2:]) if number.startswith("00") else encode(number)


def fill(pattern: str, report: Report) -> str:
    """The dlr-url ``pattern`` with its escapes replaced for ``report``."""
    words = report.answer.split()
    when = report.time.replace(tzinfo=timezone.utc) if report.time.tzinfo is None else (
        report.time.astimezone(timezone.utc))
    result: List[str] = []
    next_word = 1
    pos = 0
    while pos < len(pattern):
        char = pattern[pos]
        if char != "%" or pos + 1 == len(pattern):
            result.append(char)
            pos += 1
            continue
        code = pattern[pos + 1]
        pos += 2
        if code == "d":
            result.append(str(report.type))
        elif code == "A" or code == "b":
            result.append(encode(report.answer))
        elif code == "a":
            result.append("+".join(encode(word) for word in words))
        elif code == "k":
            result.append(encode(words[0]) if words else "")
        elif code in "sS":
            if next_word < len(words):
                word = words[next_word]
                result.append(encode(word) if code == "s" else word.replace("*", "~"))
                next_word += 1
        elif code == "r":
            result.append("+".join(encode(word) for word in words[next_word:]))
        elif code == "p":
            result.append(encode(report.phone))
        elif code == "P":
            result.append(encode(report.sender))
        elif code == "q":
            result.append(_plus_for_00(report.phone))
        elif code == "Q":
            result.append(_plus_for_00(report.sender))
        elif code == "i":
            result.append(encode(report.smsc))
        elif code == "I":
            result.append(report.message_id)
        elif code == "F":
            result.append(encode(report.foreign_id))
        elif code == "n":
            result.append(encode(report.service))
        elif code == "R":
            result.append(encode(report.dlr_url))
        elif code == "t":
            result.append(when.strftime("%Y-%m-%d+%H:%M:%S"))
        elif code == "T":
            result.append(str(int(when.timestamp())))
        elif code == "%":
            result.append("%")
        elif code == "#":  # %#group#param#: meta-data, which smss messages do not carry
            first = pattern.find("#", pos)
            second = pattern.find("#", first + 1) if first >= 0 else -1
            if first >= 0 and second >= 0:
                pos = second + 1
        elif code in _EMPTY:
            pass
        else:
            result.append("%" + code)
    return "".join(result)
