"""One AMI connection: a socket, one reader thread, login, actions and events.

Owns connecting (the banner must come within ``timeout``), logging in (a refusal is
``AmiRefused``, which a person must fix), sending actions from any thread and waiting
for the response with the same ActionID, handing every event to ``on_event`` (in the
reader thread, in arrival order), keeping an idle connection alive with ``Ping`` every
``keepalive`` seconds (a Ping unanswered for ``timeout`` drops the link), and telling
every waiting caller when the link goes.  It never reconnects by itself: the owner
decides when (with backoff), so a dead gateway is not hammered.
"""

from __future__ import annotations

import itertools
import logging
import select
import socket
import threading
import time
from typing import Callable, Dict, Optional, Sequence, Tuple

from smss.gateways.ami import AmiParser, AmiProtocolError, Packet, encode

log = logging.getLogger(__name__)


class AmiDown(Exception):
    """No usable connection (never made, lost, or an answer overdue).  ``sent``: the
    action had been written whole, so the gateway may have carried it out."""

    def __init__(self, message: str, sent: bool = False) -> None:
        super().__init__(message)
        self.sent = sent


class AmiRefused(AmiDown):
    """The gateway refused the login (wrong account or secret, or AMI not enabled)."""


class _Waiter:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.packet: Optional[Packet] = None
        self.error: Optional[str] = None


