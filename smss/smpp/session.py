"""The ESME side of one SMPP session, sans-I/O: bytes in, events out, bytes to send.

Owns sequence numbers, the requests still waiting for their response, the PDUs that
are answered without asking anyone (enquire_link, unbind, unknown commands get a
generic_nack), and the session state (open, bound, unbinding, closed).  What the
application must decide -- a deliver_sm or data_sm to store, a response to one of its
requests -- comes out of ``receive_data`` as events.  No sockets, no clocks, no threads:
``smss.smpp.link`` does the I/O around it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Dict, List, Optional, Union

from smss.smpp import pdu as p
from smss.smpp.pdu import Framer, FramingError, Pdu, PduError

log = logging.getLogger(__name__)

OPEN, BOUND, UNBINDING, CLOSED = "open", "bound", "unbinding", "closed"

BIND_COMMANDS = {
    "transceiver": p.BIND_TRANSCEIVER,
    "transmitter": p.BIND_TRANSMITTER,
    "receiver": p.BIND_RECEIVER,
}
MAX_SEQUENCE = 0x7FFFFFFF


@dataclass(frozen=True)
class Response:
    """The answer to one of our requests: its own response or a generic_nack."""

    request: Pdu
    pdu: Pdu

    @property
    def status(self) -> int:
        return self.pdu.status


@dataclass(frozen=True)
class Incoming:
    """A deliver_sm or data_sm the application must store and then answer with
    ``Session.respond``.  ``pdu`` is None when its body could not be decoded (``error``
    says why; ``frame`` holds the raw octets, to be kept rather than lost)."""

    command_id: int
    sequence: int
    pdu: Optional[Pdu]
    frame: bytes
    error: Optional[PduError] = None


@dataclass(frozen=True)
class PeerUnbound:
    """The SMSC sent unbind; it was answered and the session is closed."""


@dataclass(frozen=True)
class Notice:
    """Something only worth a log line (alert_notification, outbind, a stray response,
    a request we cannot serve and answered with an error)."""

    text: str


Event = Union[Response, Incoming, PeerUnbound, Notice]


class ProtocolViolation(Exception):
    """The byte stream is broken beyond repair; close the connection."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Session:
    def __init__(self) -> None:
        self.state = OPEN
        self._framer = Framer()
        self._sequence = 0
        self._out = bytearray()
        self.outstanding: Dict[int, Pdu] = {}  # sequence -> our request still unanswered

    # -- what we send

    def _next_sequence(self) -> int:
        self._sequence = self._sequence % MAX_SEQUENCE + 1
        while self._sequence in self.outstanding:  # only after 2**31 requests in flight...
            self._sequence = self._sequence % MAX_SEQUENCE + 1
        return self._sequence

    def send_request(self, pdu: Pdu) -> int:
        """Queue a request; returns the sequence number it was given."""
        if self.state == CLOSED:
            raise PduError("session is closed", p.ESME_RINVBNDSTS)
        pdu.sequence = self._next_sequence()
        self._out += p.encode(pdu)
        self.outstanding[pdu.sequence] = pdu
        if pdu.command_id == p.UNBIND:
            self.state = UNBINDING
        return pdu.sequence

    def respond(self, command_id: int, sequence: int, status: int = p.ESME_ROK,
                **params) -> None:
        """Answer a request of the peer (``Incoming`` events are answered this way)."""
        request = Pdu(command_id, sequence)
        self._out += p.encode(request.response(status, **params))

    def forget(self, sequence: int) -> Optional[Pdu]:
        """Stop waiting for the response to ``sequence`` (it timed out)."""
        return self.outstanding.pop(sequence, None)

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    # -- what we receive

    def receive_data(self, data: bytes) -> List[Event]:
        try:
            frames = self._framer.feed(data)
        except FramingError as exc:
            self.state = CLOSED
            raise ProtocolViolation(str(exc), exc.status) from None
        events: List[Event] = []
        for frame in frames:
            events.extend(self._frame(frame))
        return events

    def _frame(self, frame: bytes) -> List[Event]:
        _, command_id, status, sequence = p.decode_header(frame)
        try:
            pdu: Optional[Pdu] = p.decode(frame)
            error: Optional[PduError] = None
        except PduError as exc:
            pdu, error = None, exc
        if p.is_response(command_id):
            return self._response(command_id, status, sequence, pdu, error)
        if command_id in (p.DELIVER_SM, p.DATA_SM):
            return [Incoming(command_id, sequence, pdu, frame, error)]
        if pdu is None:
            assert error is not None
            self._out += p.encode(Pdu(p.GENERIC_NACK, sequence, error.status))
            return [Notice(f"answered a broken request with generic_nack: {error}")]
        if command_id == p.ENQUIRE_LINK:
            self.respond(command_id, sequence)
            return []
        if command_id == p.UNBIND:
            self.respond(command_id, sequence)
            self.state = CLOSED
            return [PeerUnbound()]
        if command_id == p.ALERT_NOTIFICATION:  # has no response
            return [Notice(f"alert_notification for {pdu.get('source_addr')}")]
        if command_id == p.OUTBIND:
            return [Notice("outbind ignored: this ESME binds by itself")]
        self._out += p.encode(Pdu(p.GENERIC_NACK, sequence, p.ESME_RINVCMDID))
        return [Notice(f"{pdu.name} from the SMSC answered with ESME_RINVCMDID")]

    def _response(self, command_id: int, status: int, sequence: int, pdu: Optional[Pdu],
                  error: Optional[PduError]) -> List[Event]:
        request = self.outstanding.pop(sequence, None)
        if request is None:
            return [Notice(f"response {p.COMMAND_NAMES.get(command_id, hex(command_id))} "
                           f"to no request (sequence {sequence}, "
                           f"{p.status_name(status)})")]
        if pdu is None:  # keep what the header says: the request is answered either way
            pdu = Pdu(command_id, sequence, status)
            log.warning("undecodable %s body: %s", pdu.name, error)
        if command_id not in (request.command_id | p.RESPONSE, p.GENERIC_NACK):
            log.warning("%s answered with %s", request.name, pdu.name)
        if request.command_id in BIND_COMMANDS.values():
            self.state = BOUND if status == p.ESME_ROK else OPEN
        elif request.command_id == p.UNBIND:
            self.state = CLOSED
        return [Response(request, pdu)]
