"""A GoIP for the tests: a real HTTP server on 127.0.0.1 answering like seed 004's GoIP.

    with running_goip(lines=8, send_seconds=0.1) as goip:
        goip.url, goip.sent, goip.lines[1], goip.occupy(1, 0.5), goip.set_fault("stuck")

What it speaks (seed 004):

- ``GET /default/en_US/send.html?u=&p=&l=&n=&m=`` answers
  ``Sending, L1 Send SMS to 89991234567; ID:55c489da`` or ``ERROR, <reason>``;
- ``POST /default/en_US/sms_info.html?type=sms`` (HTTP Basic login; form ``line``,
  ``smskey``, ``action=SMS``, ``telnum``, ``smscontent``, ``send``) and ``?type=ussd``
  (form ``lineN=1``, ``smskey``, ``action=USSD``, ``telnum``) answer an HTML page;
- ``GET /default/en_US/send_status.xml?u=&p=`` is the seed's XML: per line ``idN``,
  ``statusN``, ``errorN``; a job shows ``STARTED`` while it runs, then ``DONE`` or
  ``ERRORDONE`` with its error text; a USSD job's answer is its error text.

Like the real thing, a message handed over while its line is still busy is
acknowledged and then silently lost (``lost``): the seed's reason for watching the
status page.  Seed 004 does not show the answers to a wrong password; this GoIP says
``ERROR, username or password error`` on send.html and HTTP 401 on the status page
and the form (assumptions, stated here so nobody mistakes them for the seed).

Faults (``set_fault(name, count=1)``; ``clear_faults()``): ``malformed_send`` (an answer
that is neither form, the message is still taken), ``malformed_status`` (an HTML error
page instead of the XML), ``refuse_busy`` (``ERROR, L1 is busy``), ``logout``
(``ERROR,L1 GSM logout``), ``errordone`` (the job ends ``ERRORDONE`` with
``send, but provider not reply.``), ``stuck`` (the job never ends).
"""

from __future__ import annotations

import base64
import html
import itertools
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Iterator, List, Optional
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Line:
    id: str = ""
    status: str = ""
    error: str = ""
    busy_until: float = 0.0


@dataclass
class Job:
    line: int
    id: str
    kind: str  # "sms" or "ussd"
    phone: str
    text: str
    method: str


