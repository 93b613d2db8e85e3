"""What a modem prints when it (re)starts, per maker, pure.

Owns: the unsolicited lines of each boot style, split into what comes at power-on and
what follows once the SIM is unlocked (at once without a PIN, after AT+CPIN=<pin>
otherwise), and whether the SIM state is announced with ``+CPIN: <state>``.

Sources:

- ``sim800``: SIMCom SIM800 Series AT Command Manual V1.09, 19.3 "Summary of Unsolicited
  Result Codes": ``RDY`` (power-on done; only at a fixed baud rate), ``+CFUN: 1``,
  ``+CPIN: <code>``, ``Call Ready`` and ``SMS Ready`` (phonebook and SMS initialised).
  Quectel M95 prints the same.
- ``sim7600``: SIMCom SIM7500/SIM7600 traces in public code: ``RDY``, ``+CPIN: READY``,
  ``SMS DONE``, ``PB DONE`` (the last three also after AT+CPIN=<pin>).
- ``ec25``: Quectel EC2x/EG2x AT Commands Manual (AT+CFUN example: ``+CPIN: SIM PIN``,
  after the PIN ``+CPIN: READY``, ``+QUSIM: 1``, ``+QIND: ... DONE``) and public EG25-G
  traces: ``RDY``, ``+CFUN: 1``, ``+CPIN: READY``, ``+QUSIM: 1``, ``+QIND: SMS DONE``,
  ``+QIND: PB DONE``.
- ``cinterion``: Siemens/Cinterion modules print ``^SYSSTART`` when they are ready for AT
  commands (openmoko gsmd's vendor code, Gemalto/Thales test scripts wait for it).
- ``huawei``: HUAWEI ME909u-523 Application Guide 2.1 "Startup Indication ^SYSSTART"
  (printed once at start, on the UART port only; a second one means the module was
  reset).  Huawei's ``^BOOT:...`` is not a start: it repeats while the modem runs
  (ModemManager's Huawei plugin ignores it), see ``faults.DEFAULT_NOISE``.
- ``silent``: nothing - SIM800 with auto-bauding (AT+IPR=0; the manual: RDY "does not
  appear when auto-bauding function is active"), and modems such as Telit's that print
  no start-up line by default.  Only a changed AT+CNMI?/AT+CPMS? tells of the restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple


@dataclass(frozen=True)
class BootStyle:
    at_power_on: Tuple[str, ...]  # before the SIM is read
    announces_sim: bool  # "+CPIN: READY" / "+CPIN: SIM PIN" after those
    sim_ready: Tuple[str, ...]  # once the SIM is unlocked (after +CPIN: READY)


STYLES: Dict[str, BootStyle] = {
    "sim800": BootStyle(("RDY", "+CFUN: 1"), True, ("Call Ready", "SMS Ready")),
    "sim7600": BootStyle(("RDY",), True, ("SMS DONE", "PB DONE")),
    "ec25": BootStyle(("RDY", "+CFUN: 1"), True,
                      ("+QUSIM: 1", "+QIND: SMS DONE", "+QIND: PB DONE")),
    "cinterion": BootStyle(("^SYSSTART",), False, ()),
    "huawei": BootStyle(("^SYSSTART",), False, ()),
    "silent": BootStyle((), False, ()),
}


def style(name: str) -> BootStyle:
    """The boot style ``name``; ValueError for an unknown one."""
    if name not in STYLES:
        raise ValueError(f"boot_style must be one of {', '.join(STYLES)}, not {name!r}")
    return STYLES[name]


def power_on_lines(name: str, sim_state: str) -> Tuple[str, ...]:
    """What the modem prints when it has started, with the SIM in ``sim_state``."""
    boot = style(name)
    lines = boot.at_power_on
    if boot.announces_sim:
        lines += (f"+CPIN: {sim_state}",)
    if sim_state == "READY":
        lines += boot.sim_ready
    return lines


def unlocked_lines(name: str) -> Tuple[str, ...]:
    """What the modem prints when a PIN (or PUK) unlocked the SIM."""
    boot = style(name)
    return (("+CPIN: READY",) if boot.announces_sim else ()) + boot.sim_ready
