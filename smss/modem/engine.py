"""The AT engine: one command at a time over a ``Link``, read to its final result.

It writes a command line, feeds what comes back into an ``AtParser`` and
returns the information lines once the final result code arrives (raising
the matching ``ModemError`` for ERROR / +CMS / +CME).  Unsolicited result
codes are kept in a queue for the caller whenever they arrive.  ``AT+CMGS``
is a two-step exchange: the command, the ``> `` prompt, then the PDU and
Ctrl-Z.

A timeout raises ``ModemTimeout`` and leaves the engine usable: the next
command first re-synchronises (Esc to leave a pending prompt, read until the
modem is quiet, ``AT`` until ``OK``).  If the modem does not answer that
either, the next command raises ``ModemTimeout`` again and the session should
``recover()``.  A broken link raises ``LinkDown``.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Deque, Iterable, List, Optional

from .atparse import (
    AtParser,
    Discarded,
    Echo,
    Event,
    Final,
    Info,
    Prompt,
    Unsolicited,
    command_names,
)
from .errors import ModemError, ModemTimeout, TemporaryError, error_for_result
from .link import Link

log = logging.getLogger(__name__)

CTRL_Z = b"\x1a"
ESC = b"\x1b"
_HEX_LINE = re.compile(r"^[0-9A-Fa-f]{8,}$")
_SECRET = re.compile(r'^(AT\s*\+CPIN\s*=\s*)(.*)$', re.IGNORECASE)


@dataclass
class Response:
    """The answer to one command: its information lines and the final result code."""

    command: str
    lines: List[str] = field(default_factory=list)
    final: Optional[Final] = None

    def values(self, name: str) -> List[str]:
        """The arguments of every line named ``name`` ("+CSQ" -> ["20,99"])."""
        prefix = name.upper() + ":"
        return [
            line[len(prefix):].strip() for line in self.lines if line.upper().startswith(prefix)
        ]

    def value(self, name: str) -> Optional[str]:
        found = self.values(name)
        return found[0] if found else None


def redact(command: str) -> str:
    """The command as it may be logged (the PIN hidden)."""
    match = _SECRET.match(command)
    return match.group(1) + "****" if match else command


class AtEngine:
    """Runs AT commands over a link; see the module docstring."""

    def __init__(
        self,
        link: Link,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_unsolicited: Optional[Callable[[Unsolicited], None]] = None,
        max_unsolicited: int = 1000,
        resync_attempts: int = 3,
        unsolicited: Optional[Deque[Unsolicited]] = None,
        quiet_time: float = 0.3,
    ) -> None:
        self.link = link
        self.parser = AtParser()
        self.clock = clock
        self.on_unsolicited = on_unsolicited
        self.resync_attempts = resync_attempts
        self.quiet_time = quiet_time  # silence that ends a drain before re-synchronising
        self._unsolicited: Deque[Unsolicited] = (
            deque(maxlen=max_unsolicited) if unsolicited is None else unsolicited
        )
        self._backlog: Deque[Event] = deque()
        self.needs_resync = False

    # --- commands
    def command(self, command: str, timeout: float, *, check: bool = True) -> Response:
        """Run one command line (without the CR) and return its answer.

        With ``check`` an error result raises the matching ``ModemError``; without it the
        caller looks at ``response.final``.
        """
        if self.needs_resync:
            self.resync(timeout)
        self._take_waiting()
        return self._exchange(command, timeout, check)

    def command_with_pdu(
        self, command: str, pdu: str, *, prompt_timeout: float, timeout: float
    ) -> Response:
        """``AT+CMGS=<n>``, wait for ``> ``, write the PDU and Ctrl-Z, read to the final result.

        An error raised before the PDU was written has ``pdu_sent = False`` (nothing went
        out); after it, ``pdu_sent = True`` (a timeout then means: maybe sent).
        """
        if self.needs_resync:
            self.resync(prompt_timeout)
        self._take_waiting()
        self.parser.begin(command, prompt=True)
        log.debug("-> %s", command)
        self.link.write(command.encode("latin-1") + b"\r")
        response = Response(command)
        try:
            got_prompt = self._read(response, prompt_timeout, until_prompt=True)
        except ModemTimeout as exc:
            self._abort_prompt()
            exc.pdu_sent = False
            raise
        except ModemError as exc:
            exc.pdu_sent = False
            raise
        if not got_prompt:  # a final result instead of the prompt
            error = self._error(response, command, default="no > prompt")
            error.pdu_sent = False
            raise error
        self.parser.begin_pdu(pdu)
        log.debug("-> PDU (%d octets) + Ctrl-Z", len(pdu) // 2)
        try:
            self.link.write(pdu.encode("ascii") + CTRL_Z)
            self._read(response, timeout)
        except ModemError as exc:
            exc.pdu_sent = True
            raise
        if response.final is not None and not response.final.ok:
            error = self._error(response, command)
            error.pdu_sent = True
            raise error
        return response

    def _exchange(self, command: str, timeout: float, check: bool) -> Response:
        self.parser.begin(command)
        log.debug("-> %s", redact(command))
        self.link.write(command.encode("latin-1") + b"\r")
        response = Response(command)
        self._read(response, timeout)
        if check and response.final is not None and not response.final.ok:
            raise self._error(response, redact(command))
        return response

    @staticmethod
    def _error(response: Response, command: str, default: Optional[str] = None) -> ModemError:
        final = response.final
        if final is None:
            return TemporaryError(default or "no answer", command=command)
        return error_for_result(final.family, final.code, text=final.reason, command=command)

    def _read(self, response: Response, timeout: float, *, until_prompt: bool = False) -> bool:
        """Read into ``response`` until the final result (False) or the prompt (True).

        Each line of the answer itself (named like the command, or a PDU) extends the
        deadline, up to ten times ``timeout`` in all, so a long listing at a low baud rate
        is not cut off while the modem keeps answering; noise does not extend it.
        """
        start = self.clock()
        deadline = start + timeout
        names = tuple(name + ":" for name in command_names(response.command))
        while True:
            while self._backlog:
                event = self._backlog.popleft()
                if isinstance(event, Prompt):
                    if until_prompt:
                        return True
                    log.debug("<- unexpected prompt ignored")
                elif isinstance(event, Final):
                    log.debug("<- %s", event.text)
                    response.final = event
                    return False
                elif isinstance(event, Info):
                    log.debug("<- %s", event.text)
                    response.lines.append(event.text)
                    text = event.text.upper()
                    if _HEX_LINE.match(text) or (names and text.startswith(names)):
                        deadline = min(max(deadline, self.clock() + timeout), start + 10 * timeout)
                else:
                    self._other(event)
            if self.clock() >= deadline:
                what = "> prompt" if until_prompt else "final result"
                self.parser.abort()
                self.needs_resync = True
                raise ModemTimeout(
                    f"no {what} within {timeout:g} s", command=redact(response.command)
                )
            self._backlog.extend(self.parser.feed(self.link.read()))

    def _other(self, event: Event) -> None:
        """Events outside the pending command's answer."""
        if isinstance(event, Unsolicited):
            log.debug("<- unsolicited %s", event.text)
            self._unsolicited.append(event)
            if self.on_unsolicited is not None:
                self.on_unsolicited(event)
        elif isinstance(event, Final):
            log.debug("<- stale %s dropped", event.text)
        elif isinstance(event, Discarded):
            log.warning("modem sent %d bytes of noise: %s", len(event.data), event.why)
        elif isinstance(event, Echo):
            log.debug("<- echo")

    # --- unsolicited result codes
    def _take_waiting(self) -> None:
        """Process what arrived while no command was pending (unsolicited, stale answers)."""
        self.parser.abort()
        while self._backlog:
            self._other(self._backlog.popleft())
        while self.link.has_waiting():
            for event in self.parser.feed(self.link.read()):
                self._other(event)

    def poll(self, duration: float = 0.0) -> None:
        """Collect unsolicited result codes for ``duration`` seconds (0: what is waiting)."""
        self._take_waiting()
        deadline = self.clock() + duration
        while self.clock() < deadline:
            for event in self.parser.feed(self.link.read()):
                self._other(event)

    def take_unsolicited(self, names: Optional[Iterable[str]] = None) -> List[Unsolicited]:
        """Remove and return the queued unsolicited codes (only those named, if given)."""
        wanted = None if names is None else {name.upper() for name in names}
        taken = [u for u in self._unsolicited if wanted is None or u.name in wanted]
        if wanted is None:
            self._unsolicited.clear()
        else:
            kept = [u for u in self._unsolicited if u.name not in wanted]
            self._unsolicited.clear()
            self._unsolicited.extend(kept)
        return taken

    def wait_unsolicited(self, names: Iterable[str], timeout: float) -> Optional[Unsolicited]:
        """The first queued or arriving unsolicited code named in ``names``, or None."""
        wanted = {name.upper() for name in names}
        deadline = self.clock() + timeout
        self._take_waiting()
        while True:
            for index, event in enumerate(self._unsolicited):
                if event.name in wanted:
                    del self._unsolicited[index]
                    return event
            if self.clock() >= deadline:
                return None
            for event in self.parser.feed(self.link.read()):
                self._other(event)

    # --- getting back in step
    def _abort_prompt(self) -> None:
        """Leave a pending ``> `` prompt (Esc cancels the message)."""
        try:
            self.link.write(ESC)
        except ModemError as exc:
            log.debug("could not write Esc: %s", exc)
        self.needs_resync = True

    def drain(self, quiet: float = 0.3, limit: float = 3.0) -> None:
        """Read until the modem has been silent for ``quiet`` seconds (at most ``limit``)."""
        self.parser.abort()
        start = self.clock()
        last = start
        while True:
            now = self.clock()
            if now - last >= quiet or now - start >= limit:
                break
            data = self.link.read()
            if data:
                last = self.clock()
                for event in self.parser.feed(data):
                    self._other(event)
        for event in self.parser.flush():
            self._other(event)
        self.parser.reset()

    def resync(self, timeout: float) -> None:
        """Get back in step after a timeout: Esc, wait for silence, ``AT`` until ``OK``."""
        log.info("re-synchronising with the modem")
        self.link.write(ESC)
        self.drain(quiet=self.quiet_time)
        last: Optional[ModemError] = None
        for _ in range(self.resync_attempts):
            try:
                self._exchange("AT", min(timeout, 5.0), False)
            except ModemTimeout as exc:
                last = exc
                self.parser.reset()
                continue
            self.needs_resync = False
            return
        self.needs_resync = True
        raise ModemTimeout("the modem does not answer AT", command="AT") from last
