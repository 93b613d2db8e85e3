"""A Yeastar TG gateway as a transport: WebCGI or AMI to send, AMI events to receive.

Sending: WebCGI (``1500101``; the TG queues the message per port itself, no status
comes back) or AMI ``smscommand`` ``gsm send sms <span> <number> "<text>" <id>`` (span
= port + 1; the text percent-encoded, see ``smss.gateways.yeastar``), whose
``UpdateSMSSend`` event with our id later says delivered (1) or failed (0).  Several
ports: round robin.

Receiving: the TG pushes ``ReceivedSMS`` events to connected AMI sessions only; what
arrives while nobody is connected stays in its web inbox and never reaches us.  So
the AMI session is kept open with Ping (``keepalive``) and reconnected with backoff,
and every SMS event is written to a spool file (fsynced) the moment it arrives; the
dispatcher stores it from there and only then is it removed.  Run
``check_and_send --loop`` for a Yeastar: a one-shot pass only hears what arrives while
it runs.  Events of ports this transport does not own are left to the transport that
does.  Multipart messages (``Index``/``Total``) are joined; parts whose siblings never
come are stored with what arrived after ``multipart_timeout``.

USSD: WebCGI ``1500102`` (the answer is the Message) or AMI ``gsm send ussd``, whose
output carries the answer as UCS2 hex.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import quote

from smss.gateways import yeastar as proto
from smss.gateways.ami import AmiParser, AmiProtocolError, Packet
from smss.gateways.amiclient import AmiClient, AmiDown, AmiRefused, split_address
from smss.gateways.http import Answer, Base, HttpDown, request
from smss.gsm.alphabet import plan_parts
from smss.smpp.spool import Spool
from smss.statefiles import DEFAULT_STATE_DIR, legacy
from smss.transports.base import (
    DOWN,
    OPERATOR,
    PERMANENT,
    TEMPORARY,
    DeliveryReport,
    InboundMessage,
    Inbox,
    Probe,
    SendFailed,
    Sent,
    Transport,
    TransportState,
    wait_until,
)

log = logging.getLogger(__name__)

WEBCGI_PATH = "/cgi/WebCGI"
EVENTS = ("ReceivedSMS", "UpdateSMSSend")
_CLI_TROUBLE = re.compile(r"error|fail|invalid|not\s+exist|unknown|usage|not\s+ready|"
                          r"not\s+available", re.IGNORECASE)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class YeastarSettings:
    base: Optional[Base]
    ami_host: str = ""
    ami_port: int = 5038
    account: str = ""
    password: str = ""
    ports: Tuple[int, ...] = (1,)
    send_via: str = "webcgi"
    http_timeout: float = 10.0
    response_timeout: float = 30.0
    keepalive: float = 60.0
    reconnect_delay: float = 1.0
    reconnect_max_delay: float = 60.0
    timezone: str = ""
    spool: str = ""
    legacy_spool: str = ""  # where versions before [dispatcher] state_dir kept it
    name: str = ""
    multipart_timeout: float = 86400.0

    @property
    def host(self) -> str:
        return self.base.host if self.base is not None else self.ami_host

    @property
    def transport_name(self) -> str:
        ports = "+".join(f"GSM{port}" for port in self.ports)
        return (self.name or f"yeastar:{self.host}/{ports}")[:128]

    @classmethod
    def from_config(cls, config) -> "YeastarSettings":
        get = config.get
        url, ami = get("yeastar", "url"), get("yeastar", "ami")
        if not url and not ami:
            raise ValueError("no Yeastar configured: set [yeastar] url and/or ami")
        base = Base.parse(url) if url else None
        ami_host, ami_port = split_address(ami) if ami else ("", 5038)
        ports = []
        for item in get("yeastar", "ports"):
            if not item.isdigit() or not 1 <= int(item) <= 256:
                raise ValueError(f"[yeastar] ports: {item!r} is not a GSM port number")
            ports.append(int(item))
        if not ports:
            raise ValueError("[yeastar] ports: name at least one port")
        via = get("yeastar", "send_via")
        if via == "auto":
            via = "ami" if ami else "webcgi"
        if via == "ami" and not ami:
            raise ValueError("[yeastar] send_via = ami needs [yeastar] ami")
        if via == "webcgi" and base is None:
            raise ValueError("[yeastar] send_via = webcgi needs [yeastar] url")
        zone = get("yeastar", "timezone")
        if zone:
            from zoneinfo import ZoneInfo

            try:
                ZoneInfo(zone)
            except (ValueError, LookupError) as exc:  # ZoneInfoNotFoundError is a KeyError
                raise ValueError(f"[yeastar] timezone: unknown zone {zone!r}") from exc
        settings = cls(base=base, ami_host=ami_host, ami_port=ami_port,
                       account=get("yeastar", "account"), password=get("yeastar", "password"),
                       ports=tuple(dict.fromkeys(ports)), send_via=via,
                       http_timeout=get("yeastar", "http_timeout"),
                       response_timeout=get("yeastar", "response_timeout"),
                       keepalive=get("yeastar", "keepalive"),
                       reconnect_delay=get("yeastar", "reconnect_delay"),
                       reconnect_max_delay=get("yeastar", "reconnect_max_delay"),
                       timezone=zone, name=get("yeastar", "name"),
                       multipart_timeout=get("dispatcher", "multipart_timeout"))
        spool_name = (f"{os.path.basename(get('dispatcher', 'lockfile'))}."
                      f"{_safe(settings.transport_name)}.yeastar-inbox")
        spool = get("yeastar", "spool") or os.path.join(get("dispatcher", "state_dir"), spool_name)
        old_spool = "" if get("yeastar", "spool") else legacy(
            os.path.join(DEFAULT_STATE_DIR, spool_name), spool)
        return dataclasses.replace(settings, spool=spool, legacy_spool=old_spool)


class YeastarTransport(Transport):
    def __init__(self, settings: YeastarSettings, *, receive: bool = True,
                 now: Callable[[], datetime] = _utcnow,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.name = settings.transport_name
        self._receive = receive and bool(settings.ami_host)
        self.tracks_delivery = settings.send_via == "ami" and self._receive
        self._now, self._clock = now, clock
        self._spans = {port + proto.SPAN_OFFSET for port in settings.ports}
        self._spool = Spool(settings.spool, legacy=settings.legacy_spool)
        self._client: Optional[AmiClient] = None
        self._down_reason = "not connected"
        self._retry_at = 0.0
        self._backoff = 0.0
        self._signal = threading.Event()
        self._next_port = 0
        self._open = False

    @classmethod
    def from_config(cls, config, receive: bool = True) -> "YeastarTransport":
        try:
            settings = YeastarSettings.from_config(config)
        except ValueError as exc:
            raise SendFailed(OPERATOR, str(exc)) from None
        return cls(settings, receive=receive)

    # -- life

    def open(self) -> None:
        if self._receive:
            try:
                self._spool.open()
            except OSError as exc:
                raise SendFailed(OPERATOR, f"{self.name}: cannot use the inbox file "
                                 f"{self.settings.spool}: {exc}") from None
        self._open = True
        if not self.settings.ami_host:
            return
        try:
            self._connect()
        except SendFailed as exc:
            if self.settings.send_via == "ami" or exc.kind == OPERATOR:
                self.close()
                raise
            log.error("%s: receiving is down: %s", self.name, exc.reason)
        if self._receive and len(self._spool):
            self._signal.set()  # left by an earlier process

    def close(self) -> None:
        self._open = False
        client, self._client = self._client, None
        if client is not None:
            client.close()
        if self._receive:
            self._spool.close()

    def _connect(self) -> AmiClient:
        s = self.settings
        client = AmiClient(s.ami_host, s.ami_port, s.account, s.password,
                           timeout=s.response_timeout, keepalive=s.keepalive,
                           on_event=self._on_event, on_down=self._on_down, name=self.name)
        try:
            client.connect()
        except AmiRefused as exc:
            self._failed_connect(str(exc))
            raise SendFailed(OPERATOR, f"{self.name}: {exc}: check [yeastar] account and "
                             "password (and that the TG's API/AMI is enabled)") from None
        except AmiDown as exc:
            self._failed_connect(str(exc))
            raise SendFailed(DOWN, f"{self.name}: {exc}") from None
        self._client = client
        self._backoff = 0.0
        self._retry_at = 0.0
        log.info("%s: AMI connected (%s)", self.name, client.banner)
        return client

    def _failed_connect(self, reason: str) -> None:
        s = self.settings
        self._down_reason = reason
        self._backoff = min(max(self._backoff * 2, s.reconnect_delay), s.reconnect_max_delay)
        self._retry_at = self._clock() + self._backoff

    def _on_down(self, reason: str) -> None:
        self._down_reason = reason
        self._signal.set()

    def _ami(self) -> AmiClient:
        """The live AMI session, reconnecting when the backoff allows; SendFailed."""
        client = self._client
        if client is not None and client.alive:
            return client
        if not self._open:
            raise SendFailed(DOWN, f"{self.name}: not open")
        if client is not None:
            self._down_reason = client.down_reason or self._down_reason
            self._client = None
            self._failed_connect(self._down_reason)
            self._retry_at = self._clock()  # a link that was up gets one attempt at once
        wait = self._retry_at - self._clock()
        if wait > 0:
            raise SendFailed(DOWN, f"{self.name}: AMI down ({self._down_reason}); next "
                             f"attempt in {wait:.1f}s")
        log.info("%s: reconnecting AMI (%s)", self.name, self._down_reason)
        return self._connect()

    def _reconnect_due(self) -> None:
        if not self._open or not self.settings.ami_host:
            return
        client = self._client
        if client is not None and client.alive:
            return
        if client is None and self._retry_at > self._clock():
            return
        try:
            self._ami()
        except SendFailed as exc:
            log.warning("%s", exc.reason)

    # -- events (the AMI reader thread)

    def _on_event(self, packet: Packet) -> None:
        if not self._receive or packet.event not in EVENTS:
            return
        if packet.event == "ReceivedSMS":
            span = (packet.get("GsmSpan") or "").strip()
            if span.isdigit() and int(span) not in self._spans:
                return  # another port's: its own transport takes it
        try:
            self._spool.add([(packet.raw, packet.event or "")])
        except OSError as exc:
            log.error("%s: cannot keep a %s event in %s (%s): it is lost; it stays in the "
                      "TG's web inbox", self.name, packet.event, self.settings.spool, exc)
            return
        self._signal.set()

    # -- sending

    def _port(self) -> int:
        ports = self.settings.ports
        port = ports[self._next_port % len(ports)]
        self._next_port = (self._next_port + 1) % len(ports)
        return port

    def send(self, phone: str, text: str, progress=None) -> Sent:  # whole messages only
        text = self.sendable(text)
        port = self._port()
        if self.settings.send_via == "ami":
            return self._send_ami(port, phone, text)
        return self._send_webcgi(port, phone, text)

    def _webcgi(self, code: str, fields: Sequence[Tuple[str, str]]) -> Answer:
        s = self.settings
        assert s.base is not None
        query = f"{code}=account={quote(s.account, safe='')}&" + "&".join(
            f"{key}={quote(value, safe='')}" for key, value in
            [("password", s.password)] + list(fields))
        return request(s.base, "GET", WEBCGI_PATH, query=query, timeout=s.http_timeout)

    def _webcgi_answer(self, answer: Answer, what: str, maybe: bool) -> proto.WebCgiAnswer:
        if answer.status in (401, 403):
            raise SendFailed(OPERATOR, f"{self.name}: WebCGI refused account "
                             f"{self.settings.account!r} (HTTP {answer.status})")
        if answer.status == 404:
            raise SendFailed(OPERATOR, f"{self.name}: no WebCGI at {WEBCGI_PATH} (HTTP 404): "
                             "check [yeastar] url")
        if answer.status != 200:
            raise SendFailed(TEMPORARY, f"{self.name}: WebCGI answered HTTP {answer.status}",
                             maybe_sent=maybe)
        try:
            parsed = proto.parse_webcgi(answer.text)
        except proto.YeastarAnswerError as exc:
            suffix = "; the message may have been sent" if maybe else ""
            raise SendFailed(TEMPORARY, f"{self.name}: {exc}{suffix}", maybe_sent=maybe) from None
        if not parsed.ok:
            message = parsed.message or parsed.response
            if proto.is_auth_failure(message):
                raise SendFailed(OPERATOR, f"{self.name}: the TG refused account "
                                 f"{self.settings.account!r}: {message} (the TG also refuses "
                                 "its default API password: change it)")
            raise SendFailed(TEMPORARY, f"{self.name}: {what} refused: {message}")
        return parsed

    def _send_webcgi(self, port: int, phone: str, text: str) -> Sent:
        try:
            answer = self._webcgi("1500101", [("port", str(port)), ("destination", phone),
                                              ("content", text)])
        except HttpDown as exc:
            raise SendFailed(DOWN, f"{self.name}: {exc.reason}", maybe_sent=exc.reached) from None
        self._webcgi_answer(answer, "the SMS", maybe=True)
        return Sent((), plan_parts(text).count, "")

    def _command(self, command: str, timeout: float, what: str) -> Packet:
        """``Action: smscommand``; SendFailed for no link, no answer, or a refusal."""
        client = self._ami()
        try:
            answer = client.action([("Action", "smscommand"), ("Command", command)], timeout)
        except AmiDown as exc:
            if exc.sent:
                client.abort(f"no answer to smscommand: {exc}")
            suffix = "; it may have been carried out" if exc.sent else ""
            raise SendFailed(DOWN, f"{self.name}: {what}: {exc}{suffix}",
                             maybe_sent=exc.sent) from None
        response = (answer.response or "").lower()
        text = " / ".join(line.strip() for line in answer.output if line.strip())
        if response == "error":
            message = answer.get("Message") or "error"
            kind = OPERATOR if proto.is_auth_failure(message) else TEMPORARY
            raise SendFailed(kind, f"{self.name}: {what} refused: {message}")
        if response not in ("follows", "success"):
            raise SendFailed(TEMPORARY, f"{self.name}: {what}: unexpected AMI answer "
                             f"{answer.raw[:120]!r}", maybe_sent=True)
        if re.search(r"no\s+such\s+command", text, re.IGNORECASE):
            raise SendFailed(OPERATOR, f"{self.name}: the TG does not know `{command.split()[0]} "
                             f"{command.split()[1]} {command.split()[2]}`: {text}")
        return answer

    def _send_ami(self, port: int, phone: str, text: str) -> Sent:
        sms_id = str(100000000 + secrets.randbelow(900000000))
        try:
            command = proto.sms_command(port + proto.SPAN_OFFSET, phone, text, sms_id)
        except ValueError as exc:
            raise SendFailed(PERMANENT, str(exc)) from None
        answer = self._command(command, self.settings.response_timeout, "the SMS")
        trouble = [line.strip() for line in answer.output if _CLI_TROUBLE.search(line)]
        if trouble:
            raise SendFailed(TEMPORARY, f"{self.name} port {port}: {' / '.join(trouble)}")
        return Sent((sms_id,), plan_parts(text).count, "")

    # -- USSD

    def ussd(self, code: str, timeout: float) -> str:
        from smss.gsm.ussd import decode_answer

        port = self.settings.ports[0]
        if self.settings.send_via == "ami":
            answer = self._command(proto.ussd_command(port + proto.SPAN_OFFSET, code), timeout,
                                   "the USSD request")
            raw = proto.ussd_from_output(answer.output, answer.fields)
            if raw is None:
                text = " / ".join(line.strip() for line in answer.output if line.strip())
                raise SendFailed(TEMPORARY, f"{self.name} port {port}: no USSD answer"
                                 f"{': ' + text if text else ''}")
            return decode_answer(raw, "ucs2")
        s = self.settings
        assert s.base is not None
        try:
            reply = request(s.base, "GET", WEBCGI_PATH, timeout=max(timeout, s.http_timeout),
                            query=f"1500102=account={quote(s.account, safe='')}&password="
                            f"{quote(s.password, safe='')}&port={port}&content="
                            f"{quote(code, safe='')}")
        except HttpDown as exc:
            raise SendFailed(DOWN, f"{self.name}: {exc.reason}") from None
        return decode_answer(self._webcgi_answer(reply, "the USSD request", maybe=False).message)

    # -- receiving

    def _utc(self, moment: Optional[datetime]) -> Optional[datetime]:
        if moment is None:
            return None
        if self.settings.timezone:
            from zoneinfo import ZoneInfo

            moment = moment.replace(tzinfo=ZoneInfo(self.settings.timezone))
        return moment.astimezone(timezone.utc).replace(tzinfo=None)

    def fetch(self) -> Inbox:
        inbox = Inbox()
        if not self._receive:
            return inbox
        self._signal.clear()
        problem: Optional[SendFailed] = None
        try:
            self._ami()
        except SendFailed as exc:
            problem = exc
        parts: List[Tuple[str, proto.ReceivedSms]] = []
        arrived: Dict[str, datetime] = {}
        useless: List[str] = []
        for entry in self._spool.entries():
            packet, why = _packet(entry.frame)
            if packet is None or packet.event not in EVENTS:
                inbox.messages.append(_raw(entry.handle, entry.frame, why or "not an SMS event"))
                continue
            fields = packet.as_dict()
            try:
                if packet.event == "UpdateSMSSend":
                    status = proto.parse_send_status(fields)
                    inbox.reports.append(DeliveryReport(
                        (entry.handle,), status.id, status.delivered, status.status))
                else:
                    parts.append((entry.handle, proto.parse_received(fields)))
                    arrived[entry.handle] = entry.received_at
            except ValueError as exc:
                if packet.event == "UpdateSMSSend":
                    log.warning("%s: unreadable UpdateSMSSend dropped (%s): %r", self.name, exc,
                                entry.frame[:200])
                    useless.append(entry.handle)
                else:
                    inbox.messages.append(_raw(entry.handle, entry.frame,
                                               f"unreadable ReceivedSMS event: {exc}"))
        if useless:
            self.delete(useless)
        inbox.messages.extend(self._messages(parts, arrived))
        if problem is not None and not inbox.messages and not inbox.reports:
            raise problem
        return inbox

    def _messages(self, parts, arrived) -> List[InboundMessage]:
        messages = []
        now = self._now()
        for group in proto.assemble(parts):
            first = group.parts[0]
            total = first.total
            if group.complete:
                messages.append(InboundMessage(
                    handles=group.handles, phone=first.sender,
                    text="".join(part.text for part in group.parts),
                    sent_at=self._utc(first.recvtime), parts=total, smsc=first.smsc))
                continue
            oldest = min(arrived[handle] for handle in group.handles)
            if now - oldest < timedelta(seconds=self.settings.multipart_timeout):
                continue  # its other parts may still come
            have = len(group.parts)
            messages.append(InboundMessage(
                handles=group.handles, phone=first.sender,
                text=" [...] ".join(part.text for part in group.parts),
                sent_at=self._utc(first.recvtime), parts=have, smsc=first.smsc,
                error=f"incomplete: {have} of {total} parts arrived"))
        return messages

    def delete(self, handles: Sequence) -> None:
        try:
            self._spool.remove(str(handle) for handle in handles)
        except OSError as exc:
            raise SendFailed(DOWN, f"{self.name}: cannot update the inbox file: {exc}") from None

    def wait(self, timeout: float, wake: Optional[threading.Event] = None) -> bool:
        """Until an SMS event is spooled (True), ``wake`` is set, or ``timeout``; a dropped
        AMI session is reconnected meanwhile, with backoff."""
        return wait_until(timeout, self._spooled, wake, tick=self._reconnect_due, idle=self._signal,
                          clock=self._clock)

    def _spooled(self) -> bool:
        """Something was spooled since the last look (the I/O thread sets the signal)."""
        if not self._signal.is_set():
            return False
        self._signal.clear()
        return bool(self._receive and len(self._spool))

    def probe(self) -> Probe:
        """Over AMI: a login, ``gsm show spans`` and ``gsm show <span>`` for each port (the
        TG's own answers: module, IMEI, network, signal, SIM), a logoff.  WebCGI alone has
        no question that sends nothing: only whether its web server answers."""
        s = self.settings
        found = Probe()
        if not s.ami_host:
            assert s.base is not None
            try:
                answer = request(s.base, "GET", "/", timeout=s.http_timeout)
            except HttpDown as exc:
                raise SendFailed(DOWN, f"{self.name}: {exc.reason}") from None
            found.add("WebCGI", f"the web server at {s.base.host}:{s.base.port} answers "
                      f"(HTTP {answer.status}); the account is checked only by sending")
            return found
        client = AmiClient(s.ami_host, s.ami_port, s.account, s.password,
                           timeout=s.response_timeout, keepalive=0, name=f"{self.name} probe")
        try:
            client.connect()
        except AmiRefused as exc:
            raise SendFailed(OPERATOR, f"{self.name}: {exc}: check [yeastar] account and "
                             "password (and that the TG's API/AMI is enabled)") from None
        except AmiDown as exc:
            raise SendFailed(DOWN, f"{self.name}: {exc}") from None
        try:
            found.add("AMI", f"{s.ami_host}:{s.ami_port}, {client.banner}")
            spans = proto.parse_spans(*self._ask(client, "gsm show spans"))
            for port in s.ports:
                span = port + proto.SPAN_OFFSET
                if span not in spans:
                    found.problems.append(f"the TG has no GSM port {port} (span {span})")
                    continue
                found.add(f"port {port}", spans[span])
                if not proto.span_is_up(spans[span]):
                    found.problems.append(f"GSM port {port} is not up: {spans[span]}")
                # Yeastar's API guide says `gsm show <span>`; the TG's CLI also takes
                # `gsm show span <span>`: the second when a TG knows only that one
                info = proto.parse_span_info(*self._ask(client, f"gsm show {span}"))
                if "D-channel" not in info:
                    info = proto.parse_span_info(*self._ask(client, f"gsm show span {span}"))
                for key in proto.SPAN_FACTS:
                    found.add(f"  {key}", info.get(key))
                network = info.get("Network Status", "")
                if network and not network.lower().startswith("registered"):
                    found.problems.append(f"GSM port {port}: {network}")
        finally:
            client.close()
        return found

    def _ask(self, client: AmiClient, command: str) -> Tuple[List[str], List[Tuple[str, str]]]:
        try:
            answer = client.action([("Action", "smscommand"), ("Command", command)],
                                   self.settings.response_timeout)
        except AmiDown as exc:
            raise SendFailed(DOWN, f"{self.name}: {command}: {exc}") from None
        if (answer.response or "").lower() == "error":
            raise SendFailed(OPERATOR, f"{self.name}: {command} refused: "
                             f"{answer.get('Message') or 'error'}")
        return answer.output, answer.fields

    def state(self) -> TransportState:
        if not self.settings.ami_host:
            return TransportState(registration="WebCGI")
        client = self._client
        if client is not None and client.alive:
            return TransportState(registration="AMI connected", operator=client.banner)
        reason = (client.down_reason if client is not None else None) or self._down_reason
        return TransportState(registration=f"AMI down ({reason})"[:64])


def _packet(frame: bytes) -> Tuple[Optional[Packet], Optional[str]]:
    try:
        packets = AmiParser(expect_banner=False).feed(frame)
    except AmiProtocolError as exc:
        return None, f"unreadable AMI event: {exc}"
    if len(packets) != 1:
        return None, "unreadable AMI event"
    return packets[0], None


def _raw(handle: str, frame: bytes, error: str) -> InboundMessage:
    return InboundMessage(handles=(handle,), phone="", text="",
                          raw_pdu=frame.decode("utf-8", "replace"), error=error)
