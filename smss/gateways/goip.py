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
"all lines idle".
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Dict, Optional, Union

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


_ACCEPTED = re.compile(
    r"^\s*Sending\s*,\s*L(\d{1,3})\s+Send\s+SMS\s+to\s*:?\s*([^;]*?)\s*;\s*ID\s*:\s*"
    r"([0-9A-Za-z]{1,32})\s*$", re.IGNORECASE)
_ERROR = re.compile(r"^\s*ERROR\b\s*[,:]?\s*(.*?)\s*$", re.IGNORECASE | re.DOTALL)
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
    match = _ACCEPTED.match(text)
    if match:
        return Accepted(int(match.group(1)), match.group(2), match.group(3))
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
_ELEMENT = re.compile(r"<\s*(id|status|error)(\d{1,3})\s*(?:/>|>(.*?)<\s*/\s*\1\2\s*>)",
                      re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]*>")


def parse_status(body: Union[bytes, str]) -> Dict[int, LineStatus]:
    """Line number -> its LineStatus; GoipAnswerError when this is not the status page."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if not _ROOT.search(text):
        raise GoipAnswerError(f"not a send_status.xml page: {_excerpt(text)}")
    values: Dict[int, Dict[str, str]] = {}
    for match in _ELEMENT.finditer(text):
        name, line, content = match.group(1).lower(), int(match.group(2)), match.group(3)
        value = html.unescape(_TAGS.sub("", content or "")).strip()
        values.setdefault(line, {}).setdefault(name, value)
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
