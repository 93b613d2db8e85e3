"""What a GoIP says over HTTP (pure): the send answer and ``send_status.xml``.

The send answer (``/default/en_US/send.html``) is one line:
``Sending, L1 Send SMS to 89991234567; ID:55c489da`` when the GoIP took the message
(firmwares differ in spaces and a colon after "to"), or ``ERROR, <reason>`` (e.g.
``ERROR,L2 GSM logout``).  ``send_status.xml`` shows, per line (channel), the last job:
``<idN>``, ``<statusN>`` (``DONE``, ``ERRORDONE``, something else while it is under way,
empty when the line has done nothing yet) and ``<errorN>``: the failure text, or for a
USSD request the network's answer.  Empty elements may be written ``<id2/>``.  The
parser is tolerant of what these firmwares write (unescaped text, missing declaration)
but insists on the ``send-sms-status`` document, so an error page is never read as
"all lines idle".  Every parser takes time linear in what it reads (one pass over
the tags, no backtracking pattern), and a status page over ``MAX_STATUS_BYTES`` is
refused unread.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Dict, Optional, Tuple, Union

MAX_STATUS_BYTES = 256 * 1024  # a GoIP-32 page is about 15 kB

DONE, ERRORDONE = "DONE", "ERRORDONE"
FINAL = (DONE, ERRORDONE)

# why the GoIP refused a request: what the dispatcher should make of it
AUTH, LINE_DOWN, BUSY, OTHER = "auth", "line-down", "busy", "other"


class GoipAnswerError(ValueError):
    """The GoIP answered something this module does not know."""


@dataclass(frozen=True)
class Accepted:
    line: int
    phone: str
    id: str


@dataclass(frozen=True)
class Refused:
    reason: str
    why: str  # AUTH, LINE_DOWN, BUSY or OTHER


# Every pattern here runs over what a device sent, so none may backtrack: no two
# quantifiers that can take the same characters stand next to each other, and the text
# is stripped before matching instead of with ``\s*$``.
_ACCEPTED = re.compile(
    r"Sending\s*,\s*L(\d{1,3})\s+Send\s+SMS\s+to\b([^;]*);\s*ID\s*:\s*([0-9A-Za-z]{1,32})",
    re.IGNORECASE)
_ERROR = re.compile(r"ERROR\b[\s,:]*(.*)", re.IGNORECASE | re.DOTALL)
_AUTH = re.compile(r"passw|auth|user\s*name|username|login\s+fail|permission", re.IGNORECASE)
_LINE_DOWN = re.compile(r"logout|log\s*out|not\s*log|no\s*sim|sim\s*not|not\s*ready|"
                        r"unregist|no\s*network|disabled", re.IGNORECASE)
_BUSY = re.compile(r"busy", re.IGNORECASE)


def classify(reason: str) -> str:
    if _AUTH.search(reason):
        return AUTH
    if _LINE_DOWN.search(reason):
        return LINE_DOWN
    if _BUSY.search(reason):
        return BUSY
    return OTHER


def parse_send_answer(body: str) -> Union[Accepted, Refused]:
    """The answer of ``send.html``; GoipAnswerError when it is neither form."""
    text = body.strip()
    match = _ACCEPTED.fullmatch(text)
    if match:
        return Accepted(int(match.group(1)), match.group(2).strip().lstrip(":").strip(),
                        match.group(3))
    match = _ERROR.match(text)
    if match:
        reason = " ".join(match.group(1).split()) or "no reason given"
        return Refused(reason, classify(reason))
    raise GoipAnswerError(f"unexpected answer from the GoIP: {_excerpt(text)}")


def parse_form_answer(body: str) -> Optional[Refused]:
    """The answer of the ``sms_info.html`` form: an HTML page when it took the request
    (the outcome is then read from the status page), or an ``ERROR`` text."""
    match = _ERROR.match(_TAGS.sub(" ", body).strip())
    if match:
        reason = " ".join(match.group(1).split()) or "no reason given"
        return Refused(reason, classify(reason))
    return None


_MAYBE_SENT = re.compile(r"\bsen[dt]\b.*\bbut\b|not\s+reply|no\s+reply|time\s*out",
                        re.IGNORECASE)


def errordone_maybe_sent(error: str) -> bool:
    """Does an ERRORDONE text say the message went out and only its confirmation is
    missing (``send, but provider not reply.``)?"""
    return bool(_MAYBE_SENT.search(error))


@dataclass(frozen=True)
class LineStatus:
    line: int
    id: str = ""
    status: str = ""
    error: str = ""

    @property
    def final(self) -> bool:
        return self.status.upper() in FINAL

    @property
    def failed(self) -> bool:
        return self.status.upper() == ERRORDONE

    @property
    def idle(self) -> bool:
        """Nothing under way on this line (its last job finished, or it never had one)."""
        return self.final or (not self.status and not self.id)


_ROOT = re.compile(r"<\s*send-sms-status\b", re.IGNORECASE)
# an opening, closing or empty tag of a line's element: <id1>, </ status1 >, <error2/>
_TAG = re.compile(r"<\s*(/\s*)?(id|status|error)(\d{1,3})\s*(/\s*)?>", re.IGNORECASE)
_TAGS = re.compile(r"<[^<>]*>")
MAX_VALUE = 4096  # characters of one element read (a USSD answer is at most 182)


def parse_status(body: Union[bytes, str]) -> Dict[int, LineStatus]:
    """Line number -> its LineStatus; GoipAnswerError when this is not the status page."""
    if len(body) > MAX_STATUS_BYTES:
        raise GoipAnswerError(f"a send_status.xml page larger than {MAX_STATUS_BYTES} "
                              f"bytes ({len(body)}) is no GoIP's")
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if not _ROOT.search(text):
        raise GoipAnswerError(f"not a send_status.xml page: {_excerpt(text)}")
    values: Dict[int, Dict[str, str]] = {}
    opened: Dict[Tuple[str, int], int] = {}  # element -> where its first unclosed content starts
    for tag in _TAG.finditer(text):  # one pass; each element's text is read once
        name, line = tag.group(2).lower(), int(tag.group(3))
        found = values.setdefault(line, {})
        if tag.group(4) is not None and tag.group(1) is None:  # <id2/>
            found.setdefault(name, "")
        elif tag.group(1) is None:  # <id1>: the text starts after the first one
            opened.setdefault((name, line), tag.end())
        else:  # </id1>: the element ends at the first closing tag after its opening
            start = opened.pop((name, line), None)
            if start is not None and name not in found:
                content = text[start:min(tag.start(), start + MAX_VALUE)]
                found[name] = html.unescape(_TAGS.sub("", content)).strip()
    values = {line: found for line, found in values.items() if found}
    if not values:
        raise GoipAnswerError(f"send_status.xml lists no line: {_excerpt(text)}")
    return {line: LineStatus(line, v.get("id", ""), v.get("status", ""), v.get("error", ""))
            for line, v in values.items()}


def render_status(lines: Dict[int, LineStatus]) -> str:
    """A status page as the GoIP writes it (for the device simulator and round-trip tests)."""
    parts = ['<?xml version="1.0" encoding="utf-8"?>', "<send-sms-status>"]
    for number in sorted(lines):
        status = lines[number]
        for name, value in (("id", status.id), ("status", status.status),
                            ("error", status.error)):
            parts.append(f"<{name}{number}>{html.escape(value, quote=False)}</{name}{number}>")
    parts.append("</send-sms-status>")
    return "\n".join(parts) + "\n"


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat[:120] + ("..." if len(flat) > 120 else ""))
