"""Configuration of the simulator and the modem settings commands change, pure.

Owns: ``SimConfig`` - what the person running the simulator chooses (identity,
SIM, capacity, timing, USSD answers, status report outcome); it may be changed
at run time through the control channel - and ``AtSettings`` - what AT
commands change (echo, CMGF, CMEE, CNMI, ...) and ATZ / AT&F restore.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

from smss.sim import boot

REALISTIC = "realistic"


@dataclass
class SimConfig:
    # SIM and identity
    pin: Optional[str] = None  # None: the SIM does not ask for a PIN
    puk: str = "12345678"
    manufacturer: str = "SMSS"
    model: str = "ModemSim"
    revision: str = "smss-modem-sim 1.0"
    imei: str = "356938035643809"
    imsi: str = "230011234567890"
    iccid: str = "8942001234567890123"
    own_number: str = "+420600000001"
    # network
    smsc: str = "+420603052000"
    operator: str = "T-Mobile CZ"
    operator_numeric: str = "23001"
    rssi: int = 20  # +CSQ
    registration: int = 1  # +CREG stat when registered: 1 home, 5 roaming
    lac: str = "1F4A"
    cell_id: str = "00C3B2"
    # storage
    capacity: int = 30  # slots of "SM"
    me_capacity: int = 100  # slots of "ME"
    first_index: int = 1  # 0 for Huawei-like numbering
    # defaults that ATZ restores
    charset: str = "IRA"  # +CSCS after reset: IRA, GSM, UCS2 or 8859-1
    echo: bool = True
    # timing (seconds)
    latency: Union[float, str] = 0.0  # 0, seconds per AT+CMGS, or "realistic"
    sim_busy_seconds: float = 0.5  # +CME ERROR: 14 after a correct PIN
    status_report_delay: float = 0.05
    status_report_statuses: List[int] = field(default_factory=lambda: [0])  # TP-ST, in order
    status_report_ds0: str = "store"  # CNMI ds=0: "store" silently or "discard"
    cds_with_smsc: bool = True  # +CDS <pdu> starts with the SMSC field (27.005)
    ussd_delay: float = 0.05
    ussd_encoding: str = "gsm7"  # "gsm7" packed hex (dcs 15), "ucs2" hex (dcs 72), "text"
    ussd_responses: Dict[str, str] = field(
        default_factory=lambda: {"*100#": "Vas kredit je 123,45 Kc. Platnost do 31.12.2030."}
    )
    ussd_unknown: str = "Neznamy kod."
    # restart (AT+CFUN=1,1 or the control channel's reboot): what it prints (boot.STYLES)
    # and how long the modem is deaf before that
    boot_style: str = "silent"
    boot_seconds: float = 0.0
    seed: Optional[int] = None  # random faults and realistic latency

    def delays(self) -> Tuple[Tuple[float, float], Tuple[float, float]]:
        """((min, max) per command, (min, max) per message sent) in seconds."""
        if self.latency == REALISTIC:
            return (0.02, 0.15), (2.0, 4.0)
        seconds = float(self.latency)
        if seconds < 0:
            raise ValueError("latency must not be negative")
        return (0.0, 0.0), (seconds, seconds)

    def update(self, **changes: Any) -> None:
        """Change fields by name; ValueError for an unknown name or bad value."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown setting(s) {sorted(unknown)}")
        for name, value in changes.items():
            setattr(self, name, value)
        self.validate()

    def validate(self) -> None:
        if self.latency != REALISTIC:
            self.latency = float(self.latency)
        self.delays()
        if self.charset not in CHARSETS:
            raise ValueError(f"charset must be one of {CHARSETS}")
        if self.ussd_encoding not in ("gsm7", "ucs2", "text"):
            raise ValueError("ussd_encoding must be gsm7, ucs2 or text")
        if self.status_report_ds0 not in ("store", "discard"):
            raise ValueError("status_report_ds0 must be store or discard")
        boot.style(self.boot_style)
        if float(self.boot_seconds) < 0:
            raise ValueError("boot_seconds must not be negative")
        self.boot_seconds = float(self.boot_seconds)
        if self.first_index not in (0, 1):
            raise ValueError("first_index must be 0 or 1")
        if self.capacity < 1 or self.me_capacity < 1:
            raise ValueError("capacities must be at least 1")
        self.status_report_statuses = [int(s) for s in self.status_report_statuses]

    def as_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


CHARSETS = ("GSM", "IRA", "UCS2", "8859-1")


@dataclass
class AtSettings:
    """State that AT commands set; ``AtSettings.defaults(config)`` is the power-on state."""

    echo: bool = True
    verbose: bool = True  # ATV1
    quiet: bool = False  # ATQ1
    cmee: int = 0
    cmgf: int = 0  # 0 PDU, 1 text
    cscs: str = "IRA"
    csdh: int = 0
    cnmi: Tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)  # mode, mt, bm, ds, bfr
    creg: int = 0
    cmms: int = 0
    cusd: int = 0
    cops_format: int = 0
    csmp: Tuple[int, int, int, int] = (17, 167, 0, 0)  # fo, vp, pid, dcs
    mems: Tuple[str, str, str] = ("SM", "SM", "SM")
    sregs: Dict[int, int] = field(default_factory=dict)

    @classmethod
    def defaults(cls, config: SimConfig) -> "AtSettings":
        return cls(echo=config.echo, cscs=config.charset)
