"""An SMSC over SMPP as a transport: the dispatcher's interface on top of ``smss.smpp``.

Owns the binds (one transceiver, or a transmitter and a receiver), sending with a
window of submit_sm in flight, paced by ``smss.smpp.pacing`` (the throughput limit, and
ESME_RTHROTTLED handled by one pause per episode and a learned rate, the refused parts
resubmitted), the mapping of command_status values to the dispatcher's four kinds, the
inbox (every deliver_sm stored in the spool file before it is acknowledged, handed out
as whole messages and receipts), matching receipt ids to the ids submit_sm_resp gave
(``receipt_id_format``), and binding again: at once when a link drops in the middle of
a batch (the batch goes on over the new bind), then, when binds keep failing, after
``reconnect_delay`` doubling up to ``reconnect_max_delay`` (``reopen_delay``).

Two rules keep messages safe:

- A submit_sm whose response never came (timeout, link lost) may have been accepted:
  its message is reported ``maybe_sent``; a message never submitted (or whose
  submit_sm never reached the socket) is never reported as failed, so the dispatcher
  keeps it without counting an attempt, or this batch submits it again after binding.
- A receipt that arrives while a submit_sm sent before it is still unanswered is held
  back until that answer is in and the dispatcher has recorded the send, so a receipt
  faster than its submit_sm_resp still finds its ``sms_part`` row.
"""

from __future__ import annotations

import collections
import itertools
import logging
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from smss.smpp import pdu as p
from smss.smpp import receipt as receipts
from smss.smpp.inbox import is_receipt, read
from smss.smpp.link import BindParams, BindRefused, Link, LinkDown, Waiter
from smss.smpp.pacing import Pacer
from smss.smpp.pdu import Pdu
from smss.smpp.session import Incoming
from smss.smpp.settings import SmppSettings, destination
from smss.smpp.spool import Spool
from smss.smpp.text import SubmitPlan, plan_submit
from smss.transports.base import (
    DOWN,
    OPERATOR,
    PERMANENT,
    TEMPORARY,
    DeliveryReport,
    Inbox,
    Probe,
    SendFailed,
    Sent,
    Transport,
    TransportState,
    wait_until,
)

log = logging.getLogger(__name__)

MAX_THROTTLED = 10  # ESME_RTHROTTLED answers in a row for one part before it is deferred
REMEMBERED_IDS = 100_000  # submit_sm_resp ids kept for receipt_id_format = auto
STOP_POLL = 0.1  # seconds between looks at the dispatcher's stop request while waiting

# command_status -> kind; anything not listed is TEMPORARY (the dispatcher retries it
# with backoff and fails it after max_attempts)
_PERMANENT = {
    p.ESME_RINVMSGLEN, p.ESME_RINVCMDLEN, p.ESME_RINVCMDID, p.ESME_RINVDSTADR,
    p.ESME_RINVESMCLASS, p.ESME_RINVDCS, p.ESME_RX_P_APPN, p.ESME_RX_R_APPN,
    p.ESME_RINVOPTPARSTREAM, p.ESME_ROPTPARNOTALLWD, p.ESME_RINVPARLEN,
    p.ESME_RMISSINGOPTPARAM, p.ESME_RINVOPTPARAMVAL, p.ESME_RINVNUMDESTS,
    p.ESME_RINVDFTMSGID, p.ESME_RINVPRTFLG,
}
_OPERATOR = {  # the configuration or the account is wrong: every message would fail
    p.ESME_RINVSRCADR, p.ESME_RINVSRCTON, p.ESME_RINVSRCNPI, p.ESME_RINVDSTTON,
    p.ESME_RINVDSTNPI, p.ESME_RINVSERTYP, p.ESME_RINVREGDLVFLG, p.ESME_RINVSYSTYP,
    p.ESME_RSERTYPUNAUTH, p.ESME_RPROHIBITED, p.ESME_RSERTYPDENIED,
}
_REBIND = {p.ESME_RINVBNDSTS}  # the SMSC no longer sees us bound: bind again
_SHORT_ROLES = {"transceiver": "trx", "transmitter": "tx", "receiver": "rx"}
_BIND_OPERATOR = {p.ESME_RINVPASWD, p.ESME_RINVSYSID, p.ESME_RINVSYSTYP, p.ESME_RBINDFAIL}


