"""What a Yeastar TG says (pure): WebCGI answers, AMI SMS events, CLI commands, USSD.

- WebCGI (``/cgi/WebCGI?1500101=account=...``) answers in AMI style:
  ``Response: Success`` / ``Message: Commit successfully!`` (a USSD request, 1500102,
  also echoes ``Request: 1,*100#`` and carries the answer as the Message).  Some pages
  come on one line; both are read.
- ``ReceivedSMS`` events: ``GsmSpan`` (port + 1: the first GSM port is span 2),
  ``Sender``, ``Smsc``, ``Recvtime`` (the TG's local time), ``Index``/``Total`` of a
  multipart message (1..Total; a single message is ``Index: 0`` of ``Total: 1`` on
  current firmware, ``1`` of ``1`` on older), ``ID``, and ``Content``: UTF-8
  form-encoded (a space is ``+`` as a TG200 writes it, or ``%20``), each part with a
  byte-order mark or none (a TG200's events as a Go AMI client logged them,
  github.com/gebv/yeastar-tg-sms api/README.md; seed 004).
- ``UpdateSMSSend`` events: the ``ID`` given in ``gsm send sms`` and ``Status`` 1
  (delivered) or 0 (failed).
- Commands for ``Action: smscommand``: ``gsm send sms <span> <number> "<text>" <id>`` and
  ``gsm send ussd <span> "<code>"``; the CLI reads a double-quoted argument with
  backslash escapes.  The TG URL-decodes the SMS text (``+`` would arrive as a space,
  ``%41`` as ``A``), so the text goes percent-encoded UTF-8, as every public client
  sends it (a Go client's ``url.QueryEscape``, a Node.js connector's
  ``encodeURIComponent``, a PHP client's ``urlencode``): ``+``, ``%``, quotes, line
  breaks and any script arrive as written, and the AMI line stays one ASCII line.  The
  USSD code is passed on as written (the trace shows ``*100%23`` reaching the modem
  undecoded).
- A USSD answer over AMI is a ``USSD Message: <UCS2 hex>`` line of the command output.
- ``gsm show spans`` and ``gsm show <span>``: each port's state and its module, network,
  signal and SIM (``parse_spans``, ``parse_span_info``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import quote, unquote_to_bytes

SPAN_OFFSET = 1  # GsmSpan = port + 1
BOM = "\ufeff"


class YeastarAnswerError(ValueError):
    """The TG answered something this module does not know."""


@dataclass(frozen=True)
class WebCgiAnswer:
    response: str  # "Success" or "Error"
    message: str
    request: str = ""

    @property
    def ok(self) -> bool:
        return self.response.lower() == "success"


_WEBCGI_KEY = re.compile(r"(?:^|(?<=\s))(Request|Response|Message)\s*:\s?", re.IGNORECASE)


def parse_webcgi(body: str) -> WebCgiAnswer:
    """A WebCGI answer; YeastarAnswerError when it has no ``Response:``."""
    text = body.replace("\r\n", "\n").strip()
    keys = list(_WEBCGI_KEY.finditer(text))
    values: Dict[str, str] = {}
    for number, match in enumerate(keys):
        end = keys[number + 1].start() if number + 1 < len(keys) else len(text)
        values.setdefault(match.group(1).lower(), text[match.end():end].strip())
    if "response" not in values or not values["response"]:
        flat = " ".join(text.split())
        raise YeastarAnswerError(f"unexpected WebCGI answer: {flat[:120]!r}")
    return WebCgiAnswer(values["response"].split()[0], values.get("message", ""),
                        values.get("request", ""))


_AUTH = re.compile(r"auth|passw|permission|denied|account|login", re.IGNORECASE)


def is_auth_failure(message: str) -> bool:
    return bool(_AUTH.search(message))


def quote_cli(text: str) -> str:
    """A double-quoted argument for the TG's CLI (``\\`` and ``"`` escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode_text(text: str) -> str:
    """The SMS text as the TG's ``gsm send sms`` decodes it: percent-encoded UTF-8 with
    only unreserved characters left as they are (a space is ``%20``, which the TG reads
    as a space whether it treats ``+`` as one or not)."""
    return quote(text.encode("utf-8"), safe="")


