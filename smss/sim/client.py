"""Python client of the simulator's control channel (see ``control``).

Usage::

    control = ControlClient("127.0.0.1:40123")
    control.inject("+420777123456", "Ahoj")
    control.set_fault("cms_error", code=38, count=2)
    sent = control.wait_for_sent(1)
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any, Dict, List, Optional, Sequence


class ControlError(RuntimeError):
    """The simulator refused a control request."""


class ControlClient:
    def __init__(self, address: str, timeout: float = 30.0) -> None:
        host, _, port = address.rpartition(":")
        self.address = (host or "127.0.0.1", int(port))
        self.timeout = timeout
        self._sock: Optional[socket.socket] = None
        self._buffer = b""
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def __enter__(self) -> "ControlClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def call(self, op: str, **arguments: Any) -> Any:
        """One request; its result.  ControlError when the simulator says no."""
        request = dict(arguments, op=op)
        line = json.dumps(request, ensure_ascii=False).encode("utf-8") + b"\n"
        with self._lock:
            if self._sock is None:
                self._sock = socket.create_connection(self.address, timeout=self.timeout)
                self._buffer = b""
            try:
                self._sock.sendall(line)
                answer = self._read_line()
            except OSError:
                self._sock.close()
                self._sock = None
                raise
        reply = json.loads(answer)
        if not reply.get("ok"):
            raise ControlError(reply.get("error", "unknown error"))
        return reply.get("result")

    def _read_line(self) -> bytes:
        assert self._sock is not None
        while b"\n" not in self._buffer:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("control channel closed")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    # -- convenience wrappers
    def ping(self) -> bool:
        return self.call("ping") == "pong"

    def status(self) -> Dict[str, Any]:
        return self.call("status")

    def inject(self, sender: str, text: str, *, encoding: Optional[str] = None,
               order: Optional[Sequence[int]] = None, parts: Optional[Sequence[int]] = None,
               concat_reference: Optional[int] = None, smsc: Optional[str] = None,
               timestamp: Optional[str] = None) -> Dict[str, Any]:
        """An inbound SMS; ``result["parts"]`` says where each part went (index, waiting,
        routed)."""
        return self.call("inject", sender=sender, text=text, encoding=encoding,
                         order=list(order) if order is not None else None,
                         parts=list(parts) if parts is not None else None,
                         concat_reference=concat_reference, smsc=smsc, timestamp=timestamp)

    def inject_pdu(self, pdu: str) -> Dict[str, Any]:
        return self.call("inject_pdu", pdu=pdu)

    def sent(self, since: int = 0) -> List[Dict[str, Any]]:
        return self.call("sent", since=since)

    def clear_sent(self) -> None:
        self.call("clear_sent")

    def reports(self) -> List[Dict[str, Any]]:
        return self.call("reports")

    def report(self, reference: int, number: str, status: int = 0) -> Any:
        return self.call("report", reference=reference, number=number, status=status)

    def storage(self, memory: str = "SM") -> List[Dict[str, Any]]:
        return self.call("storage", memory=memory)

    def set_fault(self, name: str, **params: Any) -> Dict[str, Any]:
        return self.call("fault", name=name, params=params)

    def clear_fault(self, name: Optional[str] = None) -> None:
        self.call("clear_fault", name=name)

    def faults(self) -> Dict[str, Any]:
        return self.call("faults")

    def counts(self) -> Dict[str, int]:
        return self.call("counts")

    def reset_counts(self) -> None:
        self.call("reset_counts")

    def lines(self, last: int = 200) -> List[Dict[str, Any]]:
        return self.call("lines", last=last)

    def unknown(self) -> List[str]:
        return self.call("unknown")

    def urc(self, *lines: str) -> None:
        self.call("urc", lines=list(lines))

    def configure(self, **settings: Any) -> Dict[str, Any]:
        return self.call("configure", settings=settings)

    def reset(self) -> None:
        self.call("reset")

    def reboot(self, style: Optional[str] = None, seconds: Optional[float] = None
               ) -> Dict[str, Any]:
        """Restart the modem as a power cut would (see ``device.Modem.reboot``)."""
        return self.call("reboot", style=style, seconds=seconds)

    def wait_for_sent(self, count: int, timeout: float = 30.0) -> List[Dict[str, Any]]:
        """Poll until at least ``count`` messages were sent; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            sent = self.sent()
            if len(sent) >= count:
                return sent
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(sent)} of {count} messages sent within {timeout}s")
            time.sleep(0.05)