class AmiClient:
    def __init__(self, host: str, port: int, username: str, secret: str, *,
                 timeout: float = 30.0, keepalive: float = 60.0,
                 on_event: Callable[[Packet], None] = lambda packet: None,
                 on_down: Callable[[str], None] = lambda reason: None,
                 name: str = "ami") -> None:
        self.host, self.port = host, port
        self.username, self.secret = username, secret
        self.timeout, self.keepalive = timeout, keepalive
        self.on_event, self.on_down = on_event, on_down
        self.name = name
        self.banner: Optional[str] = None
        self.down_reason: Optional[str] = "not connected"
        self._sock: Optional[socket.socket] = None
        self._write_lock = threading.Lock()
        self._lock = threading.Lock()
        self._waiters: Dict[str, _Waiter] = {}
        self._ids = itertools.count(1)
        self._banner_seen = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._alive = False
        self._last_heard = time.monotonic()
        self._ping: Optional[Tuple[str, float]] = None  # (action id, sent at)
        self._closing = False

    @property
    def alive(self) -> bool:
        return self._alive

    # -- life

    def connect(self) -> None:
        """Connect, read the banner, log in; AmiRefused or AmiDown when that fails."""
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise AmiDown(f"cannot connect to AMI at {self.host}:{self.port}: {exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.timeout)
        self._sock = sock
        self._closing = False
        self._alive = True
        self.down_reason = None
        self._last_heard = time.monotonic()
        self._banner_seen.clear()
        parser = AmiParser(expect_banner=True)
        self._thread = threading.Thread(target=self._read, args=(sock, parser),
                                        name=f"{self.name} reader", daemon=True)
        self._thread.start()
        if not self._banner_seen.wait(self.timeout) or not self._alive:
            reason = self.down_reason or f"no AMI banner within {self.timeout:g}s"
            self._drop(reason)
            raise AmiDown(f"{self.host}:{self.port}: {reason}")
        answer = self.action([("Action", "Login"), ("Username", self.username),
                              ("Secret", self.secret), ("Events", "on")])
        if (answer.response or "").lower() != "success":
            message = answer.get("Message") or answer.response or "refused"
            self._drop(f"login refused: {message}")
            raise AmiRefused(f"AMI login as {self.username!r} refused: {message}")

    def close(self) -> None:
        self._closing = True  # the gateway closing after Logoff is no news
        if self._alive:
            try:
                self.action([("Action", "Logoff")], timeout=min(self.timeout, 2.0))
            except AmiDown:
                pass
        self._drop("closed")
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)

    def _drop(self, reason: str) -> None:
        with self._lock:
            was_alive = self._alive
            self._alive = False
            if self.down_reason is None or was_alive:
                self.down_reason = reason
            waiters, self._waiters = self._waiters, {}
            sock, self._sock = self._sock, None
            self._ping = None
        for waiter in waiters.values():
            waiter.error = reason
            waiter.done.set()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self._banner_seen.set()
        if was_alive and reason != "closed" and not self._closing:
            log.warning("%s: AMI link down: %s", self.name, reason)
            self.on_down(reason)

    def abort(self, reason: str) -> None:
        """Drop the connection now (an answer is overdue: the link cannot be trusted)."""
        self._drop(reason)

    # -- actions

    def _write(self, data: bytes) -> None:
        sock = self._sock
        if sock is None or not self._alive:
            raise AmiDown(self.down_reason or "not connected")
        try:
            with self._write_lock:
                sock.sendall(data)
        except OSError as exc:
            self._drop(f"write failed: {exc}")
            raise AmiDown(f"write failed: {exc}") from None

    def _register(self) -> Tuple[str, _Waiter]:
        action_id = f"smss-{next(self._ids)}"
        waiter = _Waiter()
        with self._lock:
            if not self._alive:
                raise AmiDown(self.down_reason or "not connected")
            self._waiters[action_id] = waiter
        return action_id, waiter

    def action(self, fields: Sequence[Tuple[str, str]], timeout: Optional[float] = None
               ) -> Packet:
        """Send an action and return its response; AmiDown when the link is gone or the
        response does not come within ``timeout`` (the link stays: a slow USSD is no
        proof of a dead gateway; keepalive finds those)."""
        action_id, waiter = self._register()
        data = encode(list(fields) + [("ActionID", action_id)])
        try:
            self._write(data)
        except AmiDown:
            with self._lock:
                self._waiters.pop(action_id, None)
            raise
        wait = self.timeout if timeout is None else timeout
        if not waiter.done.wait(wait):
            with self._lock:
                self._waiters.pop(action_id, None)
            raise AmiDown(f"no answer to {fields[0][1]} within {wait:g}s", sent=True)
        if waiter.packet is None:
            raise AmiDown(waiter.error or "link lost", sent=True)
        return waiter.packet

    # -- the reader

    def _read(self, sock: socket.socket, parser: AmiParser) -> None:
        try:
            while self._alive:
                readable, _, _ = select.select([sock], [], [], 0.2)
                if readable:
                    try:
                        data = sock.recv(65536)
                    except socket.timeout:
                        continue
                    if not data:
                        self._drop("the gateway closed the connection")
                        return
                    self._last_heard = time.monotonic()
                    packets = parser.feed(data)
                    if parser.banner is not None and not self._banner_seen.is_set():
                        self.banner = parser.banner
                        self._banner_seen.set()
                    for packet in packets:
                        self._dispatch(packet)
                self._keep_alive()
        except AmiProtocolError as exc:
            self._drop(f"AMI protocol error: {exc}")
        except (OSError, ValueError) as exc:
            if self._alive:
                self._drop(f"read failed: {exc}")

    def _dispatch(self, packet: Packet) -> None:
        action_id = packet.action_id
        if packet.event is None and action_id is not None:
            with self._lock:
                waiter = self._waiters.pop(action_id, None)
                if self._ping is not None and self._ping[0] == action_id:
                    self._ping = None
            if waiter is not None:
                waiter.packet = packet
                waiter.done.set()
            return
        if packet.event is not None:
            try:
                self.on_event(packet)
            except Exception:  # noqa: BLE001 - a bad handler must not kill the reader
                log.exception("%s: handling event %s", self.name, packet.event)

    def _keep_alive(self) -> None:
        if self.keepalive <= 0 or not self._banner_seen.is_set():
            return
        now = time.monotonic()
        ping = self._ping
        if ping is not None:
            if now - ping[1] > self.timeout:
                self._drop(f"no answer to Ping within {self.timeout:g}s")
            return
        if now - self._last_heard < self.keepalive:
            return
        try:
            action_id, _ = self._register()
        except AmiDown:
            return
        self._ping = (action_id, now)
        try:
            self._write(encode([("Action", "Ping"), ("ActionID", action_id)]))
        except AmiDown:
            return


def split_address(text: str, default_port: int = 5038) -> Tuple[str, int]:
    """``host[:port]`` (``[v6]:port`` too) -> (host, port); ValueError when malformed."""
    value = text.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    else:
        host, port_text = value, ""
    if not host:
        raise ValueError(f"no host in {text!r}")
    if port_text and not port_text.isdigit():
        raise ValueError(f"bad port in {text!r}")
    port = int(port_text) if port_text else default_port
    if not 0 < port < 65536:
        raise ValueError(f"bad port in {text!r}")
    return host, port