def sms_command(span: int, number: str, text: str, sms_id: str) -> str:
    if not re.fullmatch(r"\+?[0-9*#]{1,32}", number):
        raise ValueError(f"not a number the TG can send to: {number!r}")
    return f"gsm send sms {span} {number} {quote_cli(encode_text(text))} {sms_id}"


def ussd_command(span: int, code: str) -> str:
    return f"gsm send ussd {span} {quote_cli(code)}"


def decode_content(content: str) -> str:
    """``%EF%BB%BF%D0%95%D1%89%D1%91+%D0%BE%D1%82%D0%B2%D0%B5%D1%82+`` -> ``Ещё ответ ``:
    form decoding (``+`` and ``%20`` are spaces, ``%2B`` a plus), a leading BOM dropped.
    Bytes that are not UTF-8 are read as Latin-1 rather than lost."""
    data = unquote_to_bytes(content.replace("+", " "))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text[1:] if text.startswith(BOM) else text


def _number(value: Optional[str], name: str, default: Optional[int] = None) -> int:
    text = (value or "").strip()
    if not re.fullmatch(r"[0-9]{1,6}", text):
        if default is not None and not text:
            return default
        raise ValueError(f"{name} is {value!r}, not a number")
    return int(text)


@dataclass(frozen=True)
class ReceivedSms:
    span: int
    sender: str
    text: str
    recvtime: Optional[datetime]  # the TG's local time
    index: int = 1
    total: int = 1
    id: str = ""
    smsc: str = ""

    @property
    def port(self) -> int:
        return self.span - SPAN_OFFSET


def parse_received(fields: Mapping[str, str]) -> ReceivedSms:
    """A ``ReceivedSMS`` event's fields; ValueError for one that cannot be read."""
    span = _number(fields.get("GsmSpan"), "GsmSpan")
    total = _number(fields.get("Total"), "Total", 1)
    index = _number(fields.get("Index"), "Index", 1)
    if index == 0 and total <= 1:
        index = 1  # current firmware numbers a single message 0 of 1
    if not 1 <= index <= max(total, 1):
        raise ValueError(f"part {index} of {total}")
    moment: Optional[datetime] = None
    stamp = (fields.get("Recvtime") or "").strip()
    if stamp:
        try:
            moment = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S")
        except ValueError:
            moment = None  # an odd clock format is no reason to lose the message
    return ReceivedSms(span, (fields.get("Sender") or "").strip(),
                       decode_content(fields.get("Content") or ""), moment, index,
                       max(total, 1), (fields.get("ID") or "").strip(),
                       (fields.get("Smsc") or "").strip())


@dataclass(frozen=True)
class SendStatus:
    id: str
    delivered: bool
    status: int
    smsc: str = ""


def parse_send_status(fields: Mapping[str, str]) -> SendStatus:
    """An ``UpdateSMSSend`` event's fields; ValueError for one that cannot be read."""
    sms_id = (fields.get("ID") or "").strip()
    if not sms_id:
        raise ValueError("UpdateSMSSend without an ID")
    status = _number(fields.get("Status"), "Status")
    return SendStatus(sms_id, status == 1, status, (fields.get("Smsc") or "").strip())


@dataclass(frozen=True)
class Assembled:
    handles: Tuple[str, ...]
    parts: List[ReceivedSms]  # in Index order; all of them when complete
    complete: bool


