"""An SMSC over SMPP as a transport: the dispatcher's interface on top of ``smss.smpp``.

Owns the binds (one transceiver, or a transmitter and a receiver), sending with a
window of submit_sm in flight, a throughput limit and ESME_RTHROTTLED handled by
pausing and resubmitting, the mapping of command_status values to the dispatcher's
four kinds, the inbox (every deliver_sm stored in the spool file before it is
acknowledged, handed out as whole messages and receipts), matching receipt ids to the
ids submit_sm_resp gave (``receipt_id_format``), and reconnecting with backoff.

Two rules keep messages safe:

- A submit_sm whose response never came (timeout, link lost) may have been accepted:
  its message is reported ``maybe_sent``; a message never submitted is never reported
  as failed, so the dispatcher keeps it without counting an attempt.
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
MAX_THROTTLE_PAUSE = 30.0
REMEMBERED_IDS = 100_000  # submit_sm_resp ids kept for receipt_id_format = auto

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
_DOWN = {p.ESME_RINVBNDSTS}  # the SMSC no longer sees us bound: bind again
_SHORT_ROLES = {"transceiver": "trx", "transmitter": "tx", "receiver": "rx"}
_BIND_OPERATOR = {p.ESME_RINVPASWD, p.ESME_RINVSYSID, p.ESME_RINVSYSTYP, p.ESME_RBINDFAIL}


def failure_kind(status: int) -> str:
    """The dispatcher's kind for a submit_sm_resp command_status (not ROK, not throttled)."""
    if status in _PERMANENT:
        return PERMANENT
    if status in _OPERATOR:
        return OPERATOR
    if status in _DOWN:
        return DOWN
    return TEMPORARY


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass
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
    interrupted: bool = False  # a part was in flight when the link went


