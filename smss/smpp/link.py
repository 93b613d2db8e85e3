"""One SMPP connection: a socket, one I/O thread, and the ``Session`` it drives.

Owns connecting and binding, writing requests from any thread (the caller writes a
request itself when nothing else waits to be written, else it is queued for the I/O
thread, so no caller ever blocks on a full socket; a request that fails before its last
byte reached the socket says so, ``Waiter.written``), reading and handing out responses
(by the I/O thread, or by a thread that borrowed the reading for a batch:
``borrow_reading``, ``read_links``, so a busy sender waits for its answers without a
hand-off between threads per PDU), answering enquire_link and unbind, sending
enquire_link when the SMSC has been quiet for ``enquire_link_interval`` (and dropping
the link when that goes unanswered for ``response_timeout``), unbinding on close, and
telling every caller still waiting when the link goes down.  deliver_sm and data_sm go
to ``on_incoming``, which stores them and returns the command_status each one is
answered with.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

from smss.smpp import pdu as p
from smss.smpp.pdu import Pdu, PduError
from smss.smpp.session import (
    BIND_COMMANDS,
    BOUND,
    Incoming,
    Notice,
    PeerUnbound,
    ProtocolViolation,
    Response,
    Session,
)

log = logging.getLogger(__name__)


class LinkDown(Exception):
    """The connection is gone (or never came up); the message says why."""


class BindRefused(LinkDown):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class BindParams:
    mode: str  # "transceiver", "transmitter" or "receiver"
    system_id: str
    password: str
    system_type: str = ""
    interface_version: int = 0x34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""

    def pdu(self) -> Pdu:
        return Pdu(BIND_COMMANDS[self.mode], params={
            "system_id": self.system_id, "password": self.password,
            "system_type": self.system_type, "interface_version": self.interface_version,
            "addr_ton": self.addr_ton, "addr_npi": self.addr_npi,
            "address_range": self.address_range,
        })


_WAITERS = threading.Lock()  # guards each Waiter's resolution (short, rarely contended)


class Waiter:
    """A request waiting for its response.  ``callback(waiter)`` runs in the I/O thread
    (or in the thread that closes the link) once ``response`` or ``error`` is set.
    ``written``: every byte of the request reached the socket (False only for a request
    that failed while still queued: the peer cannot have seen it).  The event that
    ``wait`` blocks on is made only when somebody waits (a windowed submit never does)."""

    __slots__ = ("sequence", "response", "error", "written", "end", "_done", "_event",
                 "_callback")

    def __init__(self, sequence: int, callback: Optional[Callable[["Waiter"], None]]) -> None:
        self.sequence = sequence
        self.response: Optional[Pdu] = None
        self.error: Optional[str] = None
        self.written = True
        self.end: Optional[int] = None  # the link's byte count once this request is written
        self._done = False
        self._event: Optional[threading.Event] = None
        self._callback = callback

    def _resolve(self, response: Optional[Pdu], error: Optional[str],
                 written: bool = True) -> None:
        with _WAITERS:
            if self._done:
                return
            self.response, self.error, self.written = response, error, written
            self._done = True
            event = self._event
        if event is not None:
            event.set()
        if self._callback is not None:
            try:
                self._callback(self)
            except Exception:  # noqa: BLE001 - a callback must not kill the I/O thread
                log.exception("response callback failed")

    def wait(self, timeout: Optional[float]) -> bool:
        with _WAITERS:
            if self._done:
                return True
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        return event.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done


IncomingHandler = Callable[["Link", List[Incoming]], List[int]]


class Link:
    def __init__(self, host: str, port: int, bind: BindParams, *, name: str = "",
                 response_timeout: float = 30.0, enquire_link_interval: float = 30.0,
                 on_incoming: Optional[IncomingHandler] = None,
                 on_down: Optional[Callable[["Link", str], None]] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.host, self.port, self.bind = host, port, bind
        self.name = name or f"{bind.mode}@{host}:{port}"
        self.response_timeout = response_timeout
        self.enquire_link_interval = enquire_link_interval
        self._on_incoming = on_incoming
        self._on_down = on_down
        self._clock = clock
        self._session = Session()
        self._lock = threading.Lock()
        self._waiters: Dict[int, Waiter] = {}
        self._sock: Optional[socket.socket] = None
        self._wake_r = self._wake_w = -1
        self._thread: Optional[threading.Thread] = None
        self._wbuf = bytearray()
        self._queued = 0  # bytes ever put into _wbuf
        self._flushed = 0  # bytes ever written to the socket
        self._abort: Optional[str] = None  # stop now, for this reason
        self._finish: Optional[str] = None  # stop once everything queued is written
        self._down = False
        self._bound = False
        self._by_us = False  # we asked for the end: no on_down
        self.down_reason: Optional[str] = None
        self.peer_system_id = ""
        self.peer_interface_version: Optional[int] = None
        self._last_received = 0.0
        self._enquire: Optional[Waiter] = None
        self._enquire_sent = 0.0
        self._reader = threading.Lock()  # held by whoever reads the socket
        self._borrowed = False  # a caller reads the socket now, not the I/O thread
        self._close_later = False  # gone while borrowed: closed when given back
        self._corked = False  # requests wait in the buffer for ``uncork`` (one write)

    # -- life

    @property
    def alive(self) -> bool:
        return self._bound and not self._down

    def open(self) -> None:
        """Connect and bind; raises LinkDown or BindRefused."""
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.response_timeout)
        except OSError as exc:
            raise LinkDown(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        self._sock = sock
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._last_received = self._clock()
        self._thread = threading.Thread(target=self._run, name=f"smpp {self.name}", daemon=True)
        self._thread.start()
        waiter = self.request(self.bind.pdu())
        if not waiter.wait(self.response_timeout):
            self.abort(f"no bind response within {self.response_timeout:g}s")
            raise LinkDown(f"{self.name}: no answer to bind_{self.bind.mode} within "
                           f"{self.response_timeout:g}s")
        if waiter.error is not None:
            raise LinkDown(f"{self.name}: {waiter.error}")
        response = waiter.response
        assert response is not None
        if response.status != p.ESME_ROK:
            self.abort("bind refused", by_us=True)
            raise BindRefused(f"{self.name}: bind_{self.bind.mode} refused: "
                              f"{p.status_name(response.status)}", response.status)
        self.peer_system_id = str(response.get("system_id"))
        self.peer_interface_version = response.tlv_int(p.TLV_SC_INTERFACE_VERSION)
        self._bound = True
        log.info("%s bound (SMSC %s)", self.name, self.peer_system_id or "-")

    def close(self, timeout: Optional[float] = None) -> None:
        """Unbind (waiting up to ``timeout`` for unbind_resp) and close."""
        timeout = self.response_timeout if timeout is None else timeout
        if self._thread is None:
            return
        with self._lock:
            self._by_us = True
            can_unbind = not self._down and self._session.state == BOUND
        if can_unbind:
            try:
                self.request(Pdu(p.UNBIND)).wait(timeout)
            except LinkDown:
                pass
        with self._lock:
            if self._finish is None:
                self._finish = "closed"
        self._wake()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.abort("close timed out", by_us=True)
            self._thread.join(timeout)

    def abort(self, reason: str, *, by_us: bool = False) -> None:
        """Drop the connection now; every waiting request fails with ``reason``."""
        with self._lock:
            if by_us:
                self._by_us = True
            if self._abort is None:
                self._abort = reason
        self._wake()

    # -- requests

    def request(self, pdu: Pdu, callback: Optional[Callable[[Waiter], None]] = None) -> Waiter:
        """Send ``pdu`` (a request); raises LinkDown when the link is gone.  When nothing
        is waiting to be written the calling thread writes it to the socket itself (no
        hand-off to the I/O thread); what the socket does not take at once is left to the
        I/O thread."""
        with self._lock:
            if self._down or self._abort or self._finish:
                raise LinkDown(self.down_reason or self._abort or self._finish or "link closed")
            idle = not self._wbuf
            try:
                sequence = self._session.send_request(pdu)
            except PduError as exc:
                raise LinkDown(f"cannot send {pdu.name}: {exc}") from None
            waiter = Waiter(sequence, callback)
            self._waiters[sequence] = waiter
            self._take_output()
            waiter.end = self._queued
            if self._corked:
                return waiter
            pending = not self._write_now() if idle else True
        if pending:
            self._wake()
        return waiter

    def cork(self) -> None:
        """Requests from now on wait in the buffer until ``uncork`` writes them together
        (one write for a window's worth of submit_sm); for the thread that sends."""
        with self._lock:
            self._corked = True

    def uncork(self) -> None:
        """Write what the requests since ``cork`` queued, at once."""
        with self._lock:
            if not self._corked:
                return
            self._corked = False
            if not self._wbuf or self._down:
                return
            pending = not self._write_now()
        if pending:
            self._wake()

    def _write_now(self) -> bool:
        """Write the buffer from the calling thread (under the lock); True when the socket
        took all of it, else the I/O thread is to write the rest."""
        if self._sock is None:
            return False
        try:
            sent = self._sock.send(self._wbuf)
        except OSError:  # full, or broken: the I/O thread writes or finds out
            sent = 0
        del self._wbuf[:sent]
        self._flushed += sent
        return not self._wbuf

    def _take_output(self) -> None:
        """Move what the session has to send into the write buffer (under the lock)."""
        data = self._session.data_to_send()
        self._wbuf += data
        self._queued += len(data)

    def forget(self, waiter: Waiter) -> None:
        with self._lock:
            self._session.forget(waiter.sequence)
            self._waiters.pop(waiter.sequence, None)

    def _wake(self) -> None:
        with self._lock:  # under the lock: the I/O thread closes the pipe under it too
            if self._wake_w >= 0:
                try:
                    os.write(self._wake_w, b"x")
                except BlockingIOError:
                    pass  # the pipe is full: a wake is pending anyway

    # -- reading from the sending thread

    def borrow_reading(self) -> bool:
        """From now on the calling thread reads the socket (``read_links``) and the I/O
        thread leaves it alone (it still writes what the socket did not take, and keeps
        the timers); False when the link is gone.  ``give_back_reading`` ends it."""
        with self._lock:
            if self._down or self._sock is None or self._borrowed:
                return not self._down and self._borrowed
            self._borrowed = True
        self._reader.acquire()
        self._wake()  # the I/O thread takes the socket out of its select
        return True

    def give_back_reading(self) -> None:
        """The I/O thread reads again (a link that went down meanwhile is closed now)."""
        with self._lock:
            if not self._borrowed:
                return
            self._borrowed = False
            close = self._close_later
            self._close_later = False
            self._reader.release()
        if close and self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._wake()

    def _readable_socket(self) -> Optional[socket.socket]:
        """The socket, for the thread that borrowed the reading; None when the link is
        going (its waiters are told by the I/O thread)."""
        with self._lock:
            if not self._borrowed or self._down or self._abort or self._finish:
                return None
            return self._sock

    def _take_in(self, sock: socket.socket) -> None:
        """Read what is there (the borrowing thread) and handle it as the I/O thread
        would: responses resolve their waiters in this thread."""
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            self.abort(f"connection error: {exc}")
            return
        if not data:
            self.abort("connection closed by the SMSC")
            return
        self._received(data)

    # -- the I/O thread

    def _run(self) -> None:
        reason = "closed"
        sock = self._sock
        assert sock is not None
        try:
            while True:
                with self._lock:
                    self._take_output()
                    if self._abort is not None:
                        reason = self._abort
                        break
                    if self._finish is not None and not self._wbuf:
                        reason = self._finish
                        break
                    writing = bool(self._wbuf)
                    reading = [sock, self._wake_r] if not self._borrowed else [self._wake_r]
                readable, writable, _ = select.select(
                    reading, [sock] if writing else [], [], self._timer_delay())
                if self._wake_r in readable:
                    try:
                        while os.read(self._wake_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                if sock in readable and self._reader.acquire(blocking=False):
                    try:
                        data = sock.recv(65536)
                    except BlockingIOError:
                        data = None
                    finally:
                        self._reader.release()
                    if data == b"":
                        reason = "connection closed by the SMSC"
                        break
                    if data:
                        self._received(data)
                if sock in writable:
                    with self._lock:
                        try:
                            sent = sock.send(self._wbuf)
                        except BlockingIOError:
                            sent = 0
                        del self._wbuf[:sent]
                        self._flushed += sent
                self._timers()
        except OSError as exc:
            reason = f"connection error: {exc}"
        except Exception as exc:  # noqa: BLE001 - whatever broke, callers must hear of it
            log.exception("%s: I/O thread failed", self.name)
            reason = f"internal error: {exc}"
        self._shutdown(reason)

    def _received(self, data: bytes) -> None:
        self._last_received = self._clock()
        with self._lock:
            try:
                events = self._session.receive_data(data)
            except ProtocolViolation as exc:
                self._abort = f"protocol error: {exc}"
                violated = True
            else:
                violated = False
        if violated:
            self._wake()  # the I/O thread ends the link (this may be a borrowing thread)
            return
        incoming: List[Incoming] = []
        for event in events:
            if isinstance(event, Response):
                with self._lock:
                    waiter = self._waiters.pop(event.pdu.sequence, None)
                if waiter is not None:
                    waiter._resolve(event.pdu, None)
            elif isinstance(event, Incoming):
                incoming.append(event)
            elif isinstance(event, PeerUnbound):
                log.info("%s: the SMSC unbound", self.name)
                with self._lock:
                    self._finish = "unbound by the SMSC"
            elif isinstance(event, Notice):
                log.info("%s: %s", self.name, event.text)
        if incoming:
            statuses = self._store(incoming)
            with self._lock:
                for event, status in zip(incoming, statuses):
                    self._session.respond(event.command_id, event.sequence, status)

    def _store(self, incoming: List[Incoming]) -> List[int]:
        if self._on_incoming is None:
            return [p.ESME_RX_T_APPN] * len(incoming)
        try:
            return self._on_incoming(self, incoming)
        except Exception:  # noqa: BLE001 - not stored: the SMSC must keep it and try again
            log.exception("%s: could not store %d incoming PDU(s)", self.name, len(incoming))
            return [p.ESME_RX_T_APPN] * len(incoming)

    def _timer_delay(self) -> float:
        now = self._clock()
        if self._enquire is not None:
            due = self._enquire_sent + self.response_timeout
        elif self._bound and self.enquire_link_interval > 0:
            due = max(self._last_received, self._enquire_sent) + self.enquire_link_interval
        else:
            due = now + 1.0
        return min(max(0.0, due - now), 1.0)

    def _timers(self) -> None:
        now = self._clock()
        if self._enquire is not None:
            if self._enquire.done:
                self._enquire = None
            elif now - self._enquire_sent >= self.response_timeout:
                with self._lock:
                    self._abort = (f"no enquire_link_resp within {self.response_timeout:g}s")
            return
        if (self._bound and self.enquire_link_interval > 0
                and now - max(self._last_received, self._enquire_sent)
                >= self.enquire_link_interval):
            with self._lock:
                if self._down or self._abort or self._finish:
                    return
                sequence = self._session.send_request(Pdu(p.ENQUIRE_LINK))
                self._enquire = Waiter(sequence, None)
                self._waiters[sequence] = self._enquire
            self._enquire_sent = now

    def _shutdown(self, reason: str) -> None:
        with self._lock:
            self._down = True
            self.down_reason = reason
            waiters = list(self._waiters.values())
            self._waiters.clear()
            flushed = self._flushed
            by_us = self._by_us
            was_bound = self._bound
            pipe = (self._wake_r, self._wake_w)
            self._wake_r = self._wake_w = -1
            close_now = self._reader.acquire(blocking=False)  # nobody reads it now
            if close_now:
                self._reader.release()
            else:
                self._close_later = True  # a borrowing thread holds it: it closes it
        if close_now and self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        for fd in pipe:
            os.close(fd)
        for waiter in waiters:
            waiter._resolve(None, reason, written=waiter.end is None or waiter.end <= flushed)
        if by_us:
            log.info("%s closed", self.name)
        else:
            log.warning("%s down: %s", self.name, reason)
        if was_bound and not by_us and self._on_down is not None:
            self._on_down(self, reason)


def read_links(links: List[Link], timeout: float) -> None:
    """Wait up to ``timeout`` seconds for any of these links (whose reading the caller
    borrowed) and take in what arrived; returns at once when one of them is going (its
    waiters are being told)."""
    socks: Dict[socket.socket, Link] = {}
    for link in links:
        sock = link._readable_socket()
        if sock is None:
            time.sleep(min(timeout, 0.005))  # the I/O thread is ending it: let it
            return
        socks[sock] = link
    if not socks:
        time.sleep(timeout)
        return
    try:
        readable, _, _ = select.select(list(socks), [], [], timeout)
    except (OSError, ValueError):  # closed meanwhile
        return
    for sock in readable:
        socks[sock]._take_in(sock)
