"""The one interface between the dispatcher and whatever sends SMS.

A transport (the AT modem, an SMPP link, a GoIP or Yeastar gateway) opens,
sends one message at a time, lists what came in, deletes what was stored,
and tells its state.  When a send fails it raises ``SendFailed`` with one of
four kinds, and the dispatcher needs nothing else to decide:

- ``PERMANENT``: this message will never go: fail it.
- ``TEMPORARY``: this message may go later: count an attempt, back off.
- ``DOWN``: the transport is unusable now (link lost, no network, timeout):
  keep every message, end the pass.
- ``OPERATOR``: a person must act (PIN, PUK, no SIM): keep every message, end
  the pass, say so loudly.

``maybe_sent`` marks a failure after which the message may still have been
sent (a timeout after the PDU went out): it counts as an attempt.

A message that goes out as several SMS carries a ``Progress``: which parts an
earlier attempt got confirmed, and under which concatenation reference.  A
transport that can resume sends only the missing parts and records each step
in it (the dispatcher keeps it with the queued message); one that cannot
ignores it and sends the whole message.
"""

from __future__ import annotations

import abc
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from smss.gsm import alphabet

PERMANENT, TEMPORARY, DOWN, OPERATOR = "permanent", "temporary", "down", "operator"


class SendFailed(Exception):
    def __init__(self, kind: str, reason: str, *, maybe_sent: bool = False,
                 sent_references: Sequence[str] = ()) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.maybe_sent = maybe_sent
        self.sent_references = tuple(sent_references)


@dataclass
class Progress:
    """How far the sending of one message in parts got, for a retry to go on from.

    ``concat_reference`` ties the parts together on the phone; ``confirmed`` holds the
    reference the network gave each part it accepted.  A resuming transport calls
    ``begin`` before the first part it sends and ``confirm`` after each accepted part;
    both hand the new state to ``save`` (the dispatcher commits it with the queued
    message) before the next part goes out, so even a dispatcher that dies keeps what was
    confirmed.  The parts are numbered from 1.
    """

    transport: str = ""
    concat_reference: Optional[int] = None
    parts: int = 0
    confirmed: Dict[int, str] = field(default_factory=dict)
    save: Callable[["Progress"], None] = field(default=lambda progress: None, repr=False,
                                               compare=False)

    def begin(self, concat_reference: int, parts: int) -> None:
        """The message goes as ``parts`` SMS under ``concat_reference``; a different split
        than the one recorded starts afresh (nothing confirmed)."""
        if (self.concat_reference, self.parts) == (concat_reference, parts):
            return
        self.concat_reference, self.parts, self.confirmed = concat_reference, parts, {}
        self.save(self)

    def confirm(self, part: int, reference: str) -> None:
        self.confirmed[part] = reference
        self.save(self)

    def references(self) -> Tuple[str, ...]:
        """The references of the confirmed parts, in part order."""
        return tuple(self.confirmed[part] for part in sorted(self.confirmed))

    def encode(self) -> str:
        return json.dumps({"transport": self.transport, "concat": self.concat_reference,
                           "parts": self.parts,
                           "confirmed": {str(k): v for k, v in sorted(self.confirmed.items())}})

    @classmethod
    def decode(cls, text: Optional[str]) -> Optional["Progress"]:
        """The progress ``encode`` wrote; None for nothing or something unreadable."""
        if not text:
            return None
        try:
            data = json.loads(text)
            return cls(str(data["transport"]), data["concat"], int(data["parts"]),
                       {int(k): str(v) for k, v in data["confirmed"].items()})
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    @classmethod
    def resume(cls, text: Optional[str], transport: str,
               save: Callable[["Progress"], None]) -> "Progress":
        """The stored progress when ``transport`` made it, else a fresh one: another
        transport's parts went from another number under its own references."""
        stored = cls.decode(text)
        if stored is None or stored.transport != transport:
            return cls(transport, save=save)
        stored.save = save
        return stored


@dataclass(frozen=True)
class Sent:
    references: Tuple[str, ...]  # one per part, as the transport names them
    parts: int
    encoding: str = ""


@dataclass(frozen=True)
class InboundMessage:
    handles: Tuple  # what ``delete`` needs to remove every part from the device
    phone: str
    text: str
    sent_at: Optional[datetime] = None  # sender's timestamp, naive UTC
    parts: int = 1
    smsc: str = ""
    raw_pdu: Optional[str] = None  # an undecodable message is stored raw
    error: Optional[str] = None
    message_class: Optional[int] = None
    references: Tuple[int, ...] = ()  # concatenation reference of each part, for hooks


@dataclass(frozen=True)
class DeliveryReport:
    handles: Tuple
    reference: str
    delivered: Optional[bool]  # None: the network is still trying
    status_code: int
    recipient: str = ""


@dataclass
class Inbox:
    messages: List[InboundMessage] = field(default_factory=list)
    reports: List[DeliveryReport] = field(default_factory=list)


@dataclass(frozen=True)
class TransportState:
    signal_dbm: Optional[int] = None
    registration: Optional[str] = None
    operator: Optional[str] = None


def wait_until(timeout: float, arrived: Callable[[], bool],
               wake: Optional[threading.Event] = None, *, tick: Callable[[], None] = lambda: None,
               idle: Optional[threading.Event] = None,
               clock: Callable[[], float] = time.monotonic, step: float = 0.05) -> bool:
    """The waiting of ``Transport.wait``: True as soon as ``arrived()``; False when ``wake``
    is set or ``timeout`` passes.  ``tick`` runs every round (a transport re-binds or
    reconnects there); between rounds it sleeps ``step`` on ``wake``, else on ``idle``
    (which the transport sets when something comes in), else plainly."""
    deadline = clock() + timeout
    while True:
        if arrived():
            return True
        tick()
        remaining = deadline - clock()
        if remaining <= 0:
            return False
        pause = min(step, remaining)
        if wake is not None:
            if wake.wait(pause):
                return False
        elif idle is not None:
            idle.wait(pause)
        else:
            time.sleep(pause)


