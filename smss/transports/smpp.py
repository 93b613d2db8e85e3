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
from typing import (
    Any,
    Callable,
    Deque,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from smss.smpp import pdu as p
from smss.smpp import receipt as receipts
from smss.smpp.inbox import is_receipt, read
from smss.smpp.link import BindParams, BindRefused, Link, LinkDown, Waiter, read_links
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


def _role(name: str) -> str:
    """The bind mode of a bind's name (``transceiver#2`` is a transceiver)."""
    return name.split("#", 1)[0]


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


@dataclass(eq=False)
class _Bind:
    """A sending bind during one ``send_many``: its link and what is in flight on it."""

    name: str
    link: Link
    flights: int = 0
    lost: Optional[str] = None  # why its link went: bind again before submitting more
    rebound: bool = False  # bound again in this batch, and nothing taken since
    give_up_at: Optional[float] = None  # after a timeout: when to stop waiting at all


def _least_busy(binds: List[_Bind], window: int) -> Optional[_Bind]:
    """The bind with the fewest in flight that has room in its window and is up."""
    best = None
    for bind in binds:
        if bind.lost is None and bind.flights < window and (
                best is None or bind.flights < best.flights):
            best = bind
    return best


@dataclass
class _Flight:
    message: _Message
    index: int
    waiter: Waiter
    deadline: float
    epoch: int  # the throttle episode it went out in
    bind: _Bind


@dataclass
class _Holds:
    """Receipts kept back: handle -> the submit tokens unanswered when it arrived."""

    by_handle: Dict[str, frozenset] = field(default_factory=dict)


class SmppTransport(Transport):
    streams = True  # the dispatcher feeds send_many from the queue (its window, or 1)
    def __init__(self, settings: SmppSettings, *,
                 clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = _utcnow,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.name = settings.transport_name
        self.window = settings.window * settings.binds  # in flight over all binds
        self.receives = settings.bind != "transmitter"
        self.tracks_delivery = settings.registered_delivery and self.receives
        self._clock, self._now, self._sleep = clock, now, sleep
        # a bind's name is its role, and for the 2nd ... Nth sending bind role#N
        sending = "transmitter" if settings.bind == "transmitter+receiver" else settings.bind
        self._tx_names: Tuple[str, ...] = (sending,) + tuple(
            f"{sending}#{number}" for number in range(2, settings.binds + 1))
        self._roles: Tuple[str, ...] = self._tx_names + (
            ("receiver",) if settings.bind == "transmitter+receiver" else ())
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
        bind = BindParams(_role(role), s.system_id, s.password, s.system_type,
                          s.interface_version, address_range=s.address_range)
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

    def _rebind(self, role: str, reason: str) -> Link:
        """Bind a sending bind again at once (its link went in a batch)."""
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
        """registration: each bind up or down (``trx up``, ``tx up, rx down``; several
        sending binds as ``trx 3/4 up``; the column is short: why a bind dropped is in
        ``last_drop`` and the log); operator: the SMSC's system_id."""
        ups: Dict[str, List[bool]] = {}
        peer = ""
        for role in self._roles:
            link = self._links.get(role)
            up = link is not None and link.alive
            ups.setdefault(_role(role), []).append(up)
            if up and link is not None:
                peer = peer or link.peer_system_id
        parts = []
        for role, states in ups.items():
            short = _SHORT_ROLES[role]
            if len(states) == 1:
                parts.append(f"{short} {'up' if states[0] else 'down'}")
            else:
                parts.append(f"{short} {sum(states)}/{len(states)} up")
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

    def send_many(self, items: Iterable[Tuple[Any, str, str]]
                  ) -> Iterator[Tuple[Any, Union[Sent, SendFailed]]]:
        """Up to ``window`` submit_sm in flight on each sending bind (parts of one message
        and of several; a submit goes on the bind with the fewest in flight), paced by
        ``self.pacer`` over all binds.  The next item is taken only when a submit_sm can go
        now.  Outcomes come as messages finish.  When a bind's link goes, the messages
        with a part in flight there come out TEMPORARY ``maybe_sent`` (a part that never
        reached the socket is simply submitted again), that bind is bound again at once
        and the batch goes on; a bind that fails, or a link that goes again before the
        SMSC took anything, is left out of the batch, and when no bind is left the batch
        ends with one DOWN or OPERATOR outcome.  So does an error that is not the
        message's fault.  A stop request (``stopping``) submits nothing more: what is in
        flight is answered, the rest is not yielded.  Messages not yielded were not
        submitted.  Closing the generator early abandons what is in flight: treat those
        messages as maybe sent."""
        source: Optional[Iterator[Tuple[Any, str, str]]] = iter(items)
        refused: List[Tuple[Any, SendFailed]] = []  # could not be planned: failed for good

        def take() -> Optional[_Message]:
            nonlocal source
            while source is not None:
                item = next(source, None)
                if item is None:
                    source = None
                    break
                key, phone, text = item
                try:
                    plan = self._plan(text)
                except ValueError as exc:
                    refused.append((key, SendFailed(PERMANENT, str(exc))))
                    continue
                return _Message(key, phone, plan, [None] * len(plan.submits),
                                collections.deque(range(len(plan.submits))))
            return None

        messages: Deque[_Message] = collections.deque()
        first = take()
        yield from refused
        refused.clear()
        if first is None:
            return
        messages.append(first)
        try:
            binds = self._sending_binds()
        except SendFailed as exc:
            yield first.key, exc
            return
        for bind in binds:  # this thread reads their answers (no hand-off per PDU)
            bind.link.borrow_reading()
        pacer = self.pacer
        per_bind = self.settings.window
        done: "queue.SimpleQueue[int]" = queue.SimpleQueue()
        flights: Dict[int, _Flight] = {}
        stop: Optional[SendFailed] = None  # why nothing more is submitted
        stopper: Optional[_Message] = None  # whose outcome the stop is
        down: Optional[SendFailed] = None  # why the last bind left the batch
        try:
            while True:
                halted = stop is not None or self.stopping()
                # 1. submit what the windows, the pace and the SMSC allow (each bind's
                #    submits of this round in one write)
                corked = [b.link for b in binds if b.lost is None]
                for link in corked:
                    link.cork()
                while not halted and pacer.delay() <= 0:
                    bind = _least_busy(binds, per_bind)
                    if bind is None:
                        break
                    if not messages:
                        message = take()
                        if message is None:
                            break
                        messages.append(message)
                    message = messages[0]
                    index = message.todo.popleft()
                    token = next(self._tokens)
                    with self._lock:
                        self._unanswered.add(token)
                    try:
                        waiter = bind.link.request(self._submit_pdu(message, index),
                                                   lambda _w, t=token: done.put(t))
                    except LinkDown as exc:
                        with self._lock:
                            self._unanswered.discard(token)
                        message.todo.appendleft(index)
                        bind.lost = str(exc)
                        continue
                    flights[token] = _Flight(message, index, waiter,
                                             self._clock() + self.settings.response_timeout,
                                             pacer.sent(), bind)
                    bind.flights += 1
                    message.inflight += 1
                    message.started = True
                    if not message.todo:
                        messages.popleft()
                for link in corked:
                    link.uncork()
                if refused:
                    yield from refused
                    refused.clear()
                # 2. a bind whose link went, with nothing in flight any more: bind again
                for bind in [b for b in binds if b.lost is not None and not b.flights]:
                    if halted:
                        continue
                    if not messages:  # only for a message to send (it has the outcome)
                        message = take()
                        if message is None:
                            continue
                        messages.append(message)
                    failure = None
                    bind.link.give_back_reading()
                    if bind.rebound:
                        failure = SendFailed(DOWN, f"{self.name}: the link went again before "
                                             f"the SMSC took anything: {bind.lost}")
                    else:
                        try:
                            bind.link = self._rebind(bind.name, bind.lost or "link lost")
                            bind.lost, bind.rebound, bind.give_up_at = None, True, None
                            bind.link.borrow_reading()
                        except SendFailed as exc:
                            failure = exc
                    if failure is not None:
                        binds.remove(bind)
                        down = failure
                        if not binds and stop is None:
                            stop = failure
                more = bool(messages) or source is not None
                if not flights:
                    if stop is not None or self.stopping() or not more or not binds:
                        break
                    if any(b.lost is None for b in binds):
                        self._rest(pacer.delay())  # pacing or a throttle pause; a stop ends it
                    continue
                # 3. wait for a response, a timeout, the next submit slot, or a stop
                now = self._clock()
                timeout = min(f.deadline for f in flights.values()) - now
                if more and not halted:
                    timeout = min(timeout, STOP_POLL)
                    if _least_busy(binds, per_bind) is not None:
                        timeout = min(timeout, pacer.delay())
                for bind in binds:
                    if bind.give_up_at is not None:
                        timeout = min(timeout, bind.give_up_at - now)
                tokens = []
                try:
                    tokens.append(done.get_nowait())
                except queue.Empty:
                    readers = [b.link for b in binds if b.lost is None]
                    if readers:  # answers are read here and put in ``done`` at once
                        read_links(readers, max(0.001, timeout))
                    else:  # only links going down: their I/O threads tell
                        try:
                            tokens.append(done.get(timeout=max(0.001, timeout)))
                        except queue.Empty:
                            pass
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
                    bind = flight.bind
                    bind.flights -= 1
                    waiter = flight.waiter
                    if waiter.response is None:  # the link went with this part in flight
                        bind.lost = bind.lost or f"{self.name}: {waiter.error}"
                        if waiter.written:
                            message.interrupted = bind.lost
                        else:  # never reached the socket: the SMSC cannot have it
                            self._requeue(message, flight.index, messages)
                    else:
                        if waiter.response.status == p.ESME_ROK:
                            bind.rebound = False
                        outcome = self._answered(message, flight, messages)
                        if isinstance(outcome, str):  # not bound, says the SMSC
                            bind.lost = bind.lost or outcome
                            bind.link.abort(outcome)
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
                # 4. responses overdue: that link is dead; what is in flight may have gone
                now = self._clock()
                for flight in flights.values():
                    bind = flight.bind
                    if flight.deadline <= now and bind.give_up_at is None:
                        reason = (f"{self.name}: no submit_sm_resp within "
                                  f"{self.settings.response_timeout:g}s; the link is dropped")
                        bind.lost = bind.lost or reason
                        bind.link.abort(reason)
                        bind.give_up_at = now + self.settings.response_timeout
                for token, flight in list(flights.items()):
                    bind = flight.bind
                    if bind.give_up_at is None or now < bind.give_up_at:
                        continue
                    flights.pop(token)  # the link never let go
                    bind.link.forget(flight.waiter)
                    bind.flights -= 1
                    with self._lock:
                        self._unanswered.discard(token)
                    flight.message.inflight -= 1
                    flight.message.interrupted = bind.lost
                    if flight.message.inflight == 0 and flight.message is not stopper:
                        self._drop_rest(flight.message, messages)
                        finished.append(flight.message)
                for message in finished:
                    yield message.key, self._outcome(message)
            # the batch ended: every in-flight part is answered or given up
            if stop is None and down is not None and not binds and messages:
                stop = down
            yield from self._final(stop, stopper, messages)
        finally:
            for bind in binds:
                bind.link.give_back_reading()
            if flights:  # the caller stopped iterating with submits in flight
                with self._lock:
                    for token, flight in flights.items():
                        self._unanswered.discard(token)
                        flight.bind.link.forget(flight.waiter)
                self._release_holds()

    def _sending_binds(self) -> List["_Bind"]:
        """The sending binds that are up, each bound now if it was down and its backoff
        allows; raises the first bind's SendFailed when none is."""
        binds, problem = [], None
        for name in self._tx_names:
            try:
                binds.append(_Bind(name, self._link(name)))
            except SendFailed as exc:
                if problem is None or exc.kind == OPERATOR:
                    problem = exc
        if not binds:
            assert problem is not None
            raise problem
        return binds

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
