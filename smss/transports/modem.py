"""The AT modem as a transport: ``ModemSession`` behind the dispatcher's interface.

Maps modem errors to the four kinds the dispatcher acts on, initialises the
modem again when it restarted (checked before each send and read, and while
``wait`` idles), resumes a message in parts from its ``Progress``, turns the SIM's
stored messages into whole inbound messages (multipart ones reassembled; an
undecodable PDU kept raw so it can be stored and removed), and status reports
(stored on the SIM or routed as +CDS) into delivery reports.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Callable, List, Optional, Sequence

from smss.gsm.pdu import Deliver, StatusReport
from smss.gsm.reassembly import reassemble
from smss.modem.engine import AtEngine
from smss.modem.errors import LinkDown, ModemError, ModemTimeout, NoNetwork, SimError
from smss.modem.identify import identify
from smss.modem.link import Link
from smss.modem.session import ModemSession, ModemSettings
from smss.transports.base import (
    DOWN,
    OPERATOR,
    PERMANENT,
    TEMPORARY,
    DeliveryReport,
    InboundMessage,
    Inbox,
    Probe,
    Progress,
    SendFailed,
    Sent,
    Transport,
    TransportState,
    wait_until,
)

log = logging.getLogger(__name__)


def failure(exc: ModemError) -> SendFailed:
    """The dispatcher's view of a modem error."""
    if isinstance(exc, SimError):
        kind = OPERATOR
    elif isinstance(exc, (LinkDown, ModemTimeout, NoNetwork)):
        kind = DOWN
    elif exc.permanent:
        kind = PERMANENT
    else:
        kind = TEMPORARY
    return SendFailed(kind, str(exc), maybe_sent=exc.pdu_sent is True,
                      sent_references=[str(r) for r in exc.sent_references if r is not None])


def _utc(moment: Optional[datetime]) -> Optional[datetime]:
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