class GoipSim:
    def __init__(self, lines: int = 8, user: str = "admin", password: str = "admin",
                 send_seconds: float = 0.1, ussd_answers: Optional[Dict[str, str]] = None
                 ) -> None:
        self.user, self.password = user, password
        self.send_seconds = send_seconds
        self.ussd_answers = dict(ussd_answers or {})
        self.lines: Dict[int, Line] = {number: Line() for number in range(1, lines + 1)}
        self.sent: List[Job] = []  # jobs that went out (DONE)
        self.accepted: List[Job] = []  # every job handed over, in order
        self.lost: List[Job] = []  # handed over while the line was busy: never sent
        self.requests: List[str] = []
        self._faults: Dict[str, int] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(0x55C489DA)
        self._timers: List[threading.Timer] = []
        sim = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                sim._handle(self, "GET")

            def do_POST(self) -> None:
                sim._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self.server.shutdown()
        self.server.server_close()

    # -- control

    def set_fault(self, name: str, count: int = 1) -> None:
        with self._lock:
            self._faults[name] = count

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take(self, name: str) -> bool:
        with self._lock:
            left = self._faults.get(name, 0)
            if left <= 0:
                return False
            if left < 1_000_000:
                self._faults[name] = left - 1
            return True

    def occupy(self, line: int, seconds: float, job_id: str = "0c0c0c0c") -> None:
        """Someone else's job holds ``line`` for ``seconds`` (then it is DONE)."""
        with self._lock:
            state = self.lines[line]
            state.id, state.status, state.error = job_id, "STARTED", ""
            state.busy_until = time.monotonic() + seconds
        self._later(seconds, self._finish, line, job_id, "DONE", "", None)

    def wait_idle(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while any(state.status == "STARTED" for state in self.lines.values()):
            assert time.monotonic() < deadline, "the GoIP's lines stayed busy"
            time.sleep(0.01)

    # -- the device

    def _later(self, seconds: float, function, *args) -> None:
        timer = threading.Timer(seconds, function, args)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _finish(self, line: int, job_id: str, status: str, error: str, job: Optional[Job]
                ) -> None:
        with self._lock:
            state = self.lines[line]
            if state.id != job_id:
                return
            state.status, state.error, state.busy_until = status, error, 0.0
            if job is not None and status == "DONE" and job.kind == "sms":
                self.sent.append(job)

    def _start(self, job: Job) -> None:
        """A job handed over: it runs unless the line is busy, then it is lost."""
        with self._lock:
            self.accepted.append(job)
            state = self.lines[job.line]
            if state.status == "STARTED":
                self.lost.append(job)
                return
            state.id, state.status, state.error = job.id, "STARTED", ""
        if self._take("stuck"):
            return
        if job.kind == "ussd":
            answer = self.ussd_answers.get(job.text, "Unknown USSD code")
            self._later(self.send_seconds, self._finish, job.line, job.id, "DONE", answer, job)
        elif self._take("errordone"):
            self._later(self.send_seconds, self._finish, job.line, job.id, "ERRORDONE",
                        "send, but provider not reply.", job)
        else:
            self._later(self.send_seconds, self._finish, job.line, job.id, "DONE", "", job)

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(request.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        with self._lock:
            self.requests.append(f"{method} {request.path}")
        if method == "GET" and parts.path == "/default/en_US/send.html":
            self._send_get(request, query)
        elif method == "GET" and parts.path == "/default/en_US/send_status.xml":
            self._status(request, query)
        elif method == "POST" and parts.path == "/default/en_US/sms_info.html":
            self._form(request, query.get("type", ""))
        else:
            _reply(request, 404, "<html><body>404 Not Found</body></html>", "text/html")

    def _send_get(self, request, query: Dict[str, str]) -> None:
        if query.get("u") != self.user or query.get("p") != self.password:
            return _reply(request, 200, "ERROR, username or password error")
        line = int(query.get("l", "1") or "1")
        if line not in self.lines:
            return _reply(request, 200, f"ERROR, L{line} no such line")
        if self._take("logout"):
            return _reply(request, 200, f"ERROR,L{line} GSM logout")
        if self._take("refuse_busy"):
            return _reply(request, 200, f"ERROR, L{line} is busy")
        job = Job(line, f"{next(self._ids) & 0xFFFFFFFF:08x}", "sms", query.get("n", ""),
                  query.get("m", ""), "GET")
        self._start(job)
        if self._take("malformed_send"):
            return _reply(request, 200, f"OK {job.id}")
        _reply(request, 200, f"Sending, L{line} Send SMS to {job.phone}; ID:{job.id}")

    def _status(self, request, query: Dict[str, str]) -> None:
        if query.get("u") != self.user or query.get("p") != self.password:
            return _reply(request, 401, "401 Unauthorized")
        if self._take("malformed_status"):
            return _reply(request, 200, "<html><body>Internal error</body></html>", "text/html")
        with self._lock:
            rows = [(number, line.id, line.status, line.error)
                    for number, line in sorted(self.lines.items())]
        body = ['<?xml version="1.0" encoding="utf-8"?>', "<send-sms-status>"]
        for number, job_id, status, error in rows:
            body.append(f"<id{number}>{job_id}</id{number}>")
            body.append(f"<status{number}>{status}</status{number}>")
            body.append(f"<error{number}>{html.escape(error, quote=False)}</error{number}>")
        body.append("</send-sms-status>")
        _reply(request, 200, " ".join(body), "text/xml; charset=utf-8")

    def _authorised(self, request) -> bool:
        header = request.headers.get("Authorization", "")
        expected = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return header == f"Basic {expected}"

    def _form(self, request, kind: str) -> None:
        length = int(request.headers.get("Content-Length", "0") or "0")
        form = dict(parse_qsl(request.rfile.read(length).decode("utf-8"),
                              keep_blank_values=True))
        if not self._authorised(request):
            request.send_response(401)
            request.send_header("WWW-Authenticate", 'Basic realm="GoIP"')
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        if kind == "sms" and form.get("action") == "SMS":
            line = int(form.get("line", "0") or "0")
            job = Job(line, form.get("smskey", ""), "sms", form.get("telnum", ""),
                      form.get("smscontent", ""), "POST")
        elif kind == "ussd" and form.get("action") == "USSD":
            chosen = [int(key[4:]) for key, value in form.items()
                      if key.startswith("line") and key[4:].isdigit() and value == "1"]
            line = chosen[0] if chosen else 0
            job = Job(line, form.get("smskey", ""), "ussd", "", form.get("telnum", ""), "POST")
        else:
            return _reply(request, 200, "ERROR, bad request")
        if job.line not in self.lines or not job.id:
            return _reply(request, 200, "ERROR, bad line or key")
        self._start(job)
        _reply(request, 200, "<html><head><title>SMS</title></head><body>"
               "<form>Sending...</form></body></html>", "text/html")


def _reply(request, status: int, body: str, content_type: str = "text/plain") -> None:
    data = body.encode("utf-8")
    request.send_response(status)
    request.send_header("Content-Type", content_type)
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)


@contextmanager
def running_goip(**options) -> Iterator[GoipSim]:
    sim = GoipSim(**options)
    try:
        yield sim
    finally:
        sim.close()