def assemble(items: Sequence[Tuple[str, ReceivedSms]]) -> List[Assembled]:
    """Group parts of multipart messages: same span, sender, ID and Total; a part whose
    Index the group already has starts another group (a second message alike).  Items
    come in arrival order; groups keep the order of their first part."""
    groups: List[Tuple[tuple, List[str], Dict[int, ReceivedSms]]] = []
    for handle, sms in items:
        key = (sms.span, sms.sender, sms.id, sms.total)
        if sms.total <= 1:
            groups.append((key, [handle], {1: sms}))
            continue
        for group_key, handles, parts in groups:
            if group_key == key and sms.index not in parts and len(parts) < sms.total:
                handles.append(handle)
                parts[sms.index] = sms
                break
        else:
            groups.append((key, [handle], {sms.index: sms}))
    result = []
    for key, handles, parts in groups:
        ordered = [parts[index] for index in sorted(parts)]
        result.append(Assembled(tuple(handles), ordered, len(parts) == key[3] or key[3] <= 1))
    return result


_USSD_LINE = re.compile(r"USSD\s+Message\s*:\s*(.*)$", re.IGNORECASE)


def ussd_from_output(output: Sequence[str], fields: Sequence[Tuple[str, str]] = ()
                     ) -> Optional[str]:
    """The raw ``USSD Message`` of a ``gsm send ussd`` answer (output lines, or a header
    when the TG ends its output lines with CRLF); None when there is none."""
    for line in output:
        match = _USSD_LINE.search(line.strip())
        if match:
            return match.group(1).strip()
    for key, value in fields:
        if key.strip().lower() == "ussd message":
            return value.strip()
    return None


# `gsm show spans` and `gsm show <span>` (Yeastar's "How to Use TG SMS API": "Check port
# status" and "Check specific port information"; the same lines appear in public captures
# of TG100/TG200 answers): "GSM span 2: Power on, Provisioned, Up, Active,Standard", and
# "Key: value" lines such as "Model IMEI: 013227009596135", "Network Status: Registered
# (Home network)", "Signal Quality (0,31): 20".  A TG that ends these lines with CRLF has
# them parsed as AMI headers: both places are read.
_SPAN_LINE = re.compile(r"^GSM\s+span\s+(\d+)\s*:\s*(.*)$", re.IGNORECASE)
_INFO_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9 ()_,.-]*?)\s*:\s*(.*)$")
_AMI_HEADERS = {"response", "privilege", "actionid", "message"}
#: what ``smss doctor`` shows of ``gsm show <span>``
SPAN_FACTS = ("Manufacturer", "Model Name", "Model IMEI", "Revision", "Network Name",
              "Network Status", "Signal Quality (0,31)", "SIM IMSI", "SIM SMS Center Number",
              "State")


def _lines(output: Sequence[str], fields: Sequence[Tuple[str, str]]) -> List[str]:
    return [line.strip() for line in output] + [
        f"{key}: {value}" for key, value in fields if key.strip().lower() not in _AMI_HEADERS]


def parse_spans(output: Sequence[str], fields: Sequence[Tuple[str, str]] = ()
                ) -> Dict[int, str]:
    """``gsm show spans``: {span: its status text}."""
    spans = {}
    for line in _lines(output, fields):
        match = _SPAN_LINE.match(line)
        if match:
            spans[int(match.group(1))] = match.group(2).strip()
    return spans


def parse_span_info(output: Sequence[str], fields: Sequence[Tuple[str, str]] = ()
                    ) -> Dict[str, str]:
    """``gsm show <span>``: {"Model IMEI": "0132…", "Network Name": "…", …}."""
    info: Dict[str, str] = {}
    for line in _lines(output, fields):
        match = _INFO_LINE.match(line)
        if match:
            info.setdefault(match.group(1).strip(), match.group(2).strip())
    return info


def span_is_up(status: str) -> bool:
    """"Power on, Provisioned, Up, Active,Standard" is a usable port; "… Down …" or
    "… Undetected SIM Card …" is not."""
    words = [word.strip().lower() for word in status.split(",")]
    return "up" in words
