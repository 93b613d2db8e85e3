"""Control channel of the simulator: JSON lines over TCP on 127.0.0.1.

Owns: the listening socket, one thread per control client, and the mapping of
requests to ``device.Modem`` methods.  A request is one JSON object per line,
``{"op": NAME, ...arguments}``; the answer is one line,
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}``.

Operations: ping, status, inject (sender, text, encoding, order, parts,
concat_reference, smsc, timestamp), inject_pdu (pdu), sent (since), clear_sent,
reports, report (reference, number, status), storage (memory), fault (name,
params), clear_fault (name), faults, counts, reset_counts, lines (last),
unknown, urc (lines), configure (settings), reset, reboot (style, seconds).
``client.ControlClient`` wraps them.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from datetime import datetime
from typing import Any, Callable, Dict, List, Optional

from smss.sim import inbound

log = logging.getLogger(__name__)

MAX_REQUEST = 1 << 20
IDLE_TIMEOUT = 600.0


class ControlServer:
    def __init__(self, modem, host: str = "127.0.0.1", port: int = 0,
                 info: Optional[Callable[[], Dict[str, Any]]] = None) -> None:
        self.modem = modem
        self.info = info or (lambda: {})
        self._listener = socket.create_server((host, port))
        self._listener.settimeout(0.5)
        self.host, self.port = self._listener.getsockname()[:2]
        self._stopping = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._clients: List[socket.socket] = []

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._accept_loop, name="sim-control",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        except OSError:
            pass
        self._listener.close()
        for sock in list(self._clients):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            sock.settimeout(IDLE_TIMEOUT)
            self._clients.append(sock)
            threading.Thread(target=self._serve, args=(sock,), name="sim-control-client",
                             daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        buffer = b""
        try:
            while not self._stopping.is_set():
                try:
                    chunk = sock.recv(65536)
                except (socket.timeout, OSError):
                    break
                if not chunk:
                    break
                buffer += chunk
                if len(buffer) > MAX_REQUEST:
                    sock.sendall(b'{"ok": false, "error": "request too long"}\n')
                    break
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        sock.sendall(self.handle_line(line) + b"\n")
        except OSError:
            pass
        finally:
            if sock in self._clients:
                self._clients.remove(sock)
            sock.close()

    def handle_line(self, line: bytes) -> bytes:
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("op"), str):
                raise ValueError('a request is a JSON object with an "op"')
            result = self.handle(request)
            answer = {"ok": True, "result": result}
        except (ValueError, TypeError, KeyError) as exc:
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return json.dumps(answer, ensure_ascii=False, default=str).encode("utf-8")

    def handle(self, request: Dict[str, Any]) -> Any:
        op = request.pop("op")
        method = getattr(self, "op_" + op, None)
        if method is None:
            raise ValueError(f"unknown op {op!r}")
        return method(**request)

    # -- operations
    def op_ping(self) -> str:
        return "pong"

    def op_status(self) -> Dict[str, Any]:
        snapshot = self.modem.snapshot()
        snapshot.update(self.info())
        return snapshot

    def op_inject(self, sender: str, text: str, encoding: Optional[str] = None,
                  order: Optional[List[int]] = None, parts: Optional[List[int]] = None,
                  concat_reference: Optional[int] = None, smsc: Optional[str] = None,
                  timestamp: Optional[str] = None) -> Dict[str, Any]:
        ts = datetime.fromisoformat(timestamp) if timestamp else None
        return self.modem.inject(sender, text, encoding=encoding, order=order, parts=parts,
                                 concat_reference=concat_reference, smsc=smsc, timestamp=ts)

    def op_inject_pdu(self, pdu: str) -> Dict[str, Any]:
        return self.modem.inject_pdu(pdu)

    def op_sent(self, since: int = 0) -> List[dict]:
        with self.modem.lock:
            return [dict(r) for r in self.modem.sent if r["seq"] > since]

    def op_clear_sent(self) -> None:
        with self.modem.lock:
            self.modem.sent.clear()

    def op_reports(self) -> List[dict]:
        with self.modem.lock:
            return list(self.modem.reports)

    def op_report(self, reference: int, number: str, status: int = 0) -> Any:
        """An SMS-STATUS-REPORT for an earlier send, now."""
        modem = self.modem
        with modem.lock:
            now = modem.wallclock()
            pdu = inbound.status_report_pdu(int(reference), number, int(status), now, now,
                                            modem.smsc)
            return modem.route_status_report(pdu)

    def op_storage(self, memory: str = "SM") -> List[dict]:
        return self.modem.storage_dump(memory)

    def op_fault(self, name: str, params: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        return self.modem.set_fault(name, **(params or {}))

    def op_clear_fault(self, name: Optional[str] = None) -> None:
        self.modem.clear_fault(name)

    def op_faults(self) -> Dict[str, Any]:
        with self.modem.lock:
            return self.modem.faults.snapshot()

    def op_counts(self) -> Dict[str, int]:
        with self.modem.lock:
            return dict(self.modem.counts)

    def op_reset_counts(self) -> None:
        with self.modem.lock:
            self.modem.counts.clear()
            self.modem.unknown.clear()
            self.modem.lines.clear()

    def op_lines(self, last: int = 200) -> List[dict]:
        with self.modem.lock:
            return list(self.modem.lines)[-int(last):]

    def op_unknown(self) -> List[str]:
        with self.modem.lock:
            return list(self.modem.unknown)

    def op_urc(self, lines: List[str]) -> None:
        self.modem.broadcast([str(line) for line in lines])

    def op_configure(self, settings: Dict[str, Any]) -> Dict[str, Any]:
        return self.modem.configure(**settings)

    def op_reset(self) -> None:
        self.modem.reset()

    def op_reboot(self, style: Optional[str] = None,
                  seconds: Optional[float] = None) -> Dict[str, Any]:
        return self.modem.reboot(style, seconds)