@dataclass
class _Flight:
    message: _Message
    index: int
    waiter: Waiter
    deadline: float


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
        self._next_submit_at = 0.0
        self._paused_until = 0.0
        self._pause = settings.throttle_delay
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
        raise SendFailed(DOWN, "no outcome")  # not reached: send_many always yields

    def _plan(self, text: str) -> SubmitPlan:
        self._reference = (self._reference + 1) % 0x10000
        return plan_submit(text, long_messages=self.settings.long_messages,
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

    def _pace_delay(self) -> float:
        return max(self._next_submit_at, self._paused_until) - self._clock()

    def _paced(self) -> None:
        if self.settings.throughput > 0:
            now = self._clock()
            self._next_submit_at = max(now, self._next_submit_at) + 1.0 / self.settings.throughput

    def send_many(self, items: Sequence[Tuple[Any, str, str]]
                  ) -> Iterator[Tuple[Any, Union[Sent, SendFailed]]]:
        """Up to ``window`` submit_sm in flight (parts of one message and of several).
        Outcomes come as messages finish.  When the link goes (or the SMSC stops us with
        an error that is not the message's fault) nothing new is submitted; messages that
        had a part in flight come out as TEMPORARY ``maybe_sent`` and the batch ends with
        one DOWN or OPERATOR outcome (``maybe_sent`` when its message may have gone).
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
        done: "queue.Queue[int]" = queue.Queue()
        flights: Dict[int, _Flight] = {}
        stop: Optional[SendFailed] = None  # why nothing more is submitted
        stopper: Optional[_Message] = None  # whose outcome the stop is
        interrupted: List[_Message] = []
        give_up_at: Optional[float] = None  # after a timeout: when to stop waiting at all
        try:
            while flights or (messages and stop is None):
                # 1. submit what the window, the pace and the SMSC allow
                while messages and stop is None and len(flights) < self.window:
                    if self._pace_delay() > 0:
                        break
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
                        stop = SendFailed(DOWN, f"{self.name}: {exc}")
                        break
                    flights[token] = _Flight(message, index, waiter,
                                             self._clock() + self.settings.response_timeout)
                    message.inflight += 1
                    message.started = True
                    self._paced()
                    if not message.todo:
                        messages.popleft()
                if not flights:
                    if stop is not None or not messages:
                        break
                    self._sleep(max(0.001, self._pace_delay()))
                    continue
                # 2. wait for a response, a timeout, or the next submit slot
                now = self._clock()
                timeout = min(f.deadline for f in flights.values()) - now
                if messages and stop is None and len(flights) < self.window:
                    timeout = min(timeout, self._pace_delay())
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
                    problem = self._answered(message, flight, messages)
                    if problem is not None and stop is None:
                        stop, stopper = problem
                        if stop.kind == DOWN and stopper is None:
                            link.abort(stop.reason)
                    if message.inflight == 0 and message is not stopper:
                        if message.interrupted:
                            interrupted.append(message)
                        elif message.failure is not None or self._complete(message):
                            finished.append(message)
                if released:
                    self._release_holds()
                # 3. responses overdue: the link is dead; everything in flight may have gone
                now = self._clock()
                overdue = [f for f in flights.values() if f.deadline <= now]
                if overdue and give_up_at is None:
                    reason = (f"no submit_sm_resp within {self.settings.response_timeout:g}s; "
                              "the link is dropped")
                    if stop is None:
                        stop = SendFailed(DOWN, f"{self.name}: {reason}")
                    link.abort(reason)
                    give_up_at = now + self.settings.response_timeout
                if give_up_at is not None and now >= give_up_at:
                    for token, flight in list(flights.items()):  # the link never let go
                        flights.pop(token)
                        link.forget(flight.waiter)
                        flight.message.inflight -= 1
                        flight.message.interrupted = True
                        if flight.message.inflight == 0 and flight.message is not stopper:
                            interrupted.append(flight.message)
                    with self._lock:
                        self._unanswered.clear()
                for message in finished:
                    yield message.key, self._outcome(message)
            # the batch ended: every in-flight part is answered or given up
            yield from self._final(stop, stopper, interrupted, messages)
        finally:
            if flights:  # the caller stopped iterating with submits in flight
                with self._lock:
                    for token, flight in flights.items():
                        self._unanswered.discard(token)
                        link.forget(flight.waiter)
                self._release_holds()

    def _answered(self, message: _Message, flight: _Flight, messages: Deque[_Message]
                  ) -> Optional[Tuple[SendFailed, Optional[_Message]]]:
        """Apply one answer; returns (stop, its message) when sending must stop."""
        waiter = flight.waiter
        if waiter.response is None:  # the link went down with this part in flight
            message.interrupted = True
            return SendFailed(DOWN, f"{self.name}: {waiter.error}"), None
        status = waiter.response.status
        if status == p.ESME_ROK:
            message_id = receipts.normalise(str(waiter.response.get("message_id")))
            message.ids[flight.index] = message_id
            self._remember(message_id)
            message.throttled = 0
            self._pause = self.settings.throttle_delay
            return None
        if status == p.ESME_RTHROTTLED and message.failure is None:
            message.throttled += 1
            if message.throttled < MAX_THROTTLED:
                self._paused_until = self._clock() + self._pause
                log.info("%s: throttled by the SMSC; pausing %.2fs", self.name, self._pause)
                self._pause = min(self._pause * 2, max(MAX_THROTTLE_PAUSE,
                                                       self.settings.throttle_delay))
                message.todo.appendleft(flight.index)
                if message not in messages:
                    messages.appendleft(message)
                return None
            message.failure = SendFailed(
                TEMPORARY, f"throttled by the SMSC {message.throttled} times in a row",
                maybe_sent=any(message.ids), sent_references=[i for i in message.ids if i])
            self._drop_rest(message, messages)
            return None
        kind = failure_kind(status)
        reason = f"submit_sm refused: {p.status_name(status)}"
        accepted = [i for i in message.ids if i]
        if message.failure is None:
            message.failure = SendFailed(kind, reason, maybe_sent=bool(accepted),
                                         sent_references=accepted)
        self._drop_rest(message, messages)
        if kind in (DOWN, OPERATOR):
            return message.failure, message
        return None

    @staticmethod
    def _drop_rest(message: _Message, messages: Deque[_Message]) -> None:
        message.todo.clear()
        if message in messages:
            messages.remove(message)

    @staticmethod
    def _complete(message: _Message) -> bool:
        return not message.todo and all(message.ids)

    @staticmethod
    def _outcome(message: _Message) -> Union[Sent, SendFailed]:
        if message.failure is not None:
            return message.failure
        ids = tuple(i or "" for i in message.ids)
        return Sent(ids, message.plan.sms, message.plan.encoding)

    def _final(self, stop: Optional[SendFailed], stopper: Optional[_Message],
               interrupted: List[_Message], waiting: Deque[_Message]
               ) -> Iterator[Tuple[Any, Union[Sent, SendFailed]]]:
        """The outcomes left when the batch ends: interrupted messages, then the stop."""
        # a message with parts accepted but others never submitted also may have gone
        for message in list(waiting):
            if message.started and any(message.ids) and message not in interrupted:
                interrupted.append(message)
        if stop is None:
            for message in interrupted:
                yield message.key, self._maybe_sent(message, TEMPORARY, "interrupted")
            return
        last = None
        if stopper is not None:
            last = (stopper.key, stop)
        elif interrupted:
            message = interrupted.pop()
            last = (message.key, self._maybe_sent(message, stop.kind, stop.reason))
        elif waiting:
            last = (waiting[0].key, stop)  # never submitted: kept without an attempt
        for message in interrupted:
            yield message.key, self._maybe_sent(message, TEMPORARY, stop.reason)
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
