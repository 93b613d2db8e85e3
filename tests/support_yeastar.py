"""A Yeastar TG for the tests: WebCGI on a real HTTP server and AMI on a real TCP server,
both on 127.0.0.1, answering like seed 004's TG.

    with running_yeastar(ports=4) as tg:
        tg.url, tg.ami_address, tg.receive(1, "+420777", "Ahoj"), tg.sent, tg.drop()

What it speaks (seed 004, and a TG200's AMI traffic as a Go client logged it:
github.com/gebv/yeastar-tg-sms, api/README.md):

- WebCGI ``/cgi/WebCGI?1500101=account=A&password=P&port=1&destination=N&content=T``
  answers ``Response: Success`` / ``Message: Commit successfully!``; ``1500102`` (USSD,
  ``content`` = the code) answers ``Request: 1,*100#`` / ``Response: Success`` /
  ``Message: <answer>``; a wrong account or password ``Response: Error`` /
  ``Message: Authentication failed``.
- AMI: the banner ``Asterisk Call Manager/1.1``; ``Login`` (``Authentication failed``
  and the connection closed when wrong), ``Ping``, ``Logoff``, ``smscommand`` with
  ``gsm send sms <span> <number> "<text>" [<id>]`` and ``gsm send ussd <span> "<code>"``
  answered as ``Response: Follows`` with the output in LF-ended lines and
  ``--END COMMAND--`` (Asterisk 1.4 style); a USSD answer is a ``USSD Message: <UCS2 hex>``
  line.  The ``<text>`` of ``gsm send sms`` is URL-decoded as a form value (``+`` and
  ``%20`` are spaces, ``%XX`` a byte of UTF-8): the traced Go client sends
  ``url.QueryEscape`` output (``"Test+message"``), a Node.js connector
  ``encodeURIComponent``, a PHP client ``urlencode``; the USSD code is not decoded (the
  trace shows ``AT+CUSD=1,"*100%23"`` for a code sent as ``*100%23``).  Events go to every
  logged-in session with events on: ``ReceivedSMS`` (GsmSpan = port + 1; ``Content``
  form-encoded UTF-8, a space as ``+``, each part with a byte-order mark; a single message
  ``Index: 0`` of ``Total: 1`` with an empty ``ID``, the parts of a long one ``Index`` 1..N
  with one numeric ``ID``; ending with ``--END SMS EVENT--``) and, for a send with an id,
  ``UpdateSMSSend`` with that ``ID`` and ``Status`` 1 (delivered) or 0.  ``receive`` can
  also write the older forms (seed 004: ``Index: 1`` of 1, ``%20``; no byte-order mark).

- ``gsm show spans`` and ``gsm show <span>`` (Yeastar's support article "How to Use TG
  SMS API", "Check port status" / "Check specific port information"; the detail lines as
  in public captures of TG100/TG200 answers: ``D-channel``, ``Status``, ``Manufacturer``,
  ``Model Name``, ``Model IMEI``, ``Revision``, ``Network Name``, ``Network Status``,
  ``Signal Quality (0,31)``, ``SIM IMSI``, ``SIM SMS Center Number``, ``State``).  The
  TG's own CLI is also shown answering ``gsm show span <span>``; ``show_forms`` says which
  of the two forms this TG knows.  ``span_status`` sets a port's status (e.g.
  ``"Power on, Provisioned, Undetected SIM Card, Active,Standard"``).

What seed 004 does not show and is assumed here: the other lines of the USSD output
(``USSD Responses:0``, ``USSD Code:72``), an empty output for a send, the answer to an
unknown span or command (``No such command ...``).

An SMS that arrives while no session listens is kept in ``web_inbox`` only, as on the
real TG.  Faults: ``drop()`` cuts every AMI connection; ``silence()`` makes the current
sessions stop answering (a hung gateway); ``set_fault("malformed")`` answers the next
smscommand with a response AMI does not define; ``set_fault("noise")`` sends a line no
AMI client accepts; ``set_fault("webcgi_malformed")`` answers the next WebCGI request
with an HTML error page.
"""

from __future__ import annotations

import shlex
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Iterator, List, Optional
from urllib.parse import parse_qsl, quote, quote_plus, unquote_plus, urlsplit

BANNER = b"Asterisk Call Manager/1.1\r\n"