def failure_kind(status: int) -> str:
    """The dispatcher's kind for a submit_sm_resp command_status (not ROK, not throttled)."""
    if status in _PERMANENT:
        return PERMANENT
    if status in _OPERATOR:
        return OPERATOR
    if status in _REBIND:
        return DOWN
    return TEMPORARY


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(eq=False)
class _Message:
    key: Any
    phone: str
    plan: SubmitPlan
    ids: List[Optional[str]]
    todo: Deque[int]  # part indexes still to submit
    inflight: int = 0
    started: bool = False
    throttled: int = 0  # ESME_RTHROTTLED in a row
    failure: Optional[SendFailed] = None
    interrupted: Optional[str] = None  # why the link went while a written part was in flight


@dataclass
class _Flight:
    message: _Message
    index: int
    waiter: Waiter
    deadline: float
    epoch: int  # the throttle episode it went out in


@dataclass
class _Holds:
    """Receipts kept back: handle -> the submit tokens unanswered when it arrived."""

    by_handle: Dict[str, frozenset] = field(default_factory=dict)


class SmppTransport(Transport):
    def __init__(self, settings: SmppSettings, *,
                 clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = _utcnow,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.name = settings.transport_name
        self.window = settings.window
        self.receives = settings.bind != "transmitter"
        self.tracks_delivery = settings.registered_delivery and self.receives
        self._clock, self._now, self._sleep = clock, now, sleep
        if settings.bind == "transmitter+receiver":
            self._roles: Tuple[str, ...] = ("transmitter", "receiver")
        else:
            self._roles = (settings.bind,)
        self._tx_role = self._roles[0]
        self._rx_role = self._roles[-1] if self.receives else None
        self._links: Dict[str, Link] = {}
        self._retry_at: Dict[str, float] = {}
        self._backoff: Dict[str, float] = {}
        self._spool = Spool(settings.spool, legacy=settings.legacy_spool)
        self._lock = threading.Lock()  # the fields below are shared with the I/O threads
        self._signal = threading.Event()  # something new to fetch, or a link went down
        self._unanswered: set = set()  # tokens of submit_sm without their response
        self._holds = _Holds()
        self._tokens = itertools.count(1)
        self._known_ids: "collections.OrderedDict[str, None]" = collections.OrderedDict()
        self._learned_format: Optional[str] = None
        self._reference = random.randrange(0x10000)
        self.pacer = Pacer(settings.throughput, settings.throttle_delay, clock)
        self._open = False
        self.last_drop: Optional[str] = None  # why a bind last went down

    @classmethod
    def from_config(cls, config) -> "SmppTransport":
        try:
            settings = SmppSettings.from_config(config)
        except ValueError as exc:
            raise SendFailed(OPERATOR, str(exc)) from None
        return cls(settings)

    # -- life

    def open(self) -> None:
        try:
            self._spool.open()
        except OSError as exc:
            raise SendFailed(OPERATOR, f"cannot use the SMPP inbox {self.settings.spool}: "
                             f"{exc}") from None
        self._open = True
        with self._lock:
            self._learned_format = self._spool.get_meta("receipt_id_format")
        try:
            for role in self._roles:
                self._connect(role)
        except SendFailed:
            self.close()
            raise
        if len(self._spool):
            self._signal.set()  # left by an earlier process

    def close(self) -> None:
        self._open = False
        links, self._links = list(self._links.values()), {}
        for link in links:
            link.close(min(self.settings.response_timeout, 5.0))
        self._spool.close()

    def _link_settings(self, role: str) -> Link:
        s = self.settings
        bind = BindParams(role, s.system_id, s.password, s.system_type, s.interface_version,
                          address_range=s.address_range)
        return Link(s.host, s.port, bind, name=f"{self.name} {role}",
                    response_timeout=s.response_timeout,
                    enquire_link_interval=s.enquire_link_interval,
                    on_incoming=self._on_incoming, on_down=self._on_down, clock=self._clock)

    def _connect(self, role: str) -> Link:
        link = self._link_settings(role)
        try:
            link.open()
        except BindRefused as exc:
            self._failed_connect(role)
            kind = OPERATOR if exc.status in _BIND_OPERATOR else DOWN
            raise SendFailed(kind, str(exc)) from None
        except LinkDown as exc:
            self._failed_connect(role)
            raise SendFailed(DOWN, str(exc)) from None
        self._links[role] = link
        self._backoff[role] = 0.0
        self._retry_at[role] = 0.0
        return link

    def reopen_delay(self, failures: int) -> float:
        """A transport that could not be used is opened again at once the first time, then
        after ``reconnect_delay`` doubling up to ``reconnect_max_delay``."""
        if failures <= 1:
            return 0.0
        return min(self.settings.reconnect_delay * 2.0 ** (failures - 2),
                   self.settings.reconnect_max_delay)

    def _rebind(self, reason: str) -> Link:
        """Bind the transmitting role again at once (its link went in a batch)."""
        role = self._tx_role
        old = self._links.pop(role, None)
        if old is not None:
            old.abort(reason, by_us=True)
        if not self._open:
            raise SendFailed(DOWN, f"{self.name}: {reason}")
        log.info("%s: binding %s again (%s)", self.name, role, reason)
        return self._connect(role)

    def _failed_connect(self, role: str) -> None:
        backoff = self._backoff.get(role, 0.0)
        backoff = min(max(backoff * 2, self.settings.reconnect_delay),
                      self.settings.reconnect_max_delay)
        self._backoff[role] = backoff
        self._retry_at[role] = self._clock() + backoff

    def _link(self, role: str) -> Link:
        """The bound link for ``role``, binding again if it dropped and the backoff allows;
        raises SendFailed (DOWN or OPERATOR)."""
        link = self._links.get(role)
        if link is not None and link.alive:
            return link
        if not self._open:
            raise SendFailed(DOWN, "SMPP transport is not open")
        reason = link.down_reason if link is not None else "not bound"
        wait = self._retry_at.get(role, 0.0) - self._clock()
        if wait > 0:
            raise SendFailed(DOWN, f"{role} bind lost ({reason}); next attempt in {wait:.1f}s")
        self._links.pop(role, None)
        log.info("%s: binding %s again (%s)", self.name, role, reason)
        return self._connect(role)

    def _on_down(self, link: Link, reason: str) -> None:
        self.last_drop = f"{link.bind.mode}: {reason}"
        self._signal.set()

    # -- receiving

    def _on_incoming(self, link: Link, incoming: List[Incoming]) -> List[int]:
        """Runs in the link's I/O thread: store, then the SMSC may forget them."""
        try:
            entries = self._spool.add([(event.frame, link.bind.mode) for event in incoming])
        except OSError as exc:
            log.error("%s: cannot store received PDUs in %s (%s); the SMSC is asked to "
                      "try again later", self.name, self.settings.spool, exc)
            return [p.ESME_RX_T_APPN] * len(incoming)
        with self._lock:
            for entry, event in zip(entries, incoming):
                if event.pdu is not None and is_receipt(event.pdu) and self._unanswered:
                    self._holds.by_handle[entry.handle] = frozenset(self._unanswered)
        self._signal.set()
        return [p.ESME_ROK] * len(incoming)

    def fetch(self) -> Inbox:
        self._signal.clear()
        problem: Optional[SendFailed] = None
        if self._rx_role is not None and self._open:
            try:
                self._link(self._rx_role)
            except SendFailed as exc:
                problem = exc
        entries = self._spool.entries()
        with self._lock:
            held = {handle for handle, tokens in self._holds.by_handle.items()
                    if tokens & self._unanswered}
            self._holds.by_handle = {h: t for h, t in self._holds.by_handle.items()
                                     if h in held}
        free = [entry for entry in entries if entry.handle not in held]
        result = read(free, now=self._now(), multipart_timeout=self.settings.multipart_timeout,
                      default_alphabet=self.settings.default_alphabet)
        inbox = Inbox(messages=list(result.messages))
        for entry, receipt in result.receipts:
            inbox.reports.append(DeliveryReport((entry.handle,), self._reference_for(receipt),
                                                receipt.delivered, receipt.state,
                                                receipt.recipient))
        if problem is not None and not inbox.messages and not inbox.reports:
            raise problem
        return inbox

    def delete(self, handles: Sequence) -> None:
        try:
            self._spool.remove(str(handle) for handle in handles)
        except OSError as exc:
            raise SendFailed(DOWN, f"cannot update the SMPP inbox: {exc}") from None

    def _reference_for(self, receipt: receipts.Receipt) -> str:
        """The receipt's message id in the form submit_sm_resp ids are stored in.  The
        receipted_message_id TLV is taken as sent; ``receipt_id_format`` converts the id
        of the text, and ``auto`` learns the conversion when only it matches an id this
        process was given (and keeps it in the spool for later processes)."""
        raw = receipt.message_id
        plain = receipts.normalise(raw)
        wanted = self.settings.receipt_id_format
        if wanted in ("decimal", "hex"):
            return plain if receipt.from_tlv else receipts.convert(raw, wanted) or plain
        if wanted != "auto":
            return plain
        with self._lock:
            if plain in self._known_ids:
                return plain
            learned = self._learned_format
            for written_in in ("decimal", "hex"):
                other = receipts.convert(raw, written_in)
                if other is not None and other in self._known_ids:
                    break
            else:
                if learned is not None and not receipt.from_tlv:
                    return receipts.convert(raw, learned) or plain
                return plain
            self._learned_format = written_in
        if learned != written_in:
            log.warning("%s: receipts name messages by the %s form of the id submit_sm_resp "
                        "gave; remembered in %s (or set [smpp] receipt_id_format = %s)",
                        self.name, written_in, self.settings.spool, written_in)
            self._spool.set_meta("receipt_id_format", written_in)
        return other

    def _remember(self, message_id: str) -> None:
        with self._lock:
            self._known_ids[message_id] = None
            while len(self._known_ids) > REMEMBERED_IDS:
                self._known_ids.popitem(last=False)

    def wait(self, timeout: float, wake: Optional[threading.Event] = None) -> bool:
        """Until a deliver_sm is stored (True), ``wake`` is set, or ``timeout``; a dropped
        bind is bound again meanwhile, with backoff."""
        return wait_until(timeout, self._spooled, wake, tick=self._rebind_due, idle=self._signal,
                          clock=self._clock)

    def _spooled(self) -> bool:
        """Something was spooled since the last look (the I/O thread sets the signal)."""
        if not self._signal.is_set():
            return False
        self._signal.clear()
        return bool(len(self._spool))

    def _rebind_due(self) -> None:
        """Bind again what dropped, once its backoff has passed."""
        if not self._open:
            return
        for role in self._roles:
            link = self._links.get(role)
            if link is None or link.alive or self._retry_at.get(role, 0.0) > self._clock():
                continue
            try:
                self._link(role)
            except SendFailed as exc:
                log.warning("%s: %s", self.name, exc.reason)

    def probe(self) -> Probe:
        """A transmitter bind and an unbind: the SMSC takes the account, and a transmitter
        is handed no messages, so nothing is taken from a running dispatcher."""
        s = self.settings
        link = Link(s.host, s.port, BindParams("transmitter", s.system_id, s.password,
                                               s.system_type, s.interface_version),
                    name=f"{self.name} probe", response_timeout=s.response_timeout,
                    enquire_link_interval=0,
                    on_incoming=lambda link, incoming: [p.ESME_RX_T_APPN] * len(incoming),
                    on_down=lambda link, reason: None, clock=self._clock)
        try:
            link.open()
        except BindRefused as exc:
            kind = OPERATOR if exc.status in _BIND_OPERATOR else DOWN
            raise SendFailed(kind, str(exc)) from None
        except LinkDown as exc:
            raise SendFailed(DOWN, str(exc)) from None
        found = Probe()
        found.add("SMSC", f"{s.host}:{s.port}")
        found.add("bound as", f"{s.system_id or '(no system_id)'} (transmitter; then unbound)")
        found.add("SMSC system_id", link.peer_system_id)
        if link.peer_interface_version is not None:
            version = link.peer_interface_version
            found.add("SMSC interface version", f"{version >> 4}.{version & 15}")
        link.close(min(s.response_timeout, 5.0))
        return found

    def state(self) -> TransportState:
        """registration: each bind up or down (``trx up``, ``tx up, rx down``; the column
        is short: why a bind dropped is in ``last_drop`` and the log); operator: the
        SMSC's system_id."""
        parts, peer = [], ""
        for role in self._roles:
            link = self._links.get(role)
            up = link is not None and link.alive
            parts.append(f"{_SHORT_ROLES[role]} {'up' if up else 'down'}")
            if up and link is not None:
                peer = peer or link.peer_system_id
        return TransportState(registration=", ".join(parts), operator=peer[:64] or None)

    # -- sending

    def send(self, phone: str, text: str, progress=None) -> Sent:  # whole messages only
        outcome: Union[Sent, SendFailed, None] = next(
            (result for _, result in self.send_many([(None, phone, text)])), None)
        if isinstance(outcome, Sent):
            return outcome
        if isinstance(outcome, SendFailed):
            raise outcome
        raise SendFailed(DOWN, f"{self.name}: stopped before it was sent")  # stopping()

    def _plan(self, text: str) -> SubmitPlan:
        self._reference = (self._reference + 1) % 0x10000
        return plan_submit(self.sendable(text), long_messages=self.settings.long_messages,
                           default_alphabet=self.settings.default_alphabet,
                           reference=self._reference)

    def _submit_pdu(self, message: _Message, index: int) -> Pdu:
        s = self.settings
        part = message.plan.submits[index]
        ton, npi, digits = destination(message.phone, s.dest_addr_ton, s.dest_addr_npi)
        return Pdu(p.SUBMIT_SM, params={
            "service_type": s.service_type,
            "source_addr_ton": s.source_addr_ton, "source_addr_npi": s.source_addr_npi,
            "source_addr": s.source_addr,
            "dest_addr_ton": ton, "dest_addr_npi": npi, "destination_addr": digits,
            "esm_class": part.esm_class,
            "registered_delivery": 1 if s.registered_delivery else 0,
            "data_coding": part.data_coding,
            "short_message": part.short_message,
        }, tlvs=list(part.tlvs))

    def send_many(self, items: Sequence[Tuple[Any, str, str]]
                  ) -> Iterator[Tuple[Any, Union[Sent, SendFailed]]]:
        """Up to ``window`` submit_sm in flight (parts of one message and of several),
        paced by ``self.pacer``.  Outcomes come as messages finish.  When the link goes,
        the messages with a part in flight come out TEMPORARY ``maybe_sent`` (a part that
        never reached the socket is simply submitted again), the link is bound again at
        once and the batch goes on; a bind that fails, or a link that goes again before
        the SMSC took anything, ends the batch with one DOWN or OPERATOR outcome.  So
        does an error that is not the message's fault.  A stop request (``stopping``)
        submits nothing more: what is in flight is answered, the rest is not yielded.
        Messages not yielded were not submitted.  Closing the generator early abandons
        what is in flight: treat those messages as maybe sent."""
        messages: Deque[_Message] = collections.deque()
        for key, phone, text in items:
            try:
                plan = self._plan(text)
            except ValueError as exc:
                yield key, SendFailed(PERMANENT, str(exc))
                continue
            messages.append(_Message(key, phone, plan, [None] * len(plan.submits),
                                     collections.deque(range(len(plan.submits)))))
        if not messages:
            return
        try:
            link = self._link(self._tx_role)
        except SendFailed as exc:
            yield messages[0].key, exc
            return
        pacer = self.pacer
        done: "queue.Queue[int]" = queue.Queue()
        flights: Dict[int, _Flight] = {}
        stop: Optional[SendFailed] = None  # why nothing more is submitted
        stopper: Optional[_Message] = None  # whose outcome the stop is
        lost: Optional[str] = None  # why the link went: bind again before submitting more
        rebound = False  # bound again in this batch, and nothing taken since
        give_up_at: Optional[float] = None  # after a timeout: when to stop waiting at all
        try:
            while True:
                halted = stop is not None or self.stopping()
                # 1. submit what the window, the pace and the SMSC allow
                while (messages and not halted and lost is None and len(flights) < self.window
                       and pacer.delay() <= 0):
                    message = messages[0]
                    index = message.todo.popleft()
                    token = next(self._tokens)
                    with self._lock:
                        self._unanswered.add(token)
                    try:
                        waiter = link.request(self._submit_pdu(message, index),
                                              lambda _w, t=token: done.put(t))
                    except LinkDown as exc:
                        with self._lock:
                            self._unanswered.discard(token)
                        message.todo.appendleft(index)
                        lost = str(exc)
                        break
                    flights[token] = _Flight(message, index, waiter,
                                             self._clock() + self.settings.response_timeout,
                                             pacer.sent())
                    message.inflight += 1
                    message.started = True
                    if not message.todo:
                        messages.popleft()
                # 2. the link went and nothing is in flight any more: bind again, go on
                if lost is not None and not flights:
                    if not messages or halted:
                        break
                    if rebound:
                        stop = SendFailed(DOWN, f"{self.name}: the link went again before the "
                                          f"SMSC took anything: {lost}")
                        break
                    try:
                        link = self._rebind(lost)
                    except SendFailed as exc:
                        stop = exc
                        break
                    lost, rebound, give_up_at = None, True, None
                    continue
                if not flights:
                    if halted or not messages:
                        break
                    self._rest(pacer.delay())  # pacing or a throttle pause; a stop ends it
                    continue
                # 3. wait for a response, a timeout, the next submit slot, or a stop
                now = self._clock()
                timeout = min(f.deadline for f in flights.values()) - now
                if messages and not halted and lost is None:
                    timeout = min(timeout, STOP_POLL)
                    if len(flights) < self.window:
                        timeout = min(timeout, pacer.delay())
                if give_up_at is not None:
                    timeout = min(timeout, give_up_at - now)
                try:
                    tokens = [done.get(timeout=max(0.001, timeout))]
                except queue.Empty:
                    tokens = []
                while True:
                    try:
                        tokens.append(done.get_nowait())
                    except queue.Empty:
                        break
                finished: List[_Message] = []
                released = False
                for token in tokens:
                    flight = flights.pop(token, None)
                    if flight is None:
                        continue
                    with self._lock:
                        self._unanswered.discard(token)
                    released = True
                    message = flight.message
                    message.inflight -= 1
                    waiter = flight.waiter
                    if waiter.response is None:  # the link went with this part in flight
                        lost = lost or f"{self.name}: {waiter.error}"
                        if waiter.written:
                            message.interrupted = lost
                        else:  # never reached the socket: the SMSC cannot have it
                            self._requeue(message, flight.index, messages)
                    else:
                        if waiter.response.status == p.ESME_ROK:
                            rebound = False
                        outcome = self._answered(message, flight, messages)
                        if isinstance(outcome, str):  # not bound, says the SMSC
                            lost = lost or outcome
                            link.abort(outcome)
                        elif outcome is not None and stop is None:
                            stop, stopper = outcome, message
                    if message.inflight == 0 and message is not stopper:
                        if message.interrupted is not None:
                            self._drop_rest(message, messages)
                            finished.append(message)
                        elif message.failure is not None or self._complete(message):
                            finished.append(message)
                if released:
                    self._release_holds()
                # 4. responses overdue: the link is dead; everything in flight may have gone
                now = self._clock()
                overdue = [f for f in flights.values() if f.deadline <= now]
                if overdue and give_up_at is None:
                    reason = (f"{self.name}: no submit_sm_resp within "
                              f"{self.settings.response_timeout:g}s; the link is dropped")
                    lost = lost or reason
                    link.abort(reason)
                    give_up_at = now + self.settings.response_timeout
                if give_up_at is not None and now >= give_up_at:
                    for token, flight in list(flights.items()):  # the link never let go
                        flights.pop(token)
                        link.forget(flight.waiter)
                        with self._lock:
                            self._unanswered.discard(token)
                        flight.message.inflight -= 1
                        flight.message.interrupted = lost
                        if flight.message.inflight == 0 and flight.message is not stopper:
                            self._drop_rest(flight.message, messages)
                            finished.append(flight.message)
                for message in finished:
                    yield message.key, self._outcome(message)
            # the batch ended: every in-flight part is answered or given up
            yield from self._final(stop, stopper, messages)
        finally:
            if flights:  # the caller stopped iterating with submits in flight
                with self._lock:
                    for token, flight in flights.items():
                        self._unanswered.discard(token)
                        link.forget(flight.waiter)
                self._release_holds()

    def _rest(self, seconds: float) -> None:
        """Sleep ``seconds`` (pacing, a throttle pause), in steps, until a stop request."""
        deadline = self._clock() + seconds
        while not self.stopping():
            remaining = deadline - self._clock()
            if remaining <= 0:
                return
            self._sleep(min(STOP_POLL, max(0.001, remaining)))

    @staticmethod
    def _requeue(message: _Message, index: int, messages: Deque[_Message]) -> None:
        """Part ``index`` goes again (it was refused for now, or never written), unless
        the message failed meanwhile."""
        if message.failure is not None:
            return
        message.todo = collections.deque(sorted([*message.todo, index]))
        if message not in messages:
            messages.appendleft(message)

    def _answered(self, message: _Message, flight: _Flight, messages: Deque[_Message]
                  ) -> Union[None, str, SendFailed]:
        """Apply one answer.  Returns a SendFailed when sending must stop (it is this
        message's outcome), a reason when the link must be bound again (the part goes
        again over the new bind), None otherwise."""
        status = flight.waiter.response.status if flight.waiter.response is not None else -1
        if status == p.ESME_ROK:
            assert flight.waiter.response is not None
            message_id = receipts.normalise(str(flight.waiter.response.get("message_id")))
            message.ids[flight.index] = message_id
            self._remember(message_id)
            message.throttled = 0
            self.pacer.taken(flight.epoch)
            return None
        if status == p.ESME_RTHROTTLED and message.failure is None:
            message.throttled += 1
            if message.throttled < MAX_THROTTLED:
                pause = self.pacer.throttled(flight.epoch)
                if pause is not None:
                    limit = self.pacer.limit()
                    log.info("%s: throttled by the SMSC; pausing %.2fs%s", self.name, pause,
                             f", then at most {limit:.1f} submit_sm/s" if limit else "")
                self._requeue(message, flight.index, messages)
                return None
            message.failure = SendFailed(
                TEMPORARY, f"throttled by the SMSC {message.throttled} times in a row",
                maybe_sent=any(message.ids), sent_references=[i for i in message.ids if i])
            self._drop_rest(message, messages)
            return None
        if status in _REBIND:
            self._requeue(message, flight.index, messages)
            return f"{self.name}: the SMSC answered {p.status_name(status)}; binding again"
        kind = failure_kind(status)
        reason = f"submit_sm refused: {p.status_name(status)}"
        accepted = [i for i in message.ids if i]
        if message.failure is None:
            message.failure = SendFailed(kind, reason, maybe_sent=bool(accepted),
                                         sent_references=accepted)
        self._drop_rest(message, messages)
        if kind == OPERATOR:
            return message.failure
        return None

    @staticmethod
    def _drop_rest(message: _Message, messages: Deque[_Message]) -> None:
        message.todo.clear()
        if message in messages:
            messages.remove(message)

    @staticmethod
    def _complete(message: _Message) -> bool:
        return not message.todo and all(message.ids)

    def _outcome(self, message: _Message) -> Union[Sent, SendFailed]:
        if message.interrupted is not None:
            return self._maybe_sent(message, TEMPORARY, message.interrupted)
        if message.failure is not None:
            return message.failure
        ids = tuple(i or "" for i in message.ids)
        return Sent(ids, message.plan.sms, message.plan.encoding)

    def _final(self, stop: Optional[SendFailed], stopper: Optional[_Message],
               waiting: Deque[_Message]) -> Iterator[Tuple[Any, Union[Sent, SendFailed]]]:
        """The outcomes left when the batch ends: messages some of whose parts were
        accepted and the rest never submitted (they may have gone: an attempt), then the
        stop.  Messages never submitted are not yielded (no attempt)."""
        partial = [m for m in waiting if m.started and any(m.ids) and m is not stopper]
        reason = stop.reason if stop is not None else "stopped before its other parts went"
        last = None
        if stop is not None:
            if stopper is not None:
                last = (stopper.key, stop)
            elif partial:
                message = partial.pop()
                last = (message.key, self._maybe_sent(message, stop.kind, stop.reason))
            elif waiting:
                last = (waiting[0].key, stop)  # never submitted: kept without an attempt
        for message in partial:
            yield message.key, self._maybe_sent(message, TEMPORARY, reason)
        if last is not None:
            yield last

    @staticmethod
    def _maybe_sent(message: _Message, kind: str, reason: str) -> SendFailed:
        if message.failure is not None and message.failure.kind == PERMANENT:
            return message.failure  # refused for good before the link went: no retry
        accepted = [i for i in message.ids if i]
        return SendFailed(kind, f"{reason}; the message may have been sent", maybe_sent=True,
                          sent_references=accepted)

    def _release_holds(self) -> None:
        """Receipts whose submits are all answered may now be fetched."""
        with self._lock:
            freed = [handle for handle, tokens in self._holds.by_handle.items()
                     if not tokens & self._unanswered]
            for handle in freed:
                del self._holds.by_handle[handle]
        if freed:
            self._signal.set()
