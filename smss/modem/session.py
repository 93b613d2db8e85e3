"""A session with one GSM modem: bring it up, send, list, read, delete, USSD, recover.

``ModemSession`` owns the conversation: initialisation (reset, echo off,
numeric errors, SIM PIN, network registration, SMSC, storage, new-message and
status-report indications), sending in PDU mode with exactly one ``AT+CMGS``
per part (``send_parts`` can leave out the parts an earlier attempt got
through), the stored messages, status reports, USSD and recovery.  It never
re-initialises between messages and never retries a send on its own (a retry
could send an SMS twice); it raises a ``ModemError`` whose class tells the
caller what to do (see ``smss.modem.errors``).

Clock and sleep are injectable for the waiting loops (SIM busy, registration,
reset); the byte I/O always runs on real time.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Deque, List, Optional, Tuple, TypeVar, Union

from smss.gsm import alphabet
from smss.gsm import ussd as ussd_codec
from smss.gsm.pdu import (
    Deliver,
    PduError,
    StatusReport,
    Submit,
    SubmitPdu,
    build_submits,
    decode_pdu,
)

from .atparse import Unsolicited
from .engine import AtEngine, Response
from .errors import (
    LinkDown,
    ModemError,
    ModemTimeout,
    NoNetwork,
    PermanentError,
    PinRequired,
    PukRequired,
    SimBusy,
    SimError,
    TemporaryError,
    WrongPin,
)
from .link import Link
from .pinguard import PinGuard

log = logging.getLogger(__name__)

T = TypeVar("T")

#: +CREG/+CGREG/+CEREG <stat> values (27.007 7.2)
REGISTRATION = {
    0: "not registered",
    1: "home",
    2: "searching",
    3: "denied",
    4: "unknown",
    5: "roaming",
    6: "home (SMS only)",
    7: "roaming (SMS only)",
    8: "emergency only",
    9: "home (CSFB not preferred)",
    10: "roaming (CSFB not preferred)",
}
REGISTERED = frozenset({1, 5, 6, 7, 9, 10})
#: +CMGL/+CMGR <stat> in PDU mode (27.005 3.1)
STAT_NAMES = {0: "REC UNREAD", 1: "REC READ", 2: "STO UNSENT", 3: "STO SENT", 4: "ALL"}
# AT+CNMI settings tried in order: new messages stored with +CMTI; status reports stored
# with +CDSI (ds=2) where the modem can, else routed as +CDS (ds=1).  Stored reports survive
# the time no dispatcher has the port open (a +CDS then is lost); they come from
# list_stored().  Modems accept different subsets.
CNMI_WITH_REPORTS = ("2,1,0,2,0", "1,1,0,2,0", "2,1,0,1,0", "1,1,0,1,0", "2,1,0,2", "2,1,0,1")
CNMI_WITHOUT_REPORTS = ("2,1,0,0,0", "1,1,0,0,0", "2,1,0,0", "2,1")
_STORAGE = re.compile(r"^[A-Z]{2}$")
# Start-up lines: the modem has (re)started and forgotten its settings.  What each maker
# prints is in smss.sim.boot, with its source: RDY (SIMCom, Quectel), +CFUN: 1, +CPIN:
# <state> (the SIM read again), Call Ready / SMS Ready (SIM800, M95), SMS DONE / PB DONE
# (SIM7600), +QUSIM / +QIND: SMS DONE / PB DONE (Quectel EC2x), ^SYSSTART (Cinterion,
# Huawei modules).  Not Huawei's ^BOOT:..., which repeats while the modem runs.
BOOT_NAMES = ("RDY", "+CFUN", "+CPIN", "CALL READY", "SMS READY", "SMS DONE", "PB DONE",
              "+QUSIM", "+QIND", "^SYSSTART")


def is_boot_line(event: Unsolicited) -> bool:
    """True for an unsolicited line a modem prints when it has (re)started."""
    args = event.args.strip().upper()
    if event.name == "+CFUN":
        return args == "1"  # full function again (+CFUN: 0 is a radio switched off)
    if event.name == "+QIND":
        return args in ("SMS DONE", "PB DONE")  # not its other indications ("csq" ...)
    return event.name in BOOT_NAMES


def is_sim_ready_line(event: Unsolicited) -> bool:
    """True for a start-up line that only says the SIM became ready - what a modem also
    prints after AT+CPIN=<pin> (smss.sim.boot: SIMCom, Quectel)."""
    if event.name == "+CPIN":
        return event.args.strip().upper() == "READY"
    return event.name in ("CALL READY", "SMS READY", "SMS DONE", "PB DONE", "+QUSIM",
                          "+QIND")
_USSD_CODE = re.compile(r"^[0-9*#+]{1,160}$")


@dataclass(frozen=True)
class ModemSettings:
    """Everything a session needs; ``from_config`` reads the [modem] section."""

    device: str
    baudrate: int = 115200
    pin: str = ""
    smsc: str = ""
    command_timeout: float = 10.0
    send_timeout: float = 60.0
    init_commands: Tuple[str, ...] = ()
    status_reports: bool = True
    validity_minutes: Optional[int] = 1440  # None or 0: the network's default
    storage: str = ""
    register_timeout: float = 60.0
    transliterate: bool = False
    pin_guard_file: str = ""  # where rejected PINs are remembered; "": this process only
    sim_busy_timeout: float = 30.0  # how long "SIM busy" is waited out
    poll_interval: float = 1.0  # between AT+CREG? / AT+CPIN? polls
    reset_wait: float = 15.0  # after AT+CFUN=1,1 before the port is opened again
    read_timeout: float = 0.1  # granularity of reads from the port
    quiet_time: float = 0.3  # silence that tells leftover output has ended (re-sync)
    health_interval: float = 60.0  # between checks that the settings are still there

    @classmethod
    def from_config(cls, config: Any, **overrides: Any) -> "ModemSettings":
        """Settings from a ``smss.config.Config``; keywords override single fields."""

        def optional(section: str, key: str, default: Any) -> Any:
            try:
                return config.get(section, key)
            except KeyError:
                return default

        values = {
            "device": config.get("modem", "device"),
            "baudrate": config.get("modem", "baudrate"),
            "pin": config.get("modem", "pin"),
            "smsc": config.get("modem", "smsc"),
            "command_timeout": config.get("modem", "command_timeout"),
            "send_timeout": config.get("modem", "send_timeout"),
            "init_commands": tuple(config.get("modem", "init_commands")),
            "status_reports": config.get("modem", "status_reports"),
            "validity_minutes": config.get("modem", "validity_minutes") or None,
            "storage": config.get("modem", "storage"),
            "register_timeout": config.get("modem", "register_timeout"),
            "transliterate": optional("messages", "transliterate", False),
            "pin_guard_file": optional("modem", "pin_guard_file", ""),
            "health_interval": optional("modem", "health_interval", 60.0),
        }
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class Outgoing:
    """One message encoded for sending: its parts under one concatenation reference."""

    number: str
    pdus: Tuple[SubmitPdu, ...]
    encoding: str  # "gsm7" or "ucs2"
    concat_reference: int

    @property
    def parts(self) -> int:
        return len(self.pdus)


@dataclass(frozen=True)
class SendResult:
    references: List[Optional[int]]  # TP-MR of each part from +CMGS (0..255, wraps); None: missing
    parts: int
    encoding: str  # "gsm7" or "ucs2"


@dataclass(frozen=True)
class StoredMessage:
    index: int
    stat: int  # 0 received unread, 1 received read, 2 stored unsent, 3 stored sent
    pdu_hex: str
    decoded: Union[Deliver, StatusReport, Submit, None]
    error: Optional[str] = None  # why ``decoded`` is None

    @property
    def stat_name(self) -> str:
        return STAT_NAMES.get(self.stat, str(self.stat))


@dataclass(frozen=True)
class ModemStatus:
    rssi: Optional[int]  # 0..31 from AT+CSQ; None when unknown (99)
    signal_dbm: Optional[int]  # -113 .. -51
    ber: Optional[int]
    registration: str  # "home", "roaming", "searching", "denied", "not registered", ...
    registered: bool
    operator: Optional[str]
    storage: Optional[str]  # memory AT+CPMS reads from
    storage_used: Optional[int]
    storage_total: Optional[int]
    smsc: Optional[str]
    model: Optional[str] = None

    @property
    def storage_full(self) -> bool:
        return self.storage_total is not None and self.storage_used == self.storage_total


@dataclass
class _State:
    smsc: Optional[str] = None
    model: Optional[str] = None
    cnmi: Optional[str] = None
    references: List[int] = field(default_factory=list)
    initialised: bool = False  # the last initialisation finished
    pin_entered: bool = False  # ... and it entered the PIN: "+CPIN: READY" etc. answer it


def split_fields(args: str) -> List[str]:
    """Comma-separated AT arguments, quotes respected and removed."""
    fields: List[str] = []
    current: List[str] = []
    quoted = False
    for ch in args:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            fields.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    fields.append("".join(current).strip())
    return fields


def _int(text: Optional[str]) -> Optional[int]:
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


class ModemSession:
    """One modem; see the module docstring.  Use as a context manager or open()/close()."""

    def __init__(
        self,
        settings: ModemSettings,
        *,
        link: Optional[Link] = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        pin_guard: Optional[PinGuard] = None,
    ) -> None:
        self.settings = settings
        self._link = link
        self._clock = clock
        self._sleep = sleep
        self._guard = pin_guard if pin_guard is not None else PinGuard(settings.pin_guard_file)
        self._engine: Optional[AtEngine] = None
        # unsolicited codes survive a re-open (a +CDS must not be lost to a recovery)
        self._unsolicited: Deque[Unsolicited] = deque(maxlen=1000)
        self._routed_reports: List[Unsolicited] = []  # +CDS taken out of the queue
        self._state = _State()
        self._concat = random.randrange(256)
        self._aborted: Optional[str] = None  # abort() gave the session up, and why

    # --- lifecycle
    def __enter__(self) -> "ModemSession":
        self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        return self._engine is not None and self._engine.link.is_open

    def open(self) -> None:
        """Open the port and initialise the modem.  On failure the port is closed again."""
        if self.is_open:
            return
        if self._link is None:
            self._link = Link(
                self.settings.device,
                baudrate=self.settings.baudrate,
                read_timeout=self.settings.read_timeout,
                write_timeout=max(self.settings.command_timeout, 1.0),
            )
        if self._aborted is not None:
            self._link.abort(self._aborted)
        self._link.open()
        self._engine = AtEngine(self._link, unsolicited=self._unsolicited,
                                quiet_time=self.settings.quiet_time)
        try:
            self._initialise()
        except BaseException:
            self.close()
            raise
        log.info("modem on %s ready", self.settings.device)

    def close(self) -> None:
        self._engine = None
        if self._link is not None:
            self._link.close()

    def abort(self, reason: str) -> None:
        """From another thread: make the command in progress (and every later one) fail
        with LinkDown within ``read_timeout``; the session cannot be opened again."""
        self._aborted = reason
        if self._link is not None:
            self._link.abort(reason)

    def recover(self, *, hard: bool = True) -> None:
        """Bring a wedged modem back: re-open the port and initialise (ATZ); if that fails
        and ``hard``, reset it with AT+CFUN=1,1, wait ``reset_wait`` and keep opening it
        for ``register_timeout``.  SIM problems are raised, never retried."""
        log.warning("recovering the modem on %s", self.settings.device)
        self.close()
        try:
            self.open()
            return
        except SimError:
            raise
        except ModemError as exc:
            if not hard:
                raise
            log.warning("re-initialising failed (%s); resetting with AT+CFUN=1,1", exc)
        if self._link is None:
            raise LinkDown(f"no link to {self.settings.device!r}")
        try:
            self._link.open()
            engine = AtEngine(self._link)
            engine.drain(quiet=self.settings.quiet_time, limit=1.0)
            engine.command("AT+CFUN=1,1", self.settings.command_timeout, check=False)
        except ModemError as exc:
            log.warning("AT+CFUN=1,1 failed: %s", exc)
        finally:
            self.close()
        self._sleep(self.settings.reset_wait)
        deadline = self._clock() + self.settings.register_timeout
        while True:
            try:
                self.open()
                return
            except SimError:
                raise
            except ModemError:
                if self._clock() >= deadline:
                    raise
                self._sleep(self.settings.poll_interval)

    def _require(self) -> AtEngine:
        if self._engine is None or not self._engine.link.is_open:
            self._engine = None
            raise LinkDown(f"modem on {self.settings.device} is not open (open() or recover())")
        return self._engine

    # --- helpers
    def _command(self, command: str, *, timeout: Optional[float] = None, check: bool = True,
                 busy: bool = True) -> Response:
        engine = self._require()
        run = lambda: engine.command(  # noqa: E731
            command, timeout or self.settings.command_timeout, check=check
        )
        return self._retry_busy(run) if busy else run()

    def _retry_busy(self, run: Callable[[], T]) -> T:
        """Run ``run``, waiting out "SIM busy" / "init in progress" up to sim_busy_timeout."""
        deadline = self._clock() + self.settings.sim_busy_timeout
        while True:
            try:
                return run()
            except ModemError as exc:
                busy = isinstance(exc, SimBusy) or (
                    exc.family == "CMS" and exc.code in (515, 532)
                )
                if not busy or exc.pdu_sent or self._clock() >= deadline:
                    raise
                log.info("SIM busy (%s); waiting", exc.reason)
                self._sleep(self.settings.poll_interval)

    # --- initialisation
    def _initialise(self) -> None:
        settings = self.settings
        engine = self._require()
        self._state.initialised = self._state.pin_entered = False
        # Esc leaves a > prompt a crashed process may have left; AT finds the baud rate
        engine.resync(settings.command_timeout)
        engine.take_unsolicited(BOOT_NAMES)  # start-up lines so far: answered by this
        self._command("ATZ")
        self._command("ATE0")
        self._optional("AT+CMEE=1")
        self._unlock_sim()
        self._command("AT+CMGF=0")
        self._optional("AT+CSMS=0")  # phase 2 semantics: +CDS needs no +CNMA
        self._wait_registered()
        self._set_smsc()
        if settings.storage:
            self._command(self._cpms_command(settings.storage))
        self._set_indications()
        self._state.model = self._identity()
        for extra in settings.init_commands:
            command = extra if extra.upper().startswith("AT") else "AT" + extra
            try:
                self._command(command)
            except SimError:
                raise
            except ModemError as exc:
                log.warning("init command %s failed: %s", command, exc)
        self._state.initialised = True

    # --- restarts
    def restarted(self, *, check_settings: bool = False) -> Optional[str]:
        """Why the modem must be initialised again, or None.  A modem that restarts (power
        cut, watchdog, firmware) forgets AT+CNMI and the rest and tells nobody: it prints
        a start-up line (``is_boot_line``), or - a silent one - AT+CNMI? / AT+CPMS? no
        longer show what was set (asked with ``check_settings``).  Also when the last
        initialisation did not finish."""
        engine = self._require()
        engine.poll()
        events = [event for event in engine.take_unsolicited(BOOT_NAMES) if is_boot_line(event)]
        if self._state.pin_entered:  # the SIM getting ready after our PIN is no restart
            events = [event for event in events if not is_sim_ready_line(event)]
        if events:
            return "it printed " + ", ".join(event.text for event in events)
        if not self._state.initialised:
            return "its initialisation did not finish"
        return self._settings_lost() if check_settings else None

    def initialise_again_if_restarted(self, *, check_settings: bool = False) -> bool:
        """Initialise the modem again when it restarted (see ``restarted``); True if so."""
        why = self.restarted(check_settings=check_settings)
        if why is None:
            return False
        log.warning("the modem on %s restarted (%s); initialising it again",
                    self.settings.device, why)
        self._initialise()
        return True

    def _settings_lost(self) -> Optional[str]:
        """What AT+CNMI? / AT+CPMS? show that differs from what was set, or None."""
        wanted = self._state.cnmi
        if wanted is not None:
            response = self._optional("AT+CNMI?")
            value = response.value("+CNMI") if response is not None else None
            if value is not None:
                now = [_int(f) for f in split_fields(value)]
                want = [_int(f) for f in wanted.split(",")]
                if now[:len(want)] != want:
                    return f"AT+CNMI? answers {value}, not {wanted}"
        if self.settings.storage:
            response = self._optional("AT+CPMS?")
            value = response.value("+CPMS") if response is not None else None
            if value is not None:
                fields = split_fields(value)
                now = [fields[i].upper() for i in range(0, len(fields), 3)]
                want = split_fields(self._cpms_command(self.settings.storage)[8:])
                if now != want[:len(now)]:
                    return f"AT+CPMS? answers {value}, not {','.join(want)}"
        return None

    def _optional(self, command: str) -> Optional[Response]:
        try:
            return self._command(command)
        except SimError:
            raise
        except (TemporaryError, PermanentError) as exc:
            if isinstance(exc, (ModemTimeout, LinkDown)):
                raise
            log.info("%s not supported: %s", command, exc.reason)
            return None

    def _cpin(self) -> str:
        response = self._command("AT+CPIN?")
        state = response.value("+CPIN")
        if state is None:
            log.warning("AT+CPIN? gave no +CPIN line; assuming READY")
            return "READY"
        return state.strip().strip('"').upper()

    def _unlock_sim(self) -> None:
        state = self._cpin()
        if state in ("READY", "SIM PIN2", "SIM PUK2"):
            return
        if state == "SIM PUK":
            raise PukRequired("the SIM is blocked and needs the PUK", command="AT+CPIN?")
        if state != "SIM PIN":
            raise PinRequired(f"the SIM asks for {state}", command="AT+CPIN?")
        pin = self.settings.pin
        if not pin:
            raise PinRequired("the SIM asks for a PIN and [modem] pin is empty",
                              command="AT+CPIN?")
        if self._guard.is_rejected(pin):
            where = self.settings.pin_guard_file or "this process"
            raise WrongPin(
                f"this PIN was rejected before and is not sent again (remembered in {where})",
                command="AT+CPIN?",
            )
        log.info("entering the SIM PIN")
        self._state.pin_entered = True
        try:
            # sent exactly once; whatever happens next, the SIM's state decides
            self._command(f'AT+CPIN="{pin}"', busy=False)
        except (WrongPin, PukRequired):
            self._guard.record(pin)
            raise
        except SimError:
            raise
        except ModemError as exc:
            log.warning("AT+CPIN=<pin> failed: %s; asking the SIM what happened", exc)
        try:
            state = self._cpin()
        except SimError:
            self._guard.record(pin)
            raise
        except ModemError as exc:
            # the SIM may have counted a wrong attempt: do not risk a second one unattended
            self._guard.record(pin)
            where = self.settings.pin_guard_file or "this process"
            raise PinRequired(
                f"the outcome of entering the PIN is unknown ({exc}); it is not sent again "
                f"until it is cleared from {where}",
                command="AT+CPIN",
            ) from exc
        if state == "SIM PIN":
            self._guard.record(pin)
            raise WrongPin("the SIM still asks for the PIN after it was sent; not sent again",
                           command="AT+CPIN")
        if state == "SIM PUK":
            self._guard.record(pin)
            raise PukRequired("the SIM is blocked and needs the PUK", command="AT+CPIN")
        if state not in ("READY", "SIM PIN2", "SIM PUK2"):
            raise PinRequired(f"the SIM asks for {state}", command="AT+CPIN?")

    def _registration(self) -> Optional[int]:
        response = self._optional("AT+CREG?")
        if response is None:
            return None
        fields = split_fields(response.value("+CREG") or "")
        if len(fields) >= 2:
            return _int(fields[1])
        return _int(fields[0]) if fields and fields[0] else None

    def _wait_registered(self) -> None:
        deadline = self._clock() + self.settings.register_timeout
        while True:
            stat = self._registration()
            if stat is None:
                log.warning("the modem does not report registration; carrying on")
                return
            if stat in REGISTERED:
                return
            if self._clock() >= deadline:
                state = REGISTRATION.get(stat, str(stat))
                raise NoNetwork(
                    f"not registered in a network after {self.settings.register_timeout:g}s: "
                    f"{state}",
                    command="AT+CREG?",
                )
            self._sleep(self.settings.poll_interval)

    def _set_smsc(self) -> None:
        smsc = self.settings.smsc
        if smsc:
            kind = 145 if smsc.startswith("+") else 129
            self._command(f'AT+CSCA="{smsc}",{kind}')
            self._state.smsc = smsc
            return
        response = self._optional("AT+CSCA?")
        fields = split_fields(response.value("+CSCA") or "") if response else []
        self._state.smsc = fields[0] if fields and fields[0] else None
        if not self._state.smsc:
            log.warning("the SIM has no SMS centre number; set [modem] smsc")

    @staticmethod
    def _cpms_command(storage: str) -> str:
        memories = [m.strip().upper() for m in storage.split(",") if m.strip()][:3]
        if not memories or not all(_STORAGE.match(m) for m in memories):
            raise PermanentError(f"[modem] storage {storage!r} is not like SM, ME or MT")
        while len(memories) < 3:
            memories.append(memories[-1])
        return "AT+CPMS=" + ",".join(f'"{m}"' for m in memories)

    def _set_indications(self) -> None:
        candidates = CNMI_WITH_REPORTS if self.settings.status_reports else CNMI_WITHOUT_REPORTS
        for value in candidates:
            try:
                self._command(f"AT+CNMI={value}")
            except SimError:
                raise
            except (ModemTimeout, LinkDown):
                raise
            except ModemError:
                continue
            self._state.cnmi = value
            return
        log.warning("the modem takes none of the AT+CNMI settings; no indications")

    def _identity(self) -> Optional[str]:
        parts = []
        for command in ("AT+CGMI", "AT+CGMM"):
            response = self._optional(command)
            for line in response.lines if response is not None else ():
                name = command[2:] + ":"
                parts.append(line[len(name):].strip() if line.upper().startswith(name) else line)
        return " ".join(p for p in parts if p) or None

    # --- sending
    def _next_reference(self) -> int:
        self._concat = (self._concat + 1) % 256
        return self._concat

    def next_concat_reference(self) -> int:
        """A concatenation reference for the next multipart message (0..255, counting up)."""
        return self._next_reference()

    def encode(self, number: str, text: str, *, concat_reference: Optional[int] = None
               ) -> Outgoing:
        """The message as the PDUs AT+CMGS takes (several parts when long, tied together
        by ``concat_reference``: 0..255 8-bit, up to 65535 16-bit; by default the session
        counts one up per message).  PermanentError when it cannot be encoded."""
        settings = self.settings
        if concat_reference is None:
            concat_reference = self._next_reference()
        try:
            pdus = build_submits(
                number,
                text,
                concat_reference=concat_reference,
                status_report=settings.status_reports,
                validity_minutes=settings.validity_minutes or None,
                transliterate=settings.transliterate,
            )
        except ValueError as exc:  # PduError is a ValueError
            raise PermanentError(f"cannot encode the message: {exc}") from exc
        plain = alphabet.transliterate(text) if settings.transliterate else text
        encoding = "gsm7" if alphabet.is_gsm7(plain) else "ucs2"
        return Outgoing(number, tuple(pdus), encoding, concat_reference)

    def send(self, number: str, text: str, *, concat_reference: Optional[int] = None
             ) -> SendResult:
        """Send one SMS (several parts when long), one AT+CMGS per part (see ``encode`` and
        ``send_parts``)."""
        return self.send_parts(self.encode(number, text, concat_reference=concat_reference))

    def send_parts(self, message: Outgoing, *, skip: Collection[int] = (),
                   on_part: Optional[Callable[[int, Optional[int]], None]] = None
                   ) -> SendResult:
        """Send the parts of ``message`` (numbered from 1) except those in ``skip`` (an
        earlier attempt got them through), in order, one AT+CMGS each.  ``on_part(number,
        reference)`` runs after each part the network accepted, before the next goes out.
        The result has None as the reference of a skipped part.  A failure carries the
        references of the parts this call sent in ``error.sent_references``.
        """
        engine = self._require()
        settings = self.settings
        pdus = message.pdus
        todo = [n for n in range(1, len(pdus) + 1) if n not in skip]
        if len(todo) > 1:
            try:
                self._command("AT+CMMS=1", check=False)  # keep the radio link up between parts
            except SimError:
                raise
            except (ModemTimeout, LinkDown):
                raise
        references: List[Optional[int]] = [None] * len(pdus)
        sent: List[Optional[int]] = []
        for number_of_part in todo:
            pdu = pdus[number_of_part - 1]
            command = f"AT+CMGS={pdu.tpdu_length}"
            try:
                response = self._retry_busy(
                    lambda c=command, p=pdu.hex: engine.command_with_pdu(
                        c, p, prompt_timeout=settings.command_timeout,
                        timeout=settings.send_timeout,
                    )
                )
            except ModemError as exc:
                exc.sent_references = list(sent)
                log.warning("part %d/%d to %s failed: %s", number_of_part, len(pdus),
                            message.number, exc)
                raise
            value = response.value("+CMGS")
            reference = _int(split_fields(value)[0]) if value is not None else None
            if reference is None:
                log.warning("no +CMGS reference for part %d/%d", number_of_part, len(pdus))
            references[number_of_part - 1] = reference
            sent.append(reference)
            if on_part is not None:
                on_part(number_of_part, reference)
        if skip:
            log.info("sent part(s) %s of %d to %s, references %s (the others went before)",
                     todo, len(pdus), message.number, sent)
        else:
            log.info("sent %d part(s) to %s, references %s", len(pdus), message.number, sent)
        return SendResult(references, len(pdus), message.encoding)

    # --- stored messages
    @staticmethod
    def _decode(index: int, stat: int, pdu_hex: str, length: Optional[int]) -> StoredMessage:
        try:
            decoded = decode_pdu(pdu_hex, length)
        except PduError as exc:
            if length is None:
                return StoredMessage(index, stat, pdu_hex, None, str(exc))
            try:  # some modems get <length> wrong; the PDU itself may still be fine
                decoded = decode_pdu(pdu_hex)
            except PduError:
                return StoredMessage(index, stat, pdu_hex, None, str(exc))
            log.info("message %d: %s; decoded without the length check", index, exc)
        return StoredMessage(index, stat, pdu_hex, decoded, None)

    def list_stored(self) -> List[StoredMessage]:
        """Every message in the read storage (AT+CMGL=4), decoded where possible."""
        response = self._command("AT+CMGL=4")
        messages: List[StoredMessage] = []
        header: Optional[List[str]] = None
        for line in response.lines:
            if line.upper().startswith("+CMGL:"):
                if header is not None:
                    messages.append(self._headless(header, "no PDU line after the header"))
                header = split_fields(line[6:])
                continue
            if header is None:
                continue
            if not re.fullmatch(r"[0-9A-Fa-f]+", line):
                continue  # noise between the header and its PDU
            index, stat = _int(header[0]), _int(header[1]) if len(header) > 1 else None
            length = _int(header[-1]) if len(header) >= 3 else None
            if index is None:
                log.warning("+CMGL header without an index: %s", header)
            else:
                messages.append(self._decode(index, stat or 0, line.upper(), length))
            header = None
        if header is not None:
            messages.append(self._headless(header, "no PDU line after the header"))
        return [m for m in messages if m is not None]

    @staticmethod
    def _headless(header: List[str], why: str) -> Optional[StoredMessage]:
        index = _int(header[0]) if header else None
        if index is None:
            return None
        stat = _int(header[1]) if len(header) > 1 else None
        return StoredMessage(index, stat or 0, "", None, why)

    def read(self, index: int) -> Optional[StoredMessage]:
        """The message at ``index`` (AT+CMGR), or None when the slot is empty."""
        try:
            response = self._command(f"AT+CMGR={int(index)}")
        except PermanentError as exc:
            if exc.code in (321,) or (exc.family == "CME" and exc.code in (21, 22)):
                return None
            raise
        header = response.value("+CMGR")
        if header is None:
            return None
        fields = split_fields(header)
        pdu = next(
            (line for line in response.lines if re.fullmatch(r"[0-9A-Fa-f]+", line)), None
        )
        if pdu is None:
            return StoredMessage(int(index), _int(fields[0]) or 0, "", None, "no PDU line")
        length = _int(fields[-1]) if len(fields) >= 2 else None
        return self._decode(int(index), _int(fields[0]) or 0, pdu.upper(), length)

    def delete(self, index: int) -> None:
        """Delete the message at ``index`` (an already empty slot is not an error)."""
        try:
            self._command(f"AT+CMGD={int(index)}")
        except PermanentError as exc:
            if exc.family == "CMS" and exc.code == 321:
                log.info("message %d was already gone", index)
                return
            raise

    # --- unsolicited codes
    def take_unsolicited(self, names: Optional[List[str]] = None) -> list:
        """Unsolicited result codes received so far (+CMTI, +CDSI, RING ...), all of them or
        those named.  Status reports (+CDS) are kept for ``take_status_reports`` instead."""
        engine = self._require()
        engine.poll()
        self._routed_reports.extend(engine.take_unsolicited(["+CDS"]))
        del self._routed_reports[:-1000]  # bounded like the queue they came from
        wanted = [n for n in names if n.upper() != "+CDS"] if names is not None else None
        return engine.take_unsolicited(wanted)

    def take_status_reports(self) -> List[StatusReport]:
        """Status reports the modem routed as +CDS since the last call.

        (Reports stored on the SIM, announced with +CDSI, come from ``list_stored``.)
        """
        reports: List[StatusReport] = []
        engine = self._require()
        engine.poll()
        events = self._routed_reports + engine.take_unsolicited(["+CDS"])
        self._routed_reports = []
        for event in events:
            if event.pdu is None:
                log.warning("status report without a PDU (text mode?): %s", event.text)
                continue
            try:
                decoded = decode_pdu(event.pdu, _int(event.args))
            except PduError as exc:
                log.warning("undecodable status report %s: %s", event.pdu, exc)
                continue
            if isinstance(decoded, StatusReport):
                reports.append(decoded)
            else:
                log.warning("+CDS carried a %s, not a status report", type(decoded).__name__)
        return reports

    # --- USSD
    def ussd(self, code: str, timeout: float = 30.0) -> str:
        """Run a USSD code ("*100#") and return the network's answer as text."""
        if not _USSD_CODE.match(code):
            raise ValueError(f"not a USSD code: {code!r}")
        engine = self._require()
        try:
            response = self._command(f'AT+CUSD=1,"{code}",15')
        except (TemporaryError, PermanentError) as exc:
            if isinstance(exc, (ModemTimeout, LinkDown)):
                raise
            # some modems (Huawei) want the request GSM 7-bit packed
            log.info("plain USSD request refused (%s); trying it packed", exc.reason)
            packed = ussd_codec.encode_request(code)
            response = self._command(f'AT+CUSD=1,"{packed}",15')
        args = response.value("+CUSD")
        if args is None:
            event = engine.wait_unsolicited(["+CUSD"], timeout)
            if event is None:
                raise ModemTimeout(f"no USSD answer within {timeout:g}s", command="AT+CUSD")
            args = event.args
        try:
            mode, text, dcs = ussd_codec.parse_cusd(args)
        except ValueError as exc:
            raise TemporaryError(f"unreadable USSD answer {args!r}", command="AT+CUSD") from exc
        if mode == 4:
            raise PermanentError("USSD operation not supported", command="AT+CUSD")
        if mode == 5:
            raise ModemTimeout("the network timed the USSD session out", command="AT+CUSD")
        if mode == 1:
            try:  # the network waits for a reply we will not give: end the session
                self._command("AT+CUSD=2", check=False)
            except ModemError as exc:
                log.info("ending the USSD session: %s", exc)
        return ussd_codec.decode_ussd(text, dcs)

    # --- status
    def status(self) -> ModemStatus:
        """Signal, registration, operator and storage, as the modem reports them now."""
        csq = split_fields(self._command("AT+CSQ").value("+CSQ") or "")
        rssi = _int(csq[0]) if csq else None
        ber = _int(csq[1]) if len(csq) > 1 else None
        if rssi is not None and not 0 <= rssi <= 31:
            rssi = None
        if ber == 99:
            ber = None
        stat = self._registration()
        cops = self._optional("AT+COPS?")
        operator = None
        if cops is not None:
            fields = split_fields(cops.value("+COPS") or "")
            operator = fields[2] if len(fields) >= 3 and fields[2] else None
        cpms = self._optional("AT+CPMS?")
        storage = used = total = None
        if cpms is not None:
            fields = split_fields(cpms.value("+CPMS") or "")
            if len(fields) >= 3:
                storage, used, total = fields[0] or None, _int(fields[1]), _int(fields[2])
        return ModemStatus(
            rssi=rssi,
            signal_dbm=None if rssi is None else -113 + 2 * rssi,
            ber=ber,
            registration=REGISTRATION.get(stat, "unknown") if stat is not None else "unknown",
            registered=stat in REGISTERED,
            operator=operator,
            storage=storage,
            storage_used=used,
            storage_total=total,
            smsc=self._state.smsc,
            model=self._state.model,
        )
