"""One connection to the simulated modem: bytes in, actions out (sans-I/O).

Owns: echo, running the commands of a line in order and stopping at the first
error, the ``> `` prompt and the body of AT+CMGS / AT+CMGW, the final result
(OK / ERROR / +CME ERROR / +CMS ERROR as AT+CMEE and ATV say), per-command
latency, holding unsolicited lines back while a body is being typed, and the
noise fault's extra lines.  What each command does lives in the command
modules; shared state (SIM, storage, settings) lives in ``device.Modem``.

A transport creates a session with ``modem.open_session(sink, label)``, calls
``feed(bytes)`` with whatever it read and ``close()`` when the link is gone.
``sink`` receives lists of ``actions`` objects, always in output order.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Protocol, Sequence

from smss.sim import framing
from smss.sim.actions import Call, Close, Delay, Write
from smss.sim.atparse import AtSyntaxError, Command, parse_line, strip_prefix
from smss.sim.results import AtError, error_text, render_final, render_info
from smss.sim.settings import AtSettings

log = logging.getLogger(__name__)

Sink = Callable[[list], None]


class StopInput(Exception):
    """Raised inside command handling to stop reading this input: the drop fault
    closed the link or the hang fault silenced the modem."""


@dataclass
class BodyRequest:
    """A handler's answer meaning "show the prompt and give me the body"."""

    on_body: Callable[[bytes], Sequence]  # returns info items like a handler
    text_mode: bool
    error: AtError  # reported for a body that is too long
    rest: List[Command] = field(default_factory=list)


class Host(Protocol):
    """What a session needs of the modem it belongs to (``device.Modem``)."""

    lock: threading.RLock
    settings: AtSettings
    swallowed: int

    def hung(self) -> bool: ...
    def forget_session(self, session: "Session") -> None: ...
    def log_line(self, session_label: str, line: str) -> None: ...
    def count(self, label: str) -> None: ...
    def check_drop_on_command(self, session: "Session", command: Command) -> None: ...
    def execute(self, session: "Session", command: Command): ...
    def command_delay(self) -> float: ...
    def noise_line(self) -> Optional[str]: ...