class ModemTransport(Transport):
    def __init__(self, settings: ModemSettings, name: str = "",
                 multipart_timeout: float = 86400.0,
                 session_factory: Callable[[ModemSettings], ModemSession] = ModemSession,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.settings = settings
        self.name = (name or f"modem:{settings.device}")[:128]
        self.tracks_delivery = settings.status_reports
        self.multipart_timeout = timedelta(seconds=multipart_timeout)
        self._factory = session_factory
        self._clock = clock
        self._monotonic = time.monotonic
        self._checked_at = 0.0  # when the modem's settings were last known good
        self.session: Optional[ModemSession] = None

    @classmethod
    def from_config(cls, config) -> "ModemTransport":
        if not config.get("modem", "device"):
            raise SendFailed(OPERATOR, "no modem configured: set [modem] device")
        return cls(ModemSettings.from_config(config), config.get("modem", "name"),
                   config.get("dispatcher", "multipart_timeout"))

    def _session(self) -> ModemSession:
        if self.session is None:
            raise SendFailed(DOWN, "modem not open")
        return self.session

    def _ready(self) -> bool:
        """Initialise the modem again if it restarted since (its start-up lines; every
        ``health_interval`` also its settings, asked); True if it did."""
        session = self._session()
        interval = self.settings.health_interval
        now = self._monotonic()
        check = interval > 0 and now - self._checked_at >= interval
        try:
            again = session.initialise_again_if_restarted(check_settings=check)
        except ModemError as exc:
            raise failure(exc) from exc
        if check or again:
            self._checked_at = self._monotonic()
        return again

    def open(self) -> None:
        session = self._factory(self.settings)
        try:
            session.open()
        except ModemError as exc:
            session.close()
            raise failure(exc) from exc
        self.session = session
        self._checked_at = self._monotonic()

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def abort(self, reason: str) -> None:
        session = self.session
        if session is not None:
            session.abort(reason)

    def send(self, phone: str, text: str, progress: Optional[Progress] = None) -> Sent:
        """Send one message.  With ``progress`` a message in parts goes on where an earlier
        attempt stopped: the parts it got confirmed are not sent again, the others go under
        the same concatenation reference, and each confirmed part is recorded before the
        next one goes out."""
        self._ready()
        session = self._session()
        try:
            message = self._encode(session, phone, text, progress)
            if progress is None or message.parts == 1:
                result = session.send_parts(message)
                references = tuple("" if r is None else str(r) for r in result.references)
                return Sent(references, result.parts, result.encoding)
            progress.begin(message.concat_reference, message.parts)
            result = session.send_parts(
                message, skip=set(progress.confirmed),
                on_part=lambda part, ref: progress.confirm(part, "" if ref is None else str(ref)))
        except ModemError as exc:
            failed = failure(exc)
            if progress is not None and progress.confirmed:
                failed.sent_references = progress.references()
            raise failed from exc
        return Sent(progress.references(), result.parts, result.encoding)

    @staticmethod
    def _encode(session: ModemSession, phone: str, text: str, progress: Optional[Progress]):
        """The message as parts: under the recorded concatenation reference when the
        earlier attempt split it the same way, else under a new one."""
        if progress is None or progress.concat_reference is None:
            return session.encode(phone, text)
        message = session.encode(phone, text, concat_reference=progress.concat_reference)
        if message.parts != progress.parts:  # split differently now (settings changed)
            log.warning("message to %s now has %d parts, not %d: sending all of them",
                        phone, message.parts, progress.parts)
            message = session.encode(phone, text)
        return message

    def fetch(self) -> Inbox:
        self._ready()
        session = self._session()
        try:
            stored = session.list_stored()
            routed_reports = session.take_status_reports()
        except ModemError as exc:
            raise failure(exc) from exc
        inbox = Inbox()
        delivers = []
        for item in stored:
            decoded = item.decoded
            if isinstance(decoded, Deliver):
                delivers.append((item.index, decoded))
            elif isinstance(decoded, StatusReport):
                inbox.reports.append(self._report(decoded, (item.index,)))
            elif decoded is None:
                inbox.messages.append(InboundMessage(
                    handles=(item.index,), phone="", text="", raw_pdu=item.pdu_hex,
                    error=f"undecodable PDU: {item.error}"))
            # a stored SMS-SUBMIT is an outgoing draft someone else put there: leave it
        complete, leftovers = reassemble(delivers)
        for message in complete:
            first = self._first_part(delivers, message.handles)
            inbox.messages.append(InboundMessage(
                handles=tuple(message.handles), phone=message.sender, text=message.text,
                sent_at=_utc(message.timestamp), parts=message.parts,
                smsc=first.smsc if first else "",
                message_class=first.message_class if first else None,
                references=(first.concat.reference,) if first and first.concat else (),
            ))
        inbox.messages.extend(self._overdue(leftovers))
        for report in routed_reports:
            inbox.reports.append(self._report(report, ()))
        return inbox

    @staticmethod
    def _first_part(delivers, handles) -> Optional[Deliver]:
        wanted = set(handles)
        return next((d for index, d in delivers if index in wanted), None)

    def _overdue(self, leftovers) -> List[InboundMessage]:
        """Parts whose siblings never came: stored as they are once they waited too long."""
        groups: dict = {}
        for index, deliver in leftovers:
            concat = deliver.concat
            key = (deliver.sender, concat.reference if concat else None,
                   concat.total if concat else 1)
            groups.setdefault(key, []).append((index, deliver))
        now = self._clock()
        messages = []
        for (sender, _, total), parts in groups.items():
            oldest = min(d.timestamp for _, d in parts)
            if now - oldest < self.multipart_timeout:
                continue
            parts.sort(key=lambda item: item[1].concat.sequence if item[1].concat else 0)
            text = " [...] ".join(d.text for _, d in parts)
            have = len({d.concat.sequence for _, d in parts if d.concat})
            messages.append(InboundMessage(
                handles=tuple(index for index, _ in parts), phone=sender, text=text,
                sent_at=_utc(oldest), parts=have, smsc=parts[0][1].smsc,
                error=f"incomplete: {have} of {total} parts arrived"))
        return messages

    @staticmethod
    def _report(report: StatusReport, handles) -> DeliveryReport:
        if report.delivered:
            delivered: Optional[bool] = True
        elif report.final:
            delivered = False
        else:
            delivered = None
        return DeliveryReport(handles, str(report.reference), delivered, report.status,
                              report.recipient)

    def delete(self, handles: Sequence) -> None:
        session = self._session()
        for index in handles:
            try:
                session.delete(int(index))
            except ModemError as exc:
                raise failure(exc) from exc

    def ussd(self, code: str, timeout: float) -> str:
        """AT+CUSD through the open session; the answer decoded (GSM-7, UCS2 or text)."""
        try:
            return self._session().ussd(code, timeout)
        except ValueError as exc:
            raise SendFailed(PERMANENT, str(exc)) from None
        except ModemError as exc:
            raise failure(exc) from exc

    def state(self) -> TransportState:
        if self.session is None:
            return TransportState()
        try:
            status = self.session.status()
        except ModemError as exc:
            log.info("modem status unavailable: %s", exc)
            return TransportState()
        return TransportState(status.signal_dbm, status.registration, status.operator)

    def probe(self) -> Probe:
        """The port opened (exclusively, when it is local) and the modem asked what
        ``gammu identify`` and ``networkinfo`` show; no PIN is entered, nothing sent."""
        s = self.settings
        link = Link(s.device, baudrate=s.baudrate, read_timeout=s.read_timeout,
                    write_timeout=max(s.command_timeout, 1.0))
        try:
            link.open()
            found = identify(AtEngine(link, quiet_time=s.quiet_time), s.command_timeout)
        except ModemError as exc:
            raise failure(exc) from exc
        finally:
            link.close()
        probe = Probe()
        probe.add("device", s.device)
        probe.add("manufacturer", found.manufacturer)
        probe.add("model", found.model)
        probe.add("revision", found.revision)
        probe.add("IMEI", found.imei)
        probe.add("SIM", found.sim)
        probe.add("IMSI", found.imsi)
        probe.add("registration", found.registration)
        probe.add("operator", " ".join(filter(None, (found.operator, found.operator_code))))
        if found.rssi is not None:
            ber = "unknown" if found.ber is None else str(found.ber)
            probe.add("signal", f"{found.signal_dbm} dBm (CSQ {found.rssi}, bit errors {ber})")
        else:
            probe.add("signal", "unknown")
        probe.add("SMSC", found.smsc or (f"none on the SIM; [modem] smsc {s.smsc}"
                                         if s.smsc else "none"))
        for memory, used, total in dict.fromkeys(found.storage):  # (read, write, receive)
            probe.add(f"storage {memory}", f"{used} of {total} used")
        if found.sim == "SIM PIN" and not s.pin:
            probe.problems.append("the SIM asks for its PIN and [modem] pin is empty")
        elif found.sim not in ("READY", "SIM PIN", None):
            probe.problems.append(f"the SIM is not ready: {found.sim}")
        if found.sim == "READY" and found.registration is not None and not found.registered:
            probe.problems.append(f"not registered in a network: {found.registration}")
        if not found.smsc and not s.smsc and found.sim == "READY":
            probe.problems.append("no SMS centre number on the SIM: set [modem] smsc")
        for memory, used, total in found.storage[:1]:
            if total and used >= total:
                probe.problems.append(f"the message storage {memory} is full ({used} of "
                                      f"{total}): nothing more can arrive")
        return probe

    def wait(self, timeout: float, wake: Optional[threading.Event] = None) -> bool:
        """Sleep until +CMTI / +CDSI announces something, the modem restarted (it is
        initialised again; what it stored meanwhile is to be read), ``wake`` is set, or
        ``timeout``."""
        return wait_until(timeout, self._announced, wake)

    def _announced(self) -> bool:
        if self.session is None:
            return False
        if self._ready():
            return True
        try:
            return bool(self.session.take_unsolicited(["+CMTI", "+CDSI"]))
        except ModemError as exc:
            raise failure(exc) from exc
