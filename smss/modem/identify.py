"""What a modem says about itself, asked without changing anything that matters.

``identify(engine)`` asks what ``gammu identify`` and ``gammu networkinfo`` show
(manufacturer, model, revision, IMEI; SIM state, IMSI; registration, operator,
signal; the SMS centre and the message storage) and returns an ``Identity``.  It
enters no PIN, selects no storage and sends nothing: besides the questions it only
turns echo off and numeric error codes on, as every session does.  A question the
modem does not answer leaves its field empty (``None``).

The commands are those of 3GPP TS 27.007 (+CGMI, +CGMM, +CGMR, +CGSN, +CPIN, +CIMI,
+CREG, +COPS, +CSQ) and 27.005 (+CSCA, +CPMS), the ones gammu's AT driver asks in
``identify`` and ``networkinfo``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from .engine import AtEngine
from .errors import LinkDown, ModemError, ModemTimeout, SimError
from .session import REGISTERED, REGISTRATION, split_fields

#: +COPS <format>: 0 long alphanumeric, 1 short alphanumeric, 2 numeric (MCC MNC)
NUMERIC_FORMAT = "2"


@dataclass
class Identity:
    manufacturer: Optional[str] = None
    model: Optional[str] = None
    revision: Optional[str] = None
    imei: Optional[str] = None
    sim: Optional[str] = None  # +CPIN: READY, SIM PIN, SIM PUK ...; or the error
    imsi: Optional[str] = None
    registration: Optional[str] = None  # "home", "roaming", "searching" ...
    registered: bool = False
    operator: Optional[str] = None
    operator_code: Optional[str] = None  # MCC MNC when the modem gives it numerically
    rssi: Optional[int] = None  # 0..31; None: unknown (99)
    ber: Optional[int] = None
    smsc: Optional[str] = None
    storage: List[Tuple[str, int, int]] = field(default_factory=list)  # (memory, used, total)

    @property
    def signal_dbm(self) -> Optional[int]:
        return None if self.rssi is None else -113 + 2 * self.rssi


def _int(text: str) -> Optional[int]:
    try:
        return int(text.strip())
    except ValueError:
        return None


class _Asker:
    def __init__(self, engine: AtEngine, timeout: float) -> None:
        self.engine = engine
        self.timeout = timeout

    def lines(self, command: str) -> Optional[List[str]]:
        """The information lines, or None when the modem refuses the command."""
        try:
            return self.engine.command(command, self.timeout).lines
        except (ModemTimeout, LinkDown):
            raise
        except SimError:
            return None
        except ModemError:
            return None

    def value(self, command: str, name: str) -> Optional[str]:
        for line in self.lines(command) or ():
            if line.upper().startswith(name.upper() + ":"):
                return line[len(name) + 1:].strip()
        return None

    def text(self, command: str) -> Optional[str]:
        """A plain answer such as +CGMI's "SIMCOM_Ltd" (some modems prefix "+CGMI: ")."""
        name = command[2:].split("=")[0].split("?")[0]
        found = []
        for line in self.lines(command) or ():
            if line.upper().startswith(name.upper() + ":"):
                line = line[len(name) + 1:]
            found.append(line.strip().strip('"'))
        return " ".join(part for part in found if part) or None


def identify(engine: AtEngine, timeout: float = 10.0) -> Identity:
    """Ask the modem behind ``engine``; raises ModemTimeout / LinkDown when it does not
    answer at all."""
    engine.resync(timeout)  # AT until OK (also leaves a > prompt a crashed process left)
    ask = _Asker(engine, timeout)
    ask.lines("ATE0")
    ask.lines("AT+CMEE=1")
    found = Identity(manufacturer=ask.text("AT+CGMI"), model=ask.text("AT+CGMM"),
                     revision=ask.text("AT+CGMR"), imei=ask.text("AT+CGSN"))
    try:
        cpin = engine.command("AT+CPIN?", timeout).value("+CPIN")
        found.sim = (cpin or "READY").strip().strip('"').upper()
    except (ModemTimeout, LinkDown):
        raise
    except ModemError as exc:  # no SIM, SIM failure ...
        found.sim = exc.reason
    if found.sim == "READY":
        found.imsi = ask.text("AT+CIMI")
    creg = split_fields(ask.value("AT+CREG?", "+CREG") or "")
    stat = _int(creg[1]) if len(creg) >= 2 else (_int(creg[0]) if creg and creg[0] else None)
    if stat is not None:
        found.registration = REGISTRATION.get(stat, str(stat))
        found.registered = stat in REGISTERED
    cops = split_fields(ask.value("AT+COPS?", "+COPS") or "")
    if len(cops) >= 3 and cops[2]:
        if cops[1] == NUMERIC_FORMAT:
            found.operator_code = cops[2]
        else:
            found.operator = cops[2]
    csq = split_fields(ask.value("AT+CSQ", "+CSQ") or "")
    if csq and csq[0]:
        rssi = _int(csq[0])
        found.rssi = rssi if rssi is not None and 0 <= rssi <= 31 else None
        ber = _int(csq[1]) if len(csq) > 1 else None
        found.ber = ber if ber is not None and 0 <= ber <= 7 else None
    csca = split_fields(ask.value("AT+CSCA?", "+CSCA") or "")
    found.smsc = csca[0] or None if csca else None
    cpms = split_fields(ask.value("AT+CPMS?", "+CPMS") or "")
    for start in range(0, len(cpms) - 2, 3):
        used, total = _int(cpms[start + 1]), _int(cpms[start + 2])
        if cpms[start] and used is not None and total is not None:
            found.storage.append((cpms[start], used, total))
    return found
