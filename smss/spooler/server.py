"""The TCP front door: sockets, limits and replies around the pure protocol parser.

Each connection feeds its bytes to a ``RecordParser``, judges each record with
``smss.spooler.validate``, hands good ones to the ``Committer`` and writes one reply
line per record in order: ``OK <id>`` once the record's transaction committed,
``ERR <code> <reason>`` otherwise.  Replies are written by a task of their own,
so a client that sends and closes without reading still has every complete
record stored.  The abuse limits (allowlist, concurrent connections, record
size, records and errors per connection, idle and session time) are written
down in ``Limits`` and each one ends in a log line saying what was dropped.
When the committer's backlog is full, a connection stops reading until there
is room (back-pressure: unread records stay in the client's socket).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple

from smss import doors
from smss.spooler import validate
from smss.spooler.committer import Committer, StorageInDoubt, StorageUnavailable
from smss.spooler.kick import Kicker
from smss.spooler.protocol import (
    FORBIDDEN,
    IN_DOUBT,
    TIMEOUT,
    TOO_MANY,
    UNAVAILABLE,
    Record,
    RecordError,
    RecordParser,
)
from smss.store.queue import NewMessage

log = logging.getLogger(__name__)

# Bytes taken from a socket at a time.  Small, so a connection that waits for room in
# the committer's backlog holds little of what its client sent: its StreamReader stops
# receiving at twice this much, the rest stays in the kernel's socket buffer.
READ_SIZE = 4096
WRITE_TIMEOUT = 30.0  # a client that stops reading its replies is dropped after this
LINGER = 1.0  # seconds the input of a connection we close is still read and discarded


@dataclass(frozen=True)
class Limits:
    allow: Tuple[Any, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1"))
    idle_timeout: float = 60.0
    session_timeout: float = 600.0
    max_connections: int = 1024
    max_record_bytes: int = 8192
    max_records_per_connection: int = 1000
    max_errors_per_connection: int = 10

    @classmethod
    def from_config(cls, config) -> "Limits":
        get = config.get
        return cls(
            allow=get("server", "allow"),
            idle_timeout=get("server", "idle_timeout"),
            session_timeout=get("server", "session_timeout"),
            max_connections=get("server", "max_connections"),
            max_record_bytes=get("server", "max_record_bytes"),
            max_records_per_connection=get("server", "max_records_per_connection"),
            max_errors_per_connection=get("server", "max_errors_per_connection"),
        )

    def allows(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.allow)


class _SmallReceives(asyncio.StreamReaderProtocol, asyncio.BufferedProtocol):
    """asyncio's stream protocol, receiving at most READ_SIZE bytes per recv (a plain
    protocol takes up to 256 KiB at once, however full the StreamReader is).  The loop
    calls get_buffer, recv_into and buffer_updated back to back on its one thread, so
    the connections of one loop share one buffer."""

    def __init__(self, buffer: bytearray, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._buffer = buffer

    def get_buffer(self, sizehint: int) -> bytearray:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(memoryview(self._buffer)[:nbytes]))


_END = object()  # the last item of a connection's reply queue
NOT_STORED_REPLY = RecordError(UNAVAILABLE, "storage unavailable, not stored").reply()
IN_DOUBT_REPLY = RecordError(
    IN_DOUBT, "storage did not confirm the commit, the record may be stored").reply()


def _line(text: str) -> bytes:
    return text.encode("utf-8") + b"\r\n"


class SpoolServer:
    """Accepts connections and turns their records into committed queue rows."""

    def __init__(
        self,
        committer: Committer,
        rules: validate.Rules,
        limits: Limits,
        legacy_encoding: str = "cp1250",
        kicker: Optional[Kicker] = None,
    ) -> None:
        self.committer = committer
        self.rules = rules
        self.limits = limits
        self.legacy_encoding = legacy_encoding
        self.kicker = kicker
        self.active = 0
        self.accepted = 0  # records acknowledged OK since start
        self.last_accepted: Optional[float] = None
        self._servers: list = []
        self._handlers: set = set()

    async def start(self, sockets: Sequence[socket.socket]) -> None:
        loop = asyncio.get_running_loop()
        receive_buffer = bytearray(READ_SIZE)  # one per event loop: see _SmallReceives

        def protocol() -> _SmallReceives:
            reader = asyncio.StreamReader(limit=READ_SIZE, loop=loop)
            return _SmallReceives(receive_buffer, reader, self._handle, loop=loop)

        self._servers = [await loop.create_server(protocol, sock=sock, backlog=1024)
                         for sock in sockets]

    async def stop(self) -> None:
        """Stop accepting, let every connection finish its complete records, then return."""
        for server in self._servers:
            server.close()
        for task in list(self._handlers):
            task.cancel()  # stops reading; what was already parsed is still answered
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)

    # -- one connection

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._handlers.add(task)
        peer = writer.get_extra_info("peername") or ("?", 0)
        address = str(peer[0])
        try:
            if not self.limits.allows(address):
                log.warning("refused %s: not in the allow list", address)
                await self._refuse(reader, writer, RecordError(FORBIDDEN, "client not allowed"))
                return
            if self.active >= self.limits.max_connections:
                log.warning("refused %s: %d connections already open", address, self.active)
                await self._refuse(reader, writer, RecordError(UNAVAILABLE, "too many connections"))
                return
            self.active += 1
            log.debug("%s: connected (%d open)", address, self.active)
            try:
                await Connection(self, reader, writer, address).serve()
            finally:
                self.active -= 1
        finally:
            self._handlers.discard(task)

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      error: RecordError) -> None:
        """Say why, then close gently: unread input would make the kernel reset the
        connection, and some clients (Windows) then drop the reply unread."""
        doors.refused("tcp", error.code)
        try:
            writer.write(error.reply())
            await asyncio.wait_for(writer.drain(), 5)
            writer.write_eof()
            await asyncio.wait_for(reader.read(READ_SIZE), 1)
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()

    def acknowledged(self, count: int = 1) -> None:
        self.accepted += count
        self.last_accepted = time.time()


class Connection:
    """Reads, parses and judges one client's records; a reply task answers in order."""

    def __init__(
        self,
        server: SpoolServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        address: str,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.address = address
        self.limits = server.limits
        self.parser = RecordParser(server.limits.max_record_bytes, server.legacy_encoding)
        self.replies: "asyncio.Queue[Any]" = asyncio.Queue()
        self.records = 0
        self.errors = 0
        self.closing = False

    async def serve(self) -> None:
        replier = asyncio.get_running_loop().create_task(self._write_replies())
        client_ended = True
        try:
            client_ended = await self._read_records()
        except asyncio.CancelledError:
            pass  # server shutdown: answer what was parsed, then close
        except OSError as exc:
            log.info("%s: connection lost: %s", self.address, exc)
        finally:
            self.replies.put_nowait(_END)
            try:
                await asyncio.shield(replier)
            except asyncio.CancelledError:
                await replier
            if not client_ended:
                await self._close_gently()
            self.writer.close()

    async def _close_gently(self) -> None:
        """We end the connection (a limit, a timeout): send EOF and discard what the client
        still sends, for a moment.  Closing with unread input makes the kernel reset the
        connection, and the client may then lose replies it has not read yet."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LINGER
        try:
            if self.writer.can_write_eof():
                self.writer.write_eof()
            while (remaining := deadline - loop.time()) > 0:
                if not await asyncio.wait_for(self.reader.read(READ_SIZE), remaining):
                    return
        except (OSError, asyncio.TimeoutError):
            pass

    async def _read_records(self) -> bool:
        """Read, judge and submit records; True when the client ended the stream."""
        deadline = time.monotonic() + self.limits.session_timeout
        while not self.closing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning("%s: session longer than %ss, closed", self.address,
                            self.limits.session_timeout)
                self._reply(RecordError(TIMEOUT, "session time limit reached, closing"))
                return False
            try:
                data = await asyncio.wait_for(
                    self.reader.read(READ_SIZE), min(self.limits.idle_timeout, remaining)
                )
            except asyncio.TimeoutError:
                if time.monotonic() < deadline:
                    log.info("%s: idle for %ss, closed", self.address, self.limits.idle_timeout)
                    self._reply(RecordError(TIMEOUT, "idle timeout, closing"))
                    return False
                continue  # the session deadline is reported at the top of the loop
            events = self.parser.feed(data) if data else self.parser.close()
            for event in events:
                message = self._judge(event)
                if message is not None:  # most often there is room: no await, no task switch
                    committer = self.server.committer
                    future = committer.submit_nowait(message)
                    if future is None:
                        future = await committer.submit(message, self._paused)
                    self.replies.put_nowait(future)
                if self.closing:
                    break
            if not data:
                return True
        return False

    def _judge(self, event: Any) -> Optional[NewMessage]:
        """The message to store, or None (the event was answered or ends the connection)."""
        if isinstance(event, Record):
            self.records += 1
            if self.records > self.limits.max_records_per_connection:
                log.warning("%s: more than %d records, closed", self.address,
                            self.limits.max_records_per_connection)
                self._reply(RecordError(TOO_MANY, "too many records on one connection, closing"))
                self.closing = True
                return None
            verdict = validate.check(event, self.server.rules)
            if isinstance(verdict, RecordError):
                self._error(verdict)
                return None
            return NewMessage(verdict.phone, verdict.text, verdict.parts, self.address,
                              verdict.route)
        self._error(event)
        return None

    def _paused(self, records: int, size: int) -> None:
        log.debug("%s: reading paused, %d records (%d bytes) pending", self.address,
                  records, size)

    def _error(self, error: RecordError) -> None:
        self._reply(error)
        self.errors += 1
        log.info("%s: ERR %d %s", self.address, error.code, error.reason)
        if self.errors >= self.limits.max_errors_per_connection:
            log.warning("%s: %d errors, closed", self.address, self.errors)
            self._reply(RecordError(TOO_MANY, "too many errors, closing"))
            self.closing = True

    def _reply(self, error: RecordError) -> None:
        doors.refused("tcp", error.code)
        self.replies.put_nowait(error.reply())

    async def _write_replies(self) -> None:
        """Answer in order; keep awaiting commits even when the client has gone.

        Replies that are ready together (a batch committed at once) go out in one write.
        """
        writable = True
        waiting: Any = None  # an item taken from the queue but not ready yet
        while True:
            item = waiting if waiting is not None else await self.replies.get()
            waiting = None
            if item is _END:
                return
            lines = [await self._reply_line(item)]
            while not self.replies.empty():  # add what is ready, without waiting
                item = self.replies.get_nowait()
                if item is _END or (isinstance(item, asyncio.Future) and not item.done()):
                    waiting = item
                    break
                lines.append(await self._reply_line(item))
            if not writable:
                continue
            try:
                self.writer.write(b"".join(lines))
                await asyncio.wait_for(self.writer.drain(), WRITE_TIMEOUT)
            except (OSError, asyncio.TimeoutError):
                writable = False  # the client left; its records are stored all the same

    async def _reply_line(self, item: Any) -> bytes:
        if not isinstance(item, asyncio.Future):
            return item
        try:
            line = _line(f"OK {await item}")
        except StorageInDoubt:
            doors.refused("tcp", IN_DOUBT)
            return IN_DOUBT_REPLY
        except StorageUnavailable:
            doors.refused("tcp", UNAVAILABLE)
            return NOT_STORED_REPLY
        doors.accepted("tcp")
        self.server.acknowledged()
        return line
