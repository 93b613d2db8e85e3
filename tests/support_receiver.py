"""A real HTTP receiver on 127.0.0.1 for webhook and dlr-url tests: it records every request
and misbehaves on demand.

    with Receiver(fail_first=2) as receiver:      # 500 to the first two requests
        receiver.url                              # http://127.0.0.1:PORT/hook
        receiver.wait_for(lambda r: len(r.ok()) >= 3)
        receiver.down(); ...; receiver.up()        # stop listening, then listen again
        receiver.hold.clear(); ...; receiver.hold.set()   # keep requests waiting

Nothing here decides what smss should do: it only answers like a web server
that is flaky (5xx), down (connection refused), slow (held), or fine.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List, Optional
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: Dict[str, List[str]]
    headers: Dict[str, str]  # lower-case names
    body: bytes
    status: int  # what the receiver answered (0: it never answered)
    at: float = field(default_factory=time.time)

    def param(self, name: str) -> str:
        return self.query.get(name, [""])[0]


class Receiver:
    def __init__(self, fail_first: int = 0, status: int = 200, path: str = "/hook") -> None:
        self.fail_first = fail_first
        self.status = status
        self.path = path
        self.requests: List[Recorded] = []
        self.hold = threading.Event()  # cleared: requests wait until it is set again
        self.hold.set()
        self.held = 0  # requests waiting right now
        self.concurrent_max: Dict[str, int] = {}  # event id -> most at once
        self._active: Dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def __enter__(self) -> "Receiver":
        self.up()
        return self

    def __exit__(self, *exc_info) -> None:
        self.hold.set()
        self.down()

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self._serve(b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0") or 0)
                self._serve(self.rfile.read(length))

            def _serve(self, body: bytes) -> None:
                receiver._handle(self, body)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def down(self) -> None:
        """Stop listening: connections are refused until ``up()``."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        parts = urlsplit(handler.path)
        event = handler.headers.get("x-smss-event-id", handler.path)
        with self._lock:
            self._active[event] = self._active.get(event, 0) + 1
            self.concurrent_max[event] = max(self.concurrent_max.get(event, 0),
                                             self._active[event])
            number = len(self.requests)
            status = 500 if number < self.fail_first else self.status
            record = Recorded(handler.command, parts.path, parse_qs(parts.query),
                              {k.lower(): v for k, v in handler.headers.items()}, body, 0)
            self.requests.append(record)
            self.held += 1
        try:
            self.hold.wait(120)
        finally:
            with self._lock:
                self.held -= 1
                self._active[event] -= 1
        answer = b"ok\n" if status < 300 else b"try again later\n"
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "text/plain")
            handler.send_header("Content-Length", str(len(answer)))
            handler.end_headers()
            handler.wfile.write(answer)
            record.status = status
        except OSError:
            pass  # the client gave up waiting (its timeout): it never got an answer

    def ok(self) -> List[Recorded]:
        """Requests answered 2xx."""
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def wait_for(self, condition: Callable[["Receiver"], bool], timeout: float = 120.0,
                 what: str = "the receiver's condition") -> None:
        deadline = time.monotonic() + timeout
        while not condition(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not met within {timeout:g}s; requests:"
                                     f" {[(r.method, r.status, r.path) for r in self.requests]}")
            time.sleep(0.05)