@dataclass
class Sent:
    via: str
    port: int
    number: str
    text: str
    id: str = ""


@dataclass
class Session:
    number: int
    sock: socket.socket
    logged_in: bool = False
    events: bool = False
    silent: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def write(self, data: bytes) -> bool:
        try:
            with self.lock:
                self.sock.sendall(data)
            return True
        except OSError:
            return False


def block(*lines: str) -> bytes:
    return ("".join(f"{line}\r\n" for line in lines) + "\r\n").encode("utf-8")


class YeastarSim:
    def __init__(self, account: str = "apiuser", password: str = "s3cret", ports: int = 4,
                 ussd_answers: Optional[Dict[str, str]] = None, ussd_seconds: float = 0.05,
                 report_seconds: float = 0.05, delivered: bool = True,
                 show_forms: tuple = ("plain", "span"),
                 span_status: Optional[Dict[int, str]] = None) -> None:
        self.account, self.password, self.ports = account, password, ports
        self.show_forms = show_forms
        self.span_status = dict(span_status or {})
        self.ussd_answers = dict(ussd_answers or {})
        self.ussd_seconds, self.report_seconds = ussd_seconds, report_seconds
        self.delivered = delivered
        self.sent: List[Sent] = []
        self.ussd: List[tuple] = []
        self.web_inbox: List[tuple] = []
        self.actions: List[Dict[str, str]] = []
        self.sessions: List[Session] = []
        self.logins = 0
        self._faults: Dict[str, int] = {}
        self._lock = threading.Lock()
        self._closing = False
        sim = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                sim._webcgi(self)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, args=(0.05,), daemon=True).start()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    @property
    def ami_address(self) -> str:
        return f"127.0.0.1:{self.listener.getsockname()[1]}"

    def close(self) -> None:
        self._closing = True
        self.http.shutdown()
        self.http.server_close()
        self._accepting.join(5)
        self.listener.close()
        self.drop()

    # -- control

    def set_fault(self, name: str, count: int = 1) -> None:
        with self._lock:
            self._faults[name] = count

    def _take(self, name: str) -> bool:
        with self._lock:
            if self._faults.get(name, 0) <= 0:
                return False
            self._faults[name] -= 1
            return True

    def listening(self) -> List[Session]:
        with self._lock:
            return [s for s in self.sessions if s.logged_in and s.events and not s.silent]

    def wait_listening(self, count: int = 1, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.listening()) < count:
            assert time.monotonic() < deadline, f"no {count} AMI session(s) listening"
            time.sleep(0.01)

    def drop(self) -> None:
        """Cut every AMI connection (a reboot, a network blip)."""
        with self._lock:
            sessions, self.sessions = self.sessions, []
        for session in sessions:
            try:
                session.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            session.sock.close()

    def silence(self) -> None:
        """The sessions open now stop answering and hear no events (a hung gateway)."""
        with self._lock:
            for session in self.sessions:
                session.silent = True

    def event(self, *lines: str) -> int:
        """Push an event block to every listening session; returns how many heard it."""
        data = block(*lines)
        return sum(1 for session in self.listening() if session.write(data))

    def receive(self, port: int, sender: str, text: str, parts: int = 1,
                recvtime: str = "2016-07-15 17:49:55", smsc: str = "+79997456321",
                bom: bool = True, order: Optional[List[int]] = None, space: str = "+",
                single_index: int = 0, sms_id: str = "244") -> int:
        """An SMS arriving on GSM ``port`` (``parts`` events); returns how many sessions
        heard it (0: it is only in the web inbox).  By default as the trace shows it
        (a space as ``+``, a BOM, a single message as ``Index: 0``); ``space="%20"`` and
        ``single_index=1`` give seed 004's forms."""
        size = -(-len(text) // parts) if text else 0
        chunks = [text[i * size:(i + 1) * size] for i in range(parts)]
        heard = 0
        for index in order or range(1, parts + 1):
            data = (("\ufeff" if bom else "") + chunks[index - 1]).encode("utf-8")
            content = quote_plus(data, safe="") if space == "+" else quote(data, safe="")
            heard = self.event("Event: ReceivedSMS", "Privilege: all,smscommand",
                               f"ID: {sms_id if parts > 1 else ''}", f"GsmSpan: {port + 1}",
                               f"Sender: {sender}", f"Recvtime: {recvtime}",
                               f"Index: {index if parts > 1 else single_index}",
                               f"Total: {parts}", f"Smsc: {smsc}", f"Content: {content}",
                               "--END SMS EVENT--")
        if not heard:
            self.web_inbox.append((port, sender, text))
        return heard

    def report(self, sms_id: str, status: int) -> int:
        return self.event("Event: UpdateSMSSend", "Privilege: all,smscommand", f"ID: {sms_id}",
                          f"Status: {status}", "Smsc: +79991234567", "--END SMS EVENT--")

    # -- WebCGI

    def _webcgi(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if parts.path != "/cgi/WebCGI" or not pairs:
            return _reply(request, 404, "<html><body>Not Found</body></html>")
        code, account = pairs[0]
        values = dict(pairs[1:])
        if self._take("webcgi_malformed"):
            return _reply(request, 200, "<html><body>500 Internal Error</body></html>")
        if account != f"account={self.account}" or values.get("password") != self.password:
            return _reply(request, 200, "Response: Error\r\nMessage: Authentication failed\r\n")
        port = int(values.get("port", "0") or "0")
        if not 1 <= port <= self.ports:
            return _reply(request, 200, f"Response: Error\r\nMessage: Port {port} not exist\r\n")
        if code == "1500101":
            with self._lock:
                self.sent.append(Sent("webcgi", port, values.get("destination", ""),
                                      values.get("content", "")))
            return _reply(request, 200, "Response: Success\r\nMessage: Commit successfully!\r\n")
        if code == "1500102":
            ussd = values.get("content", "")
            self.ussd.append(("webcgi", port, ussd))
            answer = self.ussd_answers.get(ussd, "Unknown service code")
            return _reply(request, 200, f"Request: {port},{ussd}\r\nResponse: Success\r\n"
                          f"Message: {answer}\r\n")
        _reply(request, 200, "Response: Error\r\nMessage: Invalid request\r\n")

    # -- AMI

    def _accept(self) -> None:
        number = 0
        while not self._closing:
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            number += 1
            session = Session(number, sock)
            with self._lock:
                self.sessions.append(session)
            threading.Thread(target=self._serve, args=(session,), daemon=True).start()

    def _serve(self, session: Session) -> None:
        session.write(BANNER)
        buffer = b""
        try:
            while True:
                data = session.sock.recv(4096)
                if not data:
                    return
                buffer += data
                while b"\r\n\r\n" in buffer:
                    raw, buffer = buffer.split(b"\r\n\r\n", 1)
                    action = {}
                    for line in raw.decode("utf-8").split("\r\n"):
                        key, _, value = line.partition(":")
                        action.setdefault(key.strip(), value.strip())
                    with self._lock:
                        self.actions.append(dict(action, session=str(session.number)))
                    if session.silent:
                        continue
                    if not self._action(session, action):
                        return
        except OSError:
            return
        finally:
            session.sock.close()
            with self._lock:
                if session in self.sessions:
                    self.sessions.remove(session)

    def _action(self, session: Session, action: Dict[str, str]) -> bool:
        name = action.get("Action", "").lower()
        action_id = action.get("ActionID", "")
        if name == "login":
            if action.get("Username") != self.account or action.get("Secret") != self.password:
                session.write(block("Response: Error", f"ActionID: {action_id}",
                                    "Message: Authentication failed"))
                return False
            session.logged_in = True
            session.events = action.get("Events", "on").lower() != "off"
            with self._lock:
                self.logins += 1
            session.write(block("Response: Success", f"ActionID: {action_id}",
                                "Message: Authentication accepted"))
            session.write(block("Event: FullyBooted", "Privilege: system,all",
                                "Status: Fully Booted"))
            return True
        if name == "logoff":
            session.write(block("Response: Goodbye", f"ActionID: {action_id}",
                                "Message: Thanks for all the fish."))
            return False
        if not session.logged_in:
            session.write(block("Response: Error", f"ActionID: {action_id}",
                                "Message: Authentication Required"))
            return True
        if self._take("noise"):
            session.write(b"x" * 70000)
            return True
        if name == "ping":
            session.write(block("Response: Success", f"ActionID: {action_id}", "Ping: Pong",
                                f"Timestamp: {time.time():.6f}"))
            return True
        if name == "smscommand":
            if self._take("malformed"):
                session.write(block("Response: Maybe", f"ActionID: {action_id}"))
                return True
            output = self._command(action.get("Command", ""))
            session.write(("Response: Follows\r\nPrivilege: Command\r\n"
                           f"ActionID: {action_id}\r\n" + "".join(f"{line}\n" for line in output)
                           + "--END COMMAND--\r\n\r\n").encode("utf-8"))
            return True
        session.write(block("Response: Error", f"ActionID: {action_id}",
                            "Message: Invalid/unknown command"))
        return True

    def _command(self, command: str) -> List[str]:
        try:
            args = shlex.split(command, posix=True)
        except ValueError as exc:
            return [f"Error parsing command: {exc}"]
        if args[:3] == ["gsm", "send", "sms"] and len(args) in (6, 7):
            span = int(args[3]) if args[3].isdigit() else 0
            if not 2 <= span <= self.ports + 1:
                return [f"GSM span {args[3]} does not exist"]
            sms_id = args[6] if len(args) == 7 else ""
            with self._lock:
                self.sent.append(Sent("ami", span - 1, args[4], unquote_plus(args[5]), sms_id))
            if sms_id:
                timer = threading.Timer(self.report_seconds, self.report,
                                        (sms_id, 1 if self.delivered else 0))
                timer.daemon = True
                timer.start()
            return []
        if args[:3] == ["gsm", "send", "ussd"] and len(args) == 5:
            span = int(args[3]) if args[3].isdigit() else 0
            if not 2 <= span <= self.ports + 1:
                return [f"GSM span {args[3]} does not exist"]
            self.ussd.append(("ami", span - 1, args[4]))
            time.sleep(self.ussd_seconds)
            answer = self.ussd_answers.get(args[4], "Unknown service code")
            return ["USSD Responses:0", "USSD Code:72",
                    "USSD Message: " + answer.encode("utf-16-be").hex().upper()]
        if args[:3] == ["gsm", "show", "spans"] and len(args) == 3:
            return [f"GSM span {port + 1}: {self._status(port)}"
                    for port in range(1, self.ports + 1)]
        form = "span" if args[2:3] == ["span"] else "plain"
        number = args[3:4] if form == "span" else args[2:3]
        if (args[:2] == ["gsm", "show"] and len(args) == (4 if form == "span" else 3)
                and form in self.show_forms and number[0].isdigit()):
            port = int(number[0]) - 1
            if not 1 <= port <= self.ports:
                return [f"GSM span {number[0]} does not exist"]
            return self._span_info(port)
        return [f"No such command '{command}' (type 'core show help {args[0] if args else ''}'"
                " for other possible commands)"]


    UP = "Power on, Provisioned, Up, Active,Standard"

    def _status(self, port: int) -> str:
        return self.span_status.get(port, self.UP)

    def _span_info(self, port: int) -> List[str]:
        up = self._status(port) == self.UP
        return [f"D-channel: {port + 1}", f"Status: {self._status(port)}", "Type: CPE",
                "Manufacturer: SIMCOM_Ltd", "Model Name: SIMCOM_SIM900",
                f"Model IMEI: 01322700959613{port}", "Model CBAND: EGSM_MODE,ALL_BAND",
                "Revision: 1137B13SIM900M64_ST",
                f"Network Name: {'T-Mobile CZ' if up else ''}",
                f"Network Status: {'Registered (Home network)' if up else 'Unregistered'}",
                f"Signal Quality (0,31): {20 if up else -1}",
                f"SIM IMSI: {'23001123456789' + str(port) if up else ''}",
                f"SIM SMS Center Number: {'+420603052000' if up else ''}",
                "Send SMS Center Number: Undefined", "Last event: D-Channel Up",
                f"State: {'READY' if up else 'UNAVAILABLE'}", "Last send AT: AT+CREG?\\r\\n"]


def _reply(request, status: int, body: str) -> None:
    data = body.encode("utf-8")
    request.send_response(status)
    request.send_header("Content-Type", "text/html")
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)


@contextmanager
def running_yeastar(**options) -> Iterator[YeastarSim]:
    sim = YeastarSim(**options)
    try:
        yield sim
    finally:
        sim.close()