class Session:
    def __init__(self, modem: Host, sink: Sink, label: str) -> None:
        self.modem = modem
        self.sink = sink
        self.label = label
        self.framer = framing.InputFramer()
        self.closed = False
        self._body: Optional[BodyRequest] = None
        self._last_line: Optional[str] = None
        self._out: list = []
        self._backlog: list = []  # unsolicited text held back during a body

    # -- transport side
    def feed(self, data: bytes) -> None:
        with self.modem.lock:
            if self.closed:
                return
            if self.modem.hung():
                self.modem.swallowed += len(data)
                return
            self.framer.feed(data)
            try:
                while not self.closed and not self.modem.hung():
                    event = self.framer.next_event()
                    if event is None:
                        break
                    self._handle(event)
            except StopInput:
                pass
            self._flush()

    def close(self) -> None:
        with self.modem.lock:
            self.closed = True
            self.modem.forget_session(self)

    # -- modem side
    def push_unsolicited(self, items: Sequence) -> None:
        """Send unsolicited lines now, or after the body being typed."""
        with self.modem.lock:
            if self.closed or self.modem.hung():
                return
            if self._body is not None:
                self._backlog.extend(items)
                return
            self._emit_info(items, noise=False)
            self._flush()

    def drop_link(self, reason: str) -> None:
        """Close the link (drop fault)."""
        with self.modem.lock:
            if self.closed:
                return
            self._out.append(Close(reason))
            self._flush()
            self.closed = True
            self.modem.forget_session(self)

    # -- input events
    def _handle(self, event) -> None:
        settings = self.modem.settings
        if isinstance(event, framing.Echo):
            if settings.echo:
                self._write(event.raw)
        elif isinstance(event, framing.Line):
            if settings.echo:
                self._write(event.raw)
            self._line(event.text.decode("latin-1"))
        elif isinstance(event, framing.Repeat):
            if settings.echo:
                self._write(event.raw)
            if self._last_line is not None:
                self._run(self._parse(self._last_line))
        elif isinstance(event, framing.Overflow):
            if event.body and self._body is not None:
                request, self._body = self._body, None
                self._final_error(request.error)
                self._release_backlog()
            else:
                self._final(render_final("ERROR", settings.verbose))
        elif isinstance(event, framing.Reprompt):
            if settings.echo:
                self._write(event.raw)
            self._prompt()
        elif isinstance(event, framing.Cancel):
            if settings.echo:
                self._write(event.raw.replace(b"\x1b", b""))
            self._body = None
            self._final_ok()
            self._release_backlog()
        elif isinstance(event, framing.Body):
            if settings.echo:
                self._write(event.raw.replace(b"\x1a", b""))
            self._on_body(event.data)

    def _line(self, text: str) -> None:
        body = strip_prefix(text)
        if body is None:
            if text.strip():
                log.debug("%s: ignored line without AT: %r", self.label, text)
            return
        self._last_line = body
        self.modem.log_line(self.label, "AT" + body)
        commands = self._parse(body)
        if commands is not None:
            self._run(commands)

    def _parse(self, body: str) -> Optional[List[Command]]:
        try:
            return parse_line(body)
        except AtSyntaxError as exc:
            log.info("%s: bad AT syntax %r: %s", self.label, body, exc)
            self.modem.count("AT?")
            self._final(render_final("ERROR", self.modem.settings.verbose))
            return None

    def _run(self, commands: Optional[List[Command]]) -> None:
        if commands is None:
            return
        modem = self.modem
        for position, command in enumerate(commands):
            modem.count(command.label)
            modem.check_drop_on_command(self, command)
            try:
                result = modem.execute(self, command)
            except AtError as error:
                self._command_delay()
                self._final_error(error)
                return
            if isinstance(result, BodyRequest):
                result.rest = list(commands[position + 1 :])
                self._body = result
                self._prompt()
                self.framer.expect_body(reprompt=result.text_mode)
                return
            if result:
                self._emit_info(result)
        self._command_delay()
        self._final_ok()

    def _on_body(self, data: bytes) -> None:
        request, self._body = self._body, None
        if request is None:
            return
        try:
            items = request.on_body(data)
        except AtError as error:
            self._final_error(error)
            self._release_backlog()
            return
        if items:
            self._emit_info(items)
        if request.rest:
            self._run(request.rest)
        else:
            self._final_ok()
        self._release_backlog()

    # -- output
    def _write(self, data: bytes) -> None:
        if data:
            self._out.append(Write(data))

    def _text(self, text: str) -> None:
        self._write(text.encode("latin-1", errors="replace"))

    def delay(self, seconds: float) -> None:
        if seconds > 0:
            self._out.append(Delay(seconds))

    def then(self, function: Callable[[], None]) -> None:
        """Run ``function`` once the output queued so far went out (after its delays)."""
        self._out.append(Call(function))

    def _command_delay(self) -> None:
        self.delay(self.modem.command_delay())

    def _noise(self) -> None:
        fired = self.modem.noise_line()
        if fired is not None:
            self._text(render_info([fired], True))

    def _emit_info(self, items: Sequence, noise: bool = True) -> None:
        """Information text; a tuple item is a group of lines never split by noise."""
        verbose = self.modem.settings.verbose
        for item in items:
            if noise:
                self._noise()
            lines = list(item) if isinstance(item, tuple) else [item]
            self._text(render_info(lines, verbose))

    def _final(self, text: str) -> None:
        self._noise()
        if not self.modem.settings.quiet:
            self._text(text)

    def _final_ok(self) -> None:
        self._final(render_final("OK", self.modem.settings.verbose))

    def _final_error(self, error: AtError) -> None:
        settings = self.modem.settings
        self._final(render_final(error_text(error, settings.cmee), settings.verbose))

    def _prompt(self) -> None:
        self._noise()
        self._text("\r\n> ")
        self._noise()

    def _release_backlog(self) -> None:
        if self._backlog:
            items, self._backlog = self._backlog, []
            self._emit_info(items, noise=False)

    def _flush(self) -> None:
        if self._out:
            out, self._out = self._out, []
            self.sink(out)
