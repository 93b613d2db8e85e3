"""Scripted modem peers for the modem tests, on a real pty or a real TCP socket.

``ScriptedModem`` plays the modem side of a link in a thread: it reads command
lines (terminated by CR), the PDU typed after a ``> `` prompt (terminated by
Ctrl-Z, cancelled by Esc), records everything, and answers from a list of
rules: (regex, reply).  A reply is bytes, a callable ``(match, peer) -> bytes``,
``PROMPT`` (answer with the ``> `` prompt and read a PDU) or ``None`` (say
nothing: a hung modem).  ``peer.push(b"...")`` sends unsolicited output at
any time; ``peer.drop()`` breaks the connection.
"""

from __future__ import annotations

import os
import re
import select
import socket
import threading
import tty
from typing import Any, Callable, List, Optional, Tuple

PROMPT = object()
OK = b"\r\nOK\r\n"


def ok(body: str = "") -> bytes:
    return (f"\r\n{body}\r\n" if body else b"".decode()).encode() + OK


def default_rules() -> List[Tuple[str, Any]]:
    """A healthy, registered modem with a SIM that needs no PIN."""
    return [
        (r"AT\+CPIN\?", ok("+CPIN: READY")),
        (r"AT\+CREG\?", ok("+CREG: 0,1")),
        (r"AT\+CSCA\?", ok('+CSCA: "+420603052000",145')),
        (r"AT\+CSQ", ok("+CSQ: 20,99")),
        (r"AT\+COPS\?", ok('+COPS: 0,0,"T-Mobile CZ",2')),
        (r"AT\+CPMS\?", ok('+CPMS: "SM",3,30,"SM",3,30,"SM",3,30')),
        (r"AT\+CPMS=.*", ok("+CPMS: 3,30,3,30,3,30")),
        (r"AT\+CMGS=\d+", PROMPT),
        (r"AT\+CMGL=4", ok("")),
        (r"AT.*", OK),
    ]


class ScriptedModem:
    """A modem peer on a pty (``url`` is the slave path) or TCP (``socket://127.0.0.1:port``)."""

    def __init__(self, rules=None, *, transport: str = "pty", echo: bool = False) -> None:
        self.rules: List[Tuple[str, Any]] = list(rules or []) + default_rules()
        self.echo = echo
        self.transport = transport
        self.received: List[str] = []  # command lines, and "PDU:<hex>" / "ESC"
        self.pdu_reply: Callable[[str, "ScriptedModem"], Optional[bytes]] = self._next_mr
        self.on_escape: Optional[Callable[["ScriptedModem"], None]] = None
        self.connections = 0
        self._mr = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conn: Optional[Any] = None
        if transport == "pty":
            self._master, self._slave = os.openpty()
            tty.setraw(self._slave)
            self.url = os.ttyname(self._slave)
            self._server = None
        else:
            self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._server.bind(("127.0.0.1", 0))
            self._server.listen(4)
            self.url = f"socket://127.0.0.1:{self._server.getsockname()[1]}"
        self._thread = threading.Thread(target=self._run, daemon=True)

    # --- test side
    def __enter__(self) -> "ScriptedModem":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self._server is not None:
            self._server.close()
            if self._conn is not None:
                self._conn.close()
        else:
            with self._lock:
                fds, self._master, self._slave = (self._master, self._slave), -1, -1
            for fd in fds:
                if fd >= 0:
                    os.close(fd)

    def prepend(self, pattern: str, reply: Any) -> None:
        """A rule that wins over the existing ones."""
        with self._lock:
            self.rules.insert(0, (pattern, reply))

    def commands(self) -> List[str]:
        with self._lock:
            return list(self.received)

    def push(self, data: bytes) -> None:
        """Unsolicited output."""
        self._write(data)

    def drop(self) -> None:
        """Break the connection (TCP: close it; pty: close the master side)."""
        if self._server is not None:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()
        else:
            self._stop.set()
            with self._lock:
                fd, self._master = self._master, -1
            if fd >= 0:
                os.close(fd)

    # --- modem side
    def _next_mr(self, pdu: str, peer: "ScriptedModem") -> bytes:
        self._mr = (self._mr + 1) % 256
        return b"\r\n+CMGS: %d\r\n\r\nOK\r\n" % self._mr

    def _write(self, data: bytes) -> None:
        if self._server is not None:
            if self._conn is not None:
                try:
                    self._conn.sendall(data)
                except OSError:
                    pass
        else:
            with self._lock:  # never write to a closed (and maybe reused) descriptor
                if self._master >= 0:
                    os.write(self._master, data)

    def _read(self) -> Optional[bytes]:
        """Bytes from the driver; b"" when nothing came; None when the connection is gone."""
        if self._server is not None:
            conn = self._conn
            if conn is None:
                ready, _, _ = select.select([self._server], [], [], 0.05)
                if ready:
                    self._conn, _ = self._server.accept()
                    self.connections += 1
                return b""
            try:
                ready, _, _ = select.select([conn], [], [], 0.05)
                if not ready:
                    return b""
                data = conn.recv(4096)
            except (OSError, ValueError):  # closed under our feet by drop()
                data = b""
            if not data:
                conn.close()
                if self._conn is conn:
                    self._conn = None
            return data
        if self._master < 0:
            return None
        ready, _, _ = select.select([self._master], [], [], 0.05)
        if not ready:
            return b""
        try:
            return os.read(self._master, 4096)
        except OSError:
            return b""  # the slave side is closed for now (the driver re-opens it)

    def _run(self) -> None:
        line = bytearray()
        pdu: Optional[bytearray] = None
        while not self._stop.is_set():
            data = self._read()
            if data is None:
                return
            for byte in data:
                if pdu is not None:
                    if byte == 0x1A:
                        text = pdu.decode("latin-1")
                        pdu = None
                        with self._lock:
                            self.received.append("PDU:" + text)
                        if self.echo:
                            self._write(text.encode("latin-1"))
                        reply = self.pdu_reply(text, self)
                        if reply:
                            self._write(reply)
                    elif byte == 0x1B:
                        pdu = None
                        with self._lock:
                            self.received.append("ESC")
                        self._write(OK)
                    else:
                        pdu.append(byte)
                    continue
                if byte == 0x1B:
                    with self._lock:
                        self.received.append("ESC")
                    if self.on_escape is not None:
                        self.on_escape(self)
                    continue
                if byte == 0x0A:
                    continue
                if byte != 0x0D:
                    line.append(byte)
                    continue
                command = line.decode("latin-1").strip()
                line.clear()
                if not command:
                    continue
                with self._lock:
                    self.received.append(command)
                if self.echo:
                    self._write(command.encode("latin-1") + b"\r")
                reply = self._answer(command)
                if reply is PROMPT:
                    self._write(b"\r\n> ")
                    pdu = bytearray()
                elif reply:
                    self._write(reply)

    def _answer(self, command: str) -> Any:
        with self._lock:
            rules = list(self.rules)
        for pattern, reply in rules:
            match = re.fullmatch(pattern, command, re.IGNORECASE)
            if match is None:
                continue
            if callable(reply):
                return reply(match, self)
            return reply
        return b"\r\nERROR\r\n"
