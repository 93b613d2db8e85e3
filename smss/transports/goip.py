"""A GoIP GSM gateway as a transport: HTTP to send and for USSD, its SMPP server to receive.

Sending goes through ``send.html`` (GET; the GoIP names the message) or the
``sms_info.html`` form (POST; we name it with our own ``smskey``), on one of the
configured lines (SIMs).  The GoIP does one job per line at a time and silently loses a
message sent to a busy line, so nothing is sent on a line until ``send_status.xml``
shows its previous job ``DONE`` or ``ERRORDONE`` (and our own last message there has
shown up): a queue per line, bounded by ``busy_timeout``.  A message counts as sent
when its id reaches ``DONE``; ``ERRORDONE`` fails it with the GoIP's error text; no
final status within ``send_timeout`` is a temporary failure that may have been sent.
With several lines, ``send_many`` keeps one message in flight on each.

Receiving: the GoIP hands incoming SMS to an SMPP client that binds as its SMSC id
plus the two-digit channel (``goip01`` for line 1), in UTF-16BE; one bind per line is
how we know which SIM got it.  Those binds are ``SmppTransport`` receivers (spooled
to a file per line before they are acknowledged).

USSD: the form with ``type=ussd``; the network's answer appears as the line's error
text in ``send_status.xml``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Sequence, Tuple, Union
from urllib.parse import quote, urlencode

from smss.gateways import goip as answers
from smss.gateways.http import Answer, Base, HttpDown, request
from smss.gsm.alphabet import plan_parts
from smss.statefiles import DEFAULT_STATE_DIR, legacy
from smss.transports.base import (
    DOWN,
    OPERATOR,
    PERMANENT,
    TEMPORARY,
    Inbox,
    Probe,
    SendFailed,
    Sent,
    Transport,
    TransportState,
)

log = logging.getLogger(__name__)

SEND_PATH = "/default/en_US/send.html"
FORM_PATH = "/default/en_US/sms_info.html"
STATUS_PATH = "/default/en_US/send_status.xml"
STATUS_FAILURES = 3  # unreadable status pages in a row before the GoIP counts as down
LINE_DOWN_PAUSE = 60.0  # a line the GoIP says is logged out is left alone this long


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


@dataclass(frozen=True)
class GoipSettings:
    base: Base
    user: str = "admin"
    password: str = "admin"
    lines: Tuple[int, ...] = (1,)
    send_method: str = "get"
    http_timeout: float = 10.0
    send_timeout: float = 120.0
    busy_timeout: float = 120.0
    poll_interval: float = 1.0
    smpp_port: int = 0
    smpp_system_id: str = ""
    smpp_password: str = ""
    spool: str = ""
    legacy_spool: str = ""  # where versions before [dispatcher] state_dir kept it
    name: str = ""
    multipart_timeout: float = 86400.0

    @property
    def transport_name(self) -> str:
        lines = "+".join(f"L{line}" for line in self.lines)
        return (self.name or f"goip:{self.base.host}/{lines}")[:128]

    @classmethod
    def from_config(cls, config) -> "GoipSettings":
        get = config.get
        url = get("goip", "url")
        if not url:
            raise ValueError("no GoIP configured: set [goip] url")
        base = Base.parse(url)
        lines = []
        for item in get("goip", "lines"):
            if not item.isdigit() or not 1 <= int(item) <= 512:
                raise ValueError(f"[goip] lines: {item!r} is not a line number")
            lines.append(int(item))
        if not lines:
            raise ValueError("[goip] lines: name at least one line")
        if get("goip", "smpp_port") and not get("goip", "smpp_system_id"):
            raise ValueError("[goip] smpp_system_id: needed to receive (smpp_port is set)")
        name = get("goip", "name")
        settings = cls(base=base, user=get("goip", "user"), password=get("goip", "password"),
                       lines=tuple(dict.fromkeys(lines)), send_method=get("goip", "send_method"),
                       http_timeout=get("goip", "http_timeout"),
                       send_timeout=get("goip", "send_timeout"),
                       busy_timeout=get("goip", "busy_timeout"),
                       poll_interval=get("goip", "poll_interval"),
                       smpp_port=get("goip", "smpp_port"),
                       smpp_system_id=get("goip", "smpp_system_id"),
                       smpp_password=get("goip", "smpp_password"), name=name,
                       multipart_timeout=get("dispatcher", "multipart_timeout"))
        spool_name = (f"{os.path.basename(get('dispatcher', 'lockfile'))}."
                      f"{_safe(settings.transport_name)}.goip-inbox")
        spool = get("goip", "spool") or os.path.join(get("dispatcher", "state_dir"), spool_name)
        old_spool = "" if get("goip", "spool") else legacy(
            os.path.join(DEFAULT_STATE_DIR, spool_name), spool)
        return dataclasses.replace(settings, spool=spool, legacy_spool=old_spool)


@dataclass
class _Job:
    key: Any
    line: int
    id: str
    parts: int
    deadline: float


class _LineBusy(Exception):
    """The GoIP said the line is busy: nothing was sent; wait for it."""


class _LineDown(Exception):
    """The GoIP said the line cannot send (GSM logout, no SIM): nothing was sent."""


class GoipTransport(Transport):
    tracks_delivery = False
    streams = True  # the dispatcher feeds send_many from the queue (its window, or 1)

    def __init__(self, settings: GoipSettings, *, receive: bool = True,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 receiver_factory: Optional[Callable[[int], Transport]] = None) -> None:
        self.settings = settings
        self.name = settings.transport_name
        self.window = len(settings.lines)
        self._clock, self._sleep = clock, sleep
        self._receive = receive and settings.smpp_port > 0
        self._receiver_factory = receiver_factory or self._smpp_receiver
        self._receivers: Dict[int, Transport] = {}
        self._receive_problems: Dict[int, SendFailed] = {}
        self._pending: Dict[int, Tuple[str, float]] = {}  # line -> (our last id, sent at)
        self._down_until: Dict[int, float] = {}
        self._next_line = 0
        self._last_status: Dict[int, answers.LineStatus] = {}

    @classmethod
    def from_config(cls, config, receive: bool = True) -> "GoipTransport":
        try:
            settings = GoipSettings.from_config(config)
        except ValueError as exc:
            raise SendFailed(OPERATOR, str(exc)) from None
        return cls(settings, receive=receive)

    # -- life

    def open(self) -> None:
        statuses = self._status(opening=True)
        missing = [line for line in self.settings.lines if line not in statuses]
        if missing:
            have = ", ".join(str(line) for line in sorted(statuses))
            raise SendFailed(OPERATOR, f"{self.name}: the GoIP has no line "
                             f"{', '.join(map(str, missing))} (its lines: {have})")
        if self._receive:
            for line in self.settings.lines:
                self._open_receiver(line)

    def _smpp_receiver(self, line: int) -> Transport:
        from smss.smpp.settings import SmppSettings
        from smss.transports.smpp import SmppTransport

        s = self.settings
        return SmppTransport(SmppSettings(
            host=s.base.host, port=s.smpp_port, system_id=f"{s.smpp_system_id}{line:02d}",
            password=s.smpp_password, bind="transceiver", registered_delivery=False,
            spool=f"{s.spool}.L{line}", name=self.name, multipart_timeout=s.multipart_timeout,
            legacy_spool=f"{s.legacy_spool}.L{line}" if s.legacy_spool else ""))

    def _open_receiver(self, line: int) -> None:
        receiver = self._receivers.get(line)
        try:
            if receiver is None:
                try:
                    receiver = self._receiver_factory(line)
                except ValueError as exc:
                    raise SendFailed(OPERATOR, f"[goip] SMPP settings: {exc}") from None
                receiver.open()
                self._receivers[line] = receiver
        except SendFailed as exc:
            problem = SendFailed(exc.kind, f"{self.name} L{line} receiving (SMPP): {exc.reason}")
            self._receive_problems[line] = problem
            log.error("%s", problem.reason)
            return
        self._receive_problems.pop(line, None)

    def close(self) -> None:
        receivers, self._receivers = list(self._receivers.values()), {}
        for receiver in receivers:
            try:
                receiver.close()
            except Exception as exc:  # noqa: BLE001 - closing the rest matters more
                log.warning("%s: closing a receiver: %s", self.name, exc)

    # -- HTTP

    def _http(self, method: str, path: str, **kwargs) -> Answer:
        return request(self.settings.base, method, path, timeout=self.settings.http_timeout,
                       **kwargs)

    def _credentials(self) -> List[Tuple[str, str]]:
        return [("u", self.settings.user), ("p", self.settings.password)]

    def _status(self, opening: bool = False) -> Dict[int, answers.LineStatus]:
        """send_status.xml; SendFailed DOWN when there is no answer, OPERATOR when it is
        refused or (when opening) not the status page."""
        query = urlencode(self._credentials(), quote_via=quote)
        try:
            answer = self._http("GET", STATUS_PATH, query=query)
        except HttpDown as exc:
            raise SendFailed(DOWN, f"{self.name}: {exc.reason}") from None
        if answer.status in (401, 403):
            raise SendFailed(OPERATOR, f"{self.name}: the GoIP refused user {self.settings.user!r}"
                             f" (HTTP {answer.status}): check [goip] user and password")
        if answer.status != 200:
            kind = OPERATOR if opening and answer.status == 404 else DOWN
            raise SendFailed(kind, f"{self.name}: {STATUS_PATH} answered HTTP {answer.status}")
        try:
            statuses = answers.parse_status(answer.body)
        except answers.GoipAnswerError as exc:
            refused = _refusal(answer.text)
            if refused is not None and refused.why == answers.AUTH:
                raise SendFailed(OPERATOR, f"{self.name}: the GoIP refused user "
                                 f"{self.settings.user!r}: {refused.reason}") from None
            raise SendFailed(OPERATOR if opening else DOWN, f"{self.name}: {exc}") from None
        self._last_status = statuses
        return statuses

    def _submit(self, line: int, phone: str, text: str) -> str:
        """Hand one message to the GoIP on ``line``; returns the id its status will carry.
        Raises _LineBusy, _LineDown (nothing sent) or SendFailed."""
        s = self.settings
        if s.send_method == "post":
            key = secrets.token_hex(4)
            form = [("line", str(line)), (f"line{line}", "1"), ("smskey", key),
                    ("action", "SMS"), ("telnum", phone), ("smscontent", text), ("send", "Send")]
            answer = self._post("type=sms", form)
            refused = answers.parse_form_answer(answer.text) if answer.status == 200 else None
            if refused is not None:
                self._refused(line, refused)
            self._check_http(answer, sent_maybe=True)
            return key
        query = urlencode(self._credentials() + [("l", str(line)), ("n", phone), ("m", text)],
                          quote_via=quote)
        try:
            answer = self._http("GET", SEND_PATH, query=query)
        except HttpDown as exc:
            raise SendFailed(DOWN, f"{self.name}: {exc.reason}", maybe_sent=exc.reached) from None
        self._check_http(answer, sent_maybe=False)
        try:
            parsed = answers.parse_send_answer(answer.text)
        except answers.GoipAnswerError as exc:
            raise SendFailed(TEMPORARY, f"{self.name} L{line}: {exc}; the message may have "
                             "been sent", maybe_sent=True) from None
        if isinstance(parsed, answers.Refused):
            self._refused(line, parsed)
        assert isinstance(parsed, answers.Accepted)
        if parsed.line != line:
            log.warning("%s: asked for L%d, the GoIP answered L%d", self.name, line, parsed.line)
        return parsed.id

    def _post(self, query: str, form: Sequence[Tuple[str, str]]) -> Answer:
        try:
            return self._http("POST", FORM_PATH, query=query, form=form,
                              basic_auth=(self.settings.user, self.settings.password))
        except HttpDown as exc:
            raise SendFailed(DOWN, f"{self.name}: {exc.reason}", maybe_sent=exc.reached) from None

    def _check_http(self, answer: Answer, sent_maybe: bool) -> None:
        if answer.status in (401, 403):
            raise SendFailed(OPERATOR, f"{self.name}: the GoIP refused user {self.settings.user!r}"
                             f" (HTTP {answer.status}): check [goip] user and password")
        if answer.status == 404:
            raise SendFailed(OPERATOR, f"{self.name}: no such page on the GoIP (HTTP 404): "
                             "check [goip] url")
        if answer.status != 200:
            raise SendFailed(TEMPORARY, f"{self.name}: the GoIP answered HTTP {answer.status}",
                             maybe_sent=sent_maybe)

    def _refused(self, line: int, refused: answers.Refused) -> None:
        if refused.why == answers.AUTH:
            raise SendFailed(OPERATOR, f"{self.name}: the GoIP refused user "
                             f"{self.settings.user!r}: {refused.reason}")
        if refused.why == answers.BUSY:
            raise _LineBusy(refused.reason)
        if refused.why == answers.LINE_DOWN:
            raise _LineDown(refused.reason)
        raise SendFailed(TEMPORARY, f"{self.name} L{line}: the GoIP refused: {refused.reason}")

    # -- lines

    def _free_lines(self, statuses: Dict[int, answers.LineStatus], taken) -> List[int]:
        """Lines that may take a job now, starting after the one used last."""
        now = self._clock()
        lines = self.settings.lines
        order = lines[self._next_line:] + lines[:self._next_line]
        free = []
        for line in order:
            if line in taken or self._down_until.get(line, 0.0) > now:
                continue
            status = statuses.get(line)
            if status is None or not status.idle:
                continue
            pending = self._pending.get(line)
            if pending is not None:
                ours, since = pending
                if status.id == ours:
                    del self._pending[line]  # our last job there is over
                elif now - since < self.settings.send_timeout:
                    continue  # ours has not shown up yet: the line may still be busy with it
                else:
                    del self._pending[line]  # it never showed up (overwritten): give up on it
            free.append(line)
        return free

    def _used(self, line: int) -> None:
        lines = self.settings.lines
        self._next_line = (lines.index(line) + 1) % len(lines)

    # -- sending

    def send(self, phone: str, text: str, progress=None) -> Sent:  # whole messages only
        outcome: Union[Sent, SendFailed, None] = next(
            (result for _, result in self.send_many([(None, phone, text)])), None)
        if isinstance(outcome, Sent):
            return outcome
        if isinstance(outcome, SendFailed):
            raise outcome
        raise SendFailed(DOWN, f"{self.name}: stopped before it was sent")  # stopping()

    def send_many(self, items: Sequence[Tuple[Any, str, str]]
                  ) -> Iterator[Tuple[Any, Union[Sent, SendFailed]]]:
        """One message in flight per free line, all lines at once; outcomes as their
        status turns final.  The next item is taken only when a line is free for it.  The
        batch ends at the first DOWN or OPERATOR outcome (messages in flight then are
        reported first, as maybe sent); items not yielded were not sent.  A stop request
        (``stopping``) starts nothing more and ends a wait for a busy line; the jobs the
        GoIP has are followed to their end."""
        s = self.settings
        source: Optional[Iterator[Tuple[Any, str, str]]] = iter(items)
        waiting: Deque[Tuple[Any, str, str]] = deque()  # taken, not yet on a line

        def take() -> bool:
            nonlocal source
            item = next(source, None) if source is not None else None
            if item is None:
                source = None
                return False
            key, phone, text = item
            waiting.append((key, phone, self.sendable(text)))
            return True

        if not take():
            return
        flights: Dict[int, _Job] = {}
        stop: Optional[Tuple[Any, SendFailed]] = None
        waiting_since = self._clock()
        failures = 0
        while ((waiting or source is not None) and stop is None) or flights:
            if (waiting or source is not None) and self.stopping():
                waiting.clear()  # asked to stop: start nothing more (not yielded: not sent)
                source = None
                if not flights:
                    break
            try:
                statuses = self._status()
                failures = 0
            except SendFailed as exc:
                failures += 1
                if exc.kind == OPERATOR or not flights or failures >= STATUS_FAILURES:
                    stop = yield from self._abort(flights, waiting, exc)
                    break
                self._sleep(s.poll_interval)
                continue
            # 1. jobs that finished (or ran out of time)
            now = self._clock()
            for line, job in list(flights.items()):
                status = statuses.get(line)
                if status is not None and status.id == job.id and status.final:
                    del flights[line]
                    self._pending.pop(line, None)
                    yield job.key, self._outcome(job, status)
                elif now >= job.deadline:
                    del flights[line]
                    yield job.key, SendFailed(
                        TEMPORARY, f"{self.name} L{line}: no DONE for {job.id} within "
                        f"{s.send_timeout:g}s; the message may have been sent",
                        maybe_sent=True, sent_references=[job.id])
            # 2. new jobs on free lines
            while stop is None:
                free = self._free_lines(statuses, flights)
                if not free or (not waiting and not take()):
                    break
                line = free[0]
                key, phone, text = waiting[0]
                try:
                    parts = plan_parts(text).count
                    sms_id = self._submit(line, phone, text)
                except _LineBusy as exc:
                    log.info("%s L%d: the GoIP says busy (%s); waiting", self.name, line, exc)
                    statuses = dict(statuses)
                    statuses[line] = answers.LineStatus(line, "?", "BUSY")
                    continue
                except _LineDown as exc:
                    log.warning("%s L%d cannot send: %s", self.name, line, exc)
                    self._down_until[line] = self._clock() + LINE_DOWN_PAUSE
                    if all(self._down_until.get(other, 0.0) > self._clock()
                           for other in s.lines):
                        stop = (waiting.popleft()[0],
                                SendFailed(DOWN, f"{self.name} L{line}: {exc}"))
                    continue
                except SendFailed as exc:
                    waiting.popleft()
                    if exc.kind in (DOWN, OPERATOR):
                        stop = (key, exc)
                        break
                    yield key, exc
                    continue
                waiting.popleft()
                self._used(line)
                self._pending[line] = (sms_id, self._clock())
                flights[line] = _Job(key, line, sms_id, parts, self._clock() + s.send_timeout)
                waiting_since = self._clock()
                log.debug("%s L%d: %s handed over as %s", self.name, line, phone, sms_id)
            # 3. nothing can start and nothing runs: the lines stay busy too long
            if waiting and stop is None and not flights:
                if self._clock() - waiting_since >= s.busy_timeout:
                    key = waiting.popleft()[0]
                    busy = ", ".join(f"L{line}" for line in s.lines)
                    yield key, SendFailed(TEMPORARY, f"{self.name}: {busy} still busy with an "
                                          f"earlier job after {s.busy_timeout:g}s")
                    return  # the rest were not sent: the dispatcher keeps them
            if flights or (waiting and stop is None):
                self._sleep(s.poll_interval)
        if stop is not None:
            yield stop

    def _abort(self, flights: Dict[int, _Job], waiting: Deque[Tuple[Any, str, str]],
               exc: SendFailed):
        """The GoIP cannot be asked any more: messages in flight may have been sent; the
        batch ends with ``exc`` on the first waiting message (not sent), or on the last
        one in flight (maybe sent).  Returns that final outcome."""
        jobs = list(flights.values())
        flights.clear()
        if waiting:
            for job in jobs:
                yield job.key, self._lost(job, exc.reason)
            return waiting.popleft()[0], exc
        for job in jobs[:-1]:
            yield job.key, self._lost(job, exc.reason)
        if not jobs:
            return None
        last = jobs[-1]
        return last.key, SendFailed(exc.kind, f"{exc.reason}; the message may have been sent",
                                    maybe_sent=True, sent_references=[last.id])

    def _outcome(self, job: _Job, status: answers.LineStatus) -> Union[Sent, SendFailed]:
        if status.failed:
            error = status.error or "ERRORDONE"
            maybe = answers.errordone_maybe_sent(error)
            return SendFailed(TEMPORARY, f"{self.name} L{job.line}: {error}", maybe_sent=maybe,
                              sent_references=[job.id] if maybe else [])
        return Sent((job.id,), job.parts, "")

    def _lost(self, job: _Job, reason: str) -> SendFailed:
        return SendFailed(TEMPORARY, f"{reason}; the message may have been sent",
                          maybe_sent=True, sent_references=[job.id])

    # -- USSD

    def ussd(self, code: str, timeout: float) -> str:
        """The form with type=ussd on the first line, once it is free; the answer is that
        line's error text when its status turns DONE."""
        s = self.settings
        line = s.lines[0]
        deadline = self._clock() + timeout
        while True:
            if line in self._free_lines(self._status(), ()):
                break
            if self._clock() >= deadline:
                raise SendFailed(TEMPORARY, f"{self.name} L{line} stayed busy for {timeout:g}s")
            self._sleep(s.poll_interval)
        key = secrets.token_hex(4)
        form = [(f"line{line}", "1"), ("smskey", key), ("action", "USSD"), ("telnum", code),
                ("send", "Send")]
        answer = self._post("type=ussd", form)
        refused = answers.parse_form_answer(answer.text) if answer.status == 200 else None
        try:
            if refused is not None:
                self._refused(line, refused)
        except (_LineBusy, _LineDown) as exc:
            raise SendFailed(TEMPORARY, f"{self.name} L{line}: {exc}") from None
        self._check_http(answer, sent_maybe=True)
        self._pending[line] = (key, self._clock())
        while True:
            self._sleep(s.poll_interval)
            try:
                status = self._status().get(line)
            except SendFailed as exc:
                if exc.kind == OPERATOR or self._clock() >= deadline:
                    raise
                continue
            if status is not None and status.id == key and status.final:
                self._pending.pop(line, None)
                if status.failed:
                    raise SendFailed(TEMPORARY, f"{self.name} L{line}: USSD failed: "
                                     f"{status.error or 'ERRORDONE'}")
                from smss.gsm.ussd import decode_answer

                return decode_answer(status.error)
            if self._clock() >= deadline:
                raise SendFailed(TEMPORARY, f"{self.name} L{line}: no USSD answer within "
                                 f"{timeout:g}s")

    # -- receiving

    def _reopen_receivers(self) -> None:
        for line in list(self._receive_problems):
            self._open_receiver(line)

    def fetch(self) -> Inbox:
        inbox = Inbox()
        if not self._receive:
            return inbox
        self._reopen_receivers()
        problems = list(self._receive_problems.values())
        for line, receiver in self._receivers.items():
            try:
                got = receiver.fetch()
            except SendFailed as exc:
                problems.append(SendFailed(exc.kind, f"{self.name} L{line}: {exc.reason}"))
                continue
            for message in got.messages:
                inbox.messages.append(dataclasses.replace(
                    message, handles=tuple(f"L{line}:{h}" for h in message.handles)))
                log.info("%s: SMS from %s came in on L%d", self.name, message.phone, line)
            for report in got.reports:
                inbox.reports.append(dataclasses.replace(
                    report, handles=tuple(f"L{line}:{h}" for h in report.handles)))
        if problems and not inbox.messages and not inbox.reports:
            raise problems[0]
        return inbox

    def delete(self, handles: Sequence) -> None:
        by_line: Dict[int, List[str]] = {}
        for handle in handles:
            prefix, _, inner = str(handle).partition(":")
            if not prefix.startswith("L") or not prefix[1:].isdigit():
                raise SendFailed(PERMANENT, f"{self.name}: not a handle of mine: {handle!r}")
            by_line.setdefault(int(prefix[1:]), []).append(inner)
        for line, inner in by_line.items():
            receiver = self._receivers.get(line)
            if receiver is None:
                raise SendFailed(DOWN, f"{self.name} L{line}: receiver not open")
            receiver.delete(inner)

    def wait(self, timeout: float, wake=None) -> bool:
        """Until an SMS is spooled on any line (True), ``wake`` is set, or ``timeout``."""
        if not self._receivers:
            return super().wait(timeout, wake)
        deadline = self._clock() + timeout
        while True:
            for receiver in list(self._receivers.values()):
                if receiver.wait(0.0):
                    return True
            remaining = deadline - self._clock()
            if remaining <= 0:
                return False
            step = min(0.05, remaining)
            if wake is not None:
                if wake.wait(step):
                    return False
            else:
                time.sleep(step)

    def probe(self) -> Probe:
        """send_status.xml (what the dispatcher reads between sends): the GoIP answers,
        takes the login, and has the configured lines; each line's last job."""
        statuses = self._status(opening=True)
        found = Probe()
        found.add("web server", f"{self.settings.base.host}:{self.settings.base.port}")
        for line in sorted(statuses):
            status = statuses[line]
            mine = " (configured)" if line in self.settings.lines else ""
            last = " ".join(filter(None, (status.status or "no job yet", status.id,
                                          status.error)))
            found.add(f"line {line}{mine}", f"last job: {last}")
        missing = [line for line in self.settings.lines if line not in statuses]
        if missing:
            found.problems.append(f"the GoIP has no line {', '.join(map(str, missing))} "
                                  f"(its lines: {', '.join(map(str, sorted(statuses)))})")
        if self.settings.smpp_port:
            found.add("receiving", f"SMPP port {self.settings.smpp_port} (not bound by a probe)")
        return found

    def state(self) -> TransportState:
        parts = []
        for line in self.settings.lines:
            status = self._last_status.get(line)
            if status is None:
                parts.append(f"L{line} ?")
            else:
                parts.append(f"L{line} {'idle' if status.idle else status.status or 'busy'}")
            if line in self._receive_problems:
                parts.append(f"L{line} SMPP down")
        return TransportState(registration=", ".join(parts)[:64] or None)


def _refusal(text: str) -> Optional[answers.Refused]:
    try:
        parsed = answers.parse_send_answer(text)
    except answers.GoipAnswerError:
        return None
    return parsed if isinstance(parsed, answers.Refused) else None