@dataclass
class Probe:
    """What a transport says about itself when asked without sending anything
    (``smss check``, ``smss doctor``): facts in the order to show them, and the problems
    among them (each a sentence a person can act on)."""

    facts: List[Tuple[str, str]] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)

    def add(self, label: str, value: Any) -> None:
        if value not in (None, ""):
            self.facts.append((label, str(value)))


class Transport(abc.ABC):
    name: str = "transport"
    tracks_delivery: bool = False
    #: longest pause before opening again after the transport went down
    #: ([dispatcher] reopen_max_delay, set by ``smss.transports.from_config``)
    reopen_max_delay: float = 60.0
    #: [messages] transliterate (set by ``smss.transports.from_config``): the text goes
    #: with Czech and Slovak diacritics as plain letters, so it stays GSM-7
    transliterate: bool = False
    #: True once the dispatcher is asked to stop (SIGTERM); set by the Dispatcher.  A
    #: transport that waits inside ``send``/``send_many`` (a throttle pause) ends the wait
    #: and starts nothing new, so a stop is honoured within about a second.
    stopping: Callable[[], bool] = staticmethod(lambda: False)

    def sendable(self, text: str) -> str:
        """The text as it goes to the device (and as its SMS parts are counted): the
        transliteration ``smss.spooler.validate`` counted the parts stored in ``msg`` with,
        and the web form's counter shows."""
        return alphabet.transliterate(text) if self.transliterate else text

    def reopen_delay(self, failures: int) -> float:
        """The pause before the ``failures``-th consecutive re-open (``failures`` >= 1:
        the transport went down, or did not open, that many times in a row since it
        last opened): 1 s, doubling, at most ``reopen_max_delay``."""
        return min(2.0 ** max(0, failures - 1), self.reopen_max_delay)

    @abc.abstractmethod
    def open(self) -> None:
        """Connect and initialise; raises SendFailed (DOWN or OPERATOR) when it cannot."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def abort(self, reason: str) -> None:
        """Called from another thread when this transport's pass made no progress for
        ``pass_timeout``: make the call blocked in it return soon, raising SendFailed
        (DOWN, ``reason``).  The dispatcher then closes the transport and opens it again
        later.  The default does nothing: it suits a transport whose every blocking call
        ends by its own timeout (the HTTP and SMPP ones)."""
        return None

    @abc.abstractmethod
    def send(self, phone: str, text: str, progress: Optional[Progress] = None) -> Sent:
        """Send one message (all its parts); raises SendFailed.  With ``progress`` a
        transport may send only the parts not yet confirmed (see ``Progress``); ``Sent``
        then names every part's reference, the earlier ones included."""

    #: how many messages may be in flight at once through ``send_many`` (SMPP window)
    window: int = 1
    #: ``send_many`` is how it sends (SMPP, GoIP): the dispatcher feeds it from the queue
    #: (``check_and_send.windowed``) even with a window of 1; the modem and Yeastar send
    #: message by message, resuming a message in parts (``Progress``)
    streams: bool = False

    def send_many(self, items: Sequence[Tuple[Any, str, str]]
                  ) -> Iterator[Tuple[Any, Union[Sent, SendFailed]]]:
        """Send ``(key, phone, text)`` items, at most ``window`` in flight; yield each key
        with its outcome as it completes (in any order).  A SendFailed of kind DOWN or
        OPERATOR ends the batch: the items not yet yielded were not sent.  ``items`` may
        be an iterator that waits until each item may go (the dispatcher's feed hands a
        message over once its "sending" mark is committed): take the next item only when
        it can be sent now, never ahead.  The default sends one at a time."""
        for key, phone, text in items:
            try:
                yield key, self.send(phone, text)
            except SendFailed as exc:
                yield key, exc
                if exc.kind in (DOWN, OPERATOR):
                    return

    def fetch(self) -> Inbox:
        """What came in and is waiting to be stored."""
        return Inbox()

    def delete(self, handles: Sequence) -> None:
        """Remove stored items after they were committed."""
        return None

    def state(self) -> TransportState:
        return TransportState()

    def ussd(self, code: str, timeout: float) -> str:
        """Run a USSD code ("*100#") and return the network's answer as text; raises
        SendFailed.  Transports that cannot do USSD keep this default."""
        raise SendFailed(PERMANENT, "USSD is not supported by this transport")

    def probe(self) -> Probe:
        """Reach the device, ask what it tells about itself, let go: nothing is sent and
        nothing taken off it.  Raises SendFailed when it cannot be reached.  The default
        opens the transport and reads its state."""
        self.open()
        try:
            state = self.state()
        finally:
            self.close()
        found = Probe()
        found.add("registration", state.registration)
        found.add("operator", state.operator)
        found.add("signal", None if state.signal_dbm is None else f"{state.signal_dbm} dBm")
        return found

    def wait(self, timeout: float, wake: Optional[threading.Event] = None) -> bool:
        """Block up to ``timeout`` seconds, or until ``wake`` is set; True when something
        arrived on the transport (for --loop)."""
        if wake is not None:
            wake.wait(timeout)
        else:
            time.sleep(timeout)
        return False
