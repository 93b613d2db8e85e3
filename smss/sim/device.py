"""The simulated modem's shared state and behaviour (no I/O; time and timers are injected).

Owns: the SIM (PIN state), the message memories, AT settings, network state,
the message reference counter, the log of sent messages and AT command counts,
faults, and everything that happens without a command: inbound SMS arriving
(stored + ``+CMTI`` or routed as ``+CMT``), status reports after a send
(``+CDS`` / stored + ``+CDSI``), USSD answers, ``+CREG`` changes.  All sessions
(TCP connections, the pty) talk to one ``Modem`` like a real modem with one
port; every public method takes ``lock``.

``clock`` is a monotonic ``() -> float``; ``scheduler(delay, fn)`` runs ``fn``
later (the runtime uses threads, tests may run them by hand; without one, ``fn``
runs at once); ``wallclock()`` returns an aware datetime for SMS timestamps.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter, deque
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Sequence

from smss.sim import boot, charset, commands_basic, commands_sms, inbound, records
from smss.sim.atparse import Command
from smss.sim.faults import Faults
from smss.sim.results import AtError, cme, cms, plain
from smss.sim.session import Session, StopInput
from smss.sim.settings import AtSettings, SimConfig
from smss.sim.simcard import BLOCKED, READY, SIM_PIN, SIM_PUK, SimCard
from smss.sim.storage import DELIVER, REC_UNREAD, STATUS_REPORT, Storage, StorageFull

log = logging.getLogger(__name__)

Scheduler = Callable[[float, Callable[[], None]], Any]

HANDLERS: Dict[str, Callable] = {}
HANDLERS.update(commands_basic.HANDLERS)
HANDLERS.update(commands_sms.HANDLERS)


def _local_now() -> datetime:
    return datetime.now(timezone.utc).astimezone().replace(microsecond=0)


class Modem:
    def __init__(
        self,
        config: Optional[SimConfig] = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        scheduler: Optional[Scheduler] = None,
        wallclock: Callable[[], datetime] = _local_now,
    ) -> None:
        self.lock = threading.RLock()
        self.config = config or SimConfig()
        self.config.validate()
        self.clock = clock
        self.wallclock = wallclock
        self._scheduler = scheduler
        self.sessions: List[Session] = []
        self._generation = 0
        self._init_state()

    # -- state
    def _init_state(self) -> None:
        config = self.config
        self._generation += 1  # timers of an earlier generation do nothing
        self.rng = random.Random(config.seed)
        self.settings = AtSettings.defaults(config)
        self.sim = SimCard(config.pin, config.puk)
        self.storages = {
            "SM": Storage("SM", config.capacity, config.first_index),
            "ME": Storage("ME", config.me_capacity, config.first_index),
        }
        self.faults = Faults()
        self.smsc = config.smsc
        self.smsc_type = 145 if config.smsc.startswith("+") else 129
        self.next_mr = 0
        self.sent: List[dict] = []
        self.reports: List[dict] = []
        self.counts: Counter = Counter()
        self.unknown: List[str] = []
        self.lines: deque = deque(maxlen=2000)
        self.waiting: List[str] = []  # inbound PDUs the network holds while the SIM is full
        self.registered_from = 0.0
        self._hung = False
        self._booting_until = 0.0  # restarting: deaf until then
        self.swallowed = 0  # input bytes ignored while hung
        self._cmms_until = 0.0
        self._concat_ref = self.rng.randrange(256)

    def reset(self) -> None:
        """Back to the power-on state: storage, sent log, counts, faults and settings."""
        with self.lock:
            self._init_state()

    def configure(self, **changes: Any) -> dict:
        with self.lock:
            self.config.update(**changes)
            if {"capacity", "me_capacity", "first_index"} & set(changes):
                self._resize_storage()
            if "smsc" in changes:
                self.smsc = self.config.smsc
                self.smsc_type = 145 if self.smsc.startswith("+") else 129
            if "pin" in changes and self.sim.state == READY and self.config.pin is not None:
                self.sim.pin = self.config.pin
            if "seed" in changes:
                self.rng = random.Random(self.config.seed)
            return self.config.as_dict()

    def _resize_storage(self) -> None:
        config = self.config
        for name, capacity in (("SM", config.capacity), ("ME", config.me_capacity)):
            old = self.storages[name]
            new = Storage(name, capacity, config.first_index)
            for entry in old:
                try:
                    new.add(entry.pdu, entry.stat, entry.kind)
                except StorageFull:
                    log.warning("resize: %s lost a stored message", name)
            self.storages[name] = new

    # -- sessions
    def open_session(self, sink: Callable[[list], None], label: str) -> Session:
        with self.lock:
            session = Session(self, sink, label)
            self.sessions.append(session)
            return session

    def forget_session(self, session: Session) -> None:
        with self.lock:
            if session in self.sessions:
                self.sessions.remove(session)

    def broadcast(self, items: Sequence) -> None:
        with self.lock:
            for session in list(self.sessions):
                session.push_unsolicited(items)

    def urcs_enabled(self) -> bool:
        return self.settings.cnmi[0] > 0

    # -- bookkeeping used by sessions
    def count(self, label: str) -> None:
        self.counts[label] += 1

    def log_line(self, session_label: str, line: str) -> None:
        self.lines.append({"time": time.time(), "session": session_label, "line": line})

    def execute(self, session: Session, command: Command):
        fault = self.faults.get("cms_error")
        if (fault is not None and command.name in fault["commands"]
                and command.name not in ("+CMGS", "+CMSS")):  # those fail after the body
            fired = self.faults.fire("cms_error", self.rng)
            if fired is not None:
                raise AtError(fired["kind"], fired["code"])
        handler = HANDLERS.get(command.name)
        if handler is None:
            log.info("%s: unknown AT command %s (%s %r)", session.label, command.label,
                     command.kind, command.args)
            self.unknown.append(command.label)
            raise plain()
        return handler(session, command)

    def hung(self) -> bool:
        """Input is swallowed: the hang fault, or the modem is restarting."""
        return self._hung or self.clock() < self._booting_until

    def reboot(self, style: Optional[str] = None, seconds: Optional[float] = None) -> dict:
        """Restart as after a power cut or AT+CFUN=1,1: every AT setting goes back to its
        power-on default (this modem keeps no stored profile such as AT&W saves), the SIM asks for
        its PIN again, the modem is deaf for ``seconds`` and then prints what its
        ``style`` prints (``boot.STYLES``).  Stored messages, the network's pending
        reports and the faults stay; so do the links (a serial line or a TCP bridge)."""
        with self.lock:
            name = self.config.boot_style if style is None else style
            boot.style(name)
            delay = self.config.boot_seconds if seconds is None else float(seconds)
            if delay < 0:
                raise ValueError("seconds must not be negative")
            self.settings = AtSettings.defaults(self.config)
            self.sim.power_cycle()
            self._booting_until = self.clock() + delay
            self.registered_from = self._booting_until
            self._cmms_until = 0.0
            self.count("reboot")
            log.info("restarting (%s, %gs)", name, delay)
            self.schedule(delay, lambda: self.broadcast(
                list(boot.power_on_lines(name, self.sim.state))))
            return {"style": name, "seconds": delay}

    def command_delay(self) -> float:
        low, high = self.config.delays()[0]
        return self.rng.uniform(low, high) if high > 0 else 0.0

    def send_delay(self) -> float:
        low, high = self.config.delays()[1]
        return self.rng.uniform(low, high) if high > 0 else 0.0

    def noise_line(self) -> Optional[str]:
        params = self.faults.fire("noise", self.rng)
        if params is None:
            return None
        return self.rng.choice(params["lines"])

    # -- checks used by handlers
    def require_sim(self, sms: bool) -> None:
        """Raise the error a modem gives when the SIM is locked or busy."""
        state = self.sim.state
        if state == SIM_PIN:
            raise cms(311) if sms else cme(11)
        if state == SIM_PUK:
            raise cms(316) if sms else cme(12)
        if state == BLOCKED:
            raise cms(313) if sms else cme(13)
        if self.sim.busy(self.clock()):
            raise cms(314) if sms else cme(14)

    def registration(self) -> int:
        """+CREG <stat>: 0 not registered, 1 home, 2 searching, 3 denied, 5 roaming."""
        fault = self.faults.get("no_network")
        if fault is not None:
            return fault["stat"]
        if self.sim.state != READY:
            return 0
        if self.clock() < self.registered_from:
            return 2
        return self.config.registration

    def registered(self) -> bool:
        return self.registration() in (1, 5)

    def cmms(self) -> int:
        if self.settings.cmms == 1 and self.clock() >= self._cmms_until:
            self.settings.cmms = 0
        return self.settings.cmms

    def set_cmms(self, value: int) -> None:
        self.settings.cmms = value
        self._cmms_until = self.clock() + 5.0

    def check_drop_on_command(self, session: Session, command: Command) -> None:
        params = self.faults.get("drop")
        if params is None or params["at"] != "command":
            return
        if params["command"] not in (None, command.name, command.label):
            return
        if self.faults.fire("drop", self.rng) is not None:
            log.info("%s: drop fault on %s", session.label, command.label)
            session.drop_link("drop fault on " + command.label)
            raise StopInput()

    def _body_faults(self, session: Session) -> None:
        """Faults that strike when a message body arrives: drop or hang."""
        drop = self.faults.get("drop")
        if drop is not None and drop["at"] == "body" and self.faults.fire("drop", self.rng):
            session.drop_link("drop fault on message body")
            raise StopInput()
        hang = self.faults.get("hang")
        if hang is not None and hang["at"] == "body":
            self._hung = True
            raise StopInput()

    # -- sending
    def submit(self, session: Session, pdu_hex: str, mode: str, command: str) -> int:
        """A message leaves through the network; its message reference.  Raises the
        error the network or modem would give."""
        self._body_faults(session)
        self.require_sim(sms=True)
        if not self.registered():
            raise cms(331)
        session.delay(self.send_delay())
        fault = self.faults.get("cms_error")
        if fault is not None and ("+" + command) in fault["commands"]:
            fired = self.faults.fire("cms_error", self.rng)
            if fired is not None:
                raise AtError(fired["kind"], fired["code"])
        mr = self.next_mr
        self.next_mr = (self.next_mr + 1) % 256
        record = records.sent_record(
            pdu_hex, mr=mr, mode=mode, command=command, session=session.label,
            seq=len(self.sent) + 1, at=time.time(),
        )
        self.sent.append(record)
        session.then(lambda: record.update(answered=time.time()))  # after the network's delay
        log.info("%s: sent mr=%d to %s: %r", session.label, mr, record["number"], record["text"])
        if record["status_report"]:
            self._schedule_reports(mr, record["number"])
        drop = self.faults.get("drop")
        if drop is not None and drop["at"] == "after_send" and self.faults.fire("drop", self.rng):
            session.drop_link("drop fault after send")
            raise StopInput()
        return mr

    def schedule(self, delay: float, fn: Callable[[], None]) -> None:
        generation = self._generation

        def run() -> None:
            with self.lock:
                if generation == self._generation:
                    fn()

        if self._scheduler is None:
            run()
        else:
            self._scheduler(delay, run)

    def _schedule_reports(self, mr: int, number: str) -> None:
        submitted = self.wallclock()
        delay = self.config.status_report_delay
        for step, status in enumerate(self.config.status_report_statuses, 1):
            self.schedule(
                delay * step,
                lambda s=status: self._status_report(mr, number, s, submitted),
            )

    def _status_report(self, mr: int, number: str, status: int, submitted: datetime) -> None:
        pdu = inbound.status_report_pdu(mr, number, status, submitted, self.wallclock(), self.smsc)
        self.reports.append({"reference": mr, "number": number, "status": status, "pdu": pdu,
                             "time": time.time()})
        self.route_status_report(pdu)

    def route_status_report(self, pdu: str) -> Optional[dict]:
        """Hand an SMS-STATUS-REPORT to the TE as AT+CNMI's <ds> says."""
        with self.lock:
            ds = self.settings.cnmi[3]
            if ds == 1 and self.urcs_enabled():
                self.broadcast([inbound.cds_lines(self.settings, pdu, self.config.cds_with_smsc)])
                return {"routed": "+CDS"}
            if ds == 0 and self.config.status_report_ds0 == "discard":
                return {"discarded": True}
            result = self._store_inbound(pdu, STATUS_REPORT)
            if "index" in result and ds == 2 and self.urcs_enabled():
                self.broadcast([f'+CDSI: "{result["memory"]}",{result["index"]}'])
            return result

    # -- receiving
    def receive(self, pdu: str) -> dict:
        """An SMS-DELIVER arrives from the network."""
        with self.lock:
            mode, mt = self.settings.cnmi[0], self.settings.cnmi[1]
            klass = inbound.message_class(pdu)
            if mode > 0 and ((mt == 2 and klass != 2) or (mt == 3 and klass == 3)):
                self.broadcast([inbound.cmt_lines(self.settings, pdu)])
                return {"routed": "+CMT"}
            result = self._store_inbound(pdu, DELIVER)
            if "index" in result and mt in (1, 2, 3) and mode > 0:
                self.broadcast([f'+CMTI: "{result["memory"]}",{result["index"]}'])
            return result

    def _store_inbound(self, pdu: str, kind: str) -> dict:
        memory = self.settings.mems[2]
        storage = self.storages[memory]
        if "sim_full" in self.faults or storage.full or self.waiting:
            self.waiting.append(pdu)
            log.info("memory %s full: message waits in the network", memory)
            return {"waiting": True}
        index = storage.add(pdu, REC_UNREAD, kind)
        return {"memory": memory, "index": index}

    def release_waiting(self) -> None:
        """Messages the network held while the memory was full arrive once there is room."""
        with self.lock:
            pending, self.waiting = self.waiting, []
            for pdu in pending:
                if inbound.is_status_report(pdu):
                    self.route_status_report(pdu)
                else:
                    self.receive(pdu)

    def inject(self, sender: str, text: str, **options: Any) -> dict:
        """Inbound SMS from ``sender`` (split into parts when long); see ``inbound.build``."""
        with self.lock:
            if not options.get("smsc"):
                options["smsc"] = self.smsc
            if options.get("concat_reference") is None:
                self._concat_ref = (self._concat_ref + 1) % 256
                options["concat_reference"] = self._concat_ref
            pdus = inbound.build(sender, text, timestamp=options.pop("timestamp", None)
                                 or self.wallclock(), **options)
            results = []
            for part, pdu in pdus:
                result = self.receive(pdu)
                result["part"] = part
                result["pdu"] = pdu
                results.append(result)
            return {"parts": results}

    def inject_pdu(self, pdu: str) -> dict:
        with self.lock:
            pdu = pdu.strip().upper()
            if inbound.is_status_report(pdu):
                result = self.route_status_report(pdu) or {}
            else:
                result = self.receive(pdu)
            result["pdu"] = pdu
            return result

    # -- faults
    def set_fault(self, name: str, **params: Any) -> dict:
        with self.lock:
            was_registered = self.registration()
            result = self.faults.set(name, **params)
            if name == "pin_required":
                self.sim.require_pin(result["pin"])
            elif name == "hang" and result["at"] == "now":
                self._hung = True
            elif name == "noise" and result["interval"]:
                self._schedule_noise(result["interval"])
            elif name == "drop" and result["at"] == "now":
                self.faults.clear("drop")
                for session in list(self.sessions):
                    session.drop_link("drop fault")
            self._announce_registration(was_registered)
            return result

    def _schedule_noise(self, interval: float) -> None:
        """Unprompted noise lines every ``interval`` seconds while that fault stays set."""
        fault = self.faults.get("noise")

        def tick() -> None:
            if self.faults.get("noise") is not fault:
                return  # cleared or replaced
            self.broadcast([self.rng.choice(fault["lines"])])
            self.schedule(interval, tick)

        self.schedule(interval, tick)

    def clear_fault(self, name: Optional[str] = None) -> None:
        with self.lock:
            was_registered = self.registration()
            self.faults.clear(name)
            if name in (None, "hang"):
                self._hung = False
            self._announce_registration(was_registered)
            if name in (None, "sim_full"):
                self.release_waiting()

    def _announce_registration(self, before: int) -> None:
        now = self.registration()
        if now != before and self.settings.creg > 0:
            self.broadcast([commands_basic.creg_urc(self)])

    def pin_accepted(self) -> None:
        """After a correct PIN: busy SIM for a moment, then registration; the lines the
        boot style prints once the SIM is unlocked."""
        self.registered_from = self.clock() + self.config.sim_busy_seconds
        self.faults.clear("pin_required")
        unlocked = boot.unlocked_lines(self.config.boot_style)
        if unlocked:
            self.schedule(0.0, lambda: self.broadcast(list(unlocked)))
        if self.settings.creg > 0:
            self.schedule(self.config.sim_busy_seconds,
                          lambda: self.broadcast([commands_basic.creg_urc(self)]))

    # -- views for the control channel
    def snapshot(self) -> dict:
        with self.lock:
            settings = self.settings
            return {
                "sim": self.sim.snapshot(),
                "registration": self.registration(),
                "settings": {
                    "echo": settings.echo, "cmgf": settings.cmgf, "cmee": settings.cmee,
                    "cscs": settings.cscs, "cnmi": list(settings.cnmi), "creg": settings.creg,
                    "mems": list(settings.mems), "csmp": list(settings.csmp),
                },
                "storage": {
                    name: {"used": s.used, "total": s.capacity} for name, s in self.storages.items()
                },
                "smsc": self.smsc,
                "next_reference": self.next_mr,
                "faults": self.faults.snapshot(),
                "hung": self._hung,
                "booting": self.clock() < self._booting_until,
                "swallowed": self.swallowed,
                "waiting": len(self.waiting),
                "sessions": [s.label for s in self.sessions],
                "config": self.config.as_dict(),
            }

    def storage_dump(self, memory: str = "SM") -> List[dict]:
        with self.lock:
            if memory not in self.storages:
                raise ValueError(f"unknown memory {memory!r}")
            return [records.stored_record(entry) for entry in self.storages[memory]]

    def text_for_te(self, text: str) -> str:
        return charset.encode(text, self.settings.cscs)
