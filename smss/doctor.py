"""``smss doctor [--via NAME]``: open a device and print what it says about itself.

For a modem, what ``gammu identify`` and ``gammu networkinfo`` show: manufacturer,
model, revision, IMEI, SIM and PIN state, IMSI, registration, operator, signal, SMS
centre and storage use.  For an SMPP link, the SMSC's answer to a bind; for a GoIP,
its lines; for a Yeastar TG, each port's module, network, signal and SIM.  Nothing is
sent and nothing taken off a device (``Transport.probe``).

A modem that a ``check_and_send`` has open (it holds the dispatcher's lock) is not
touched: doctor prints what that dispatcher's last pass recorded instead.

Exit status: 0 when every device asked answered, 1 otherwise.
"""

from __future__ import annotations

from typing import List, Optional

from smss.check import dispatcher_pid
from smss.config import Config
from smss.transports.base import SendFailed


def _recorded(config: Config, name: str) -> List[str]:
    """What the running dispatcher last recorded for the transport ``name``."""
    from smss import status

    try:
        lines = status.report(config)
    except Exception as exc:  # noqa: BLE001 - the database may be what is wrong
        return [f"  (the database cannot tell: {exc})"]
    mine = [index for index, line in enumerate(lines) if line.startswith(f"transport {name}:")]
    found = []
    for index in mine:
        found.append("  " + lines[index])
        if index + 1 < len(lines) and lines[index + 1].startswith("  last error"):
            found.append("  " + lines[index + 1])
    return found or ["  (no pass has recorded it yet)"]


def main(config: Config, via: Optional[str]) -> int:
    from smss import transports

    names = [via] if via else config.transport_names()
    holder = dispatcher_pid(config)
    failed = 0
    for number, name in enumerate(names):
        if number:
            print()
        try:
            found = transports.from_config(config, name, receive=False)
        except SendFailed as exc:
            print(f"transport {name}: {exc.reason}")
            failed += 1
            continue
        kind = type(found).__name__.replace("Transport", "").lower()
        print(f"transport {found.name} ({kind})")
        if kind == "modem" and holder is not None:
            print(f"  check_and_send (pid {holder}) has the modem open and is not disturbed;"
                  " its last pass recorded:")
            for line in _recorded(config, found.name):
                print(line)
            failed += 1
            continue
        try:
            probe = found.probe()
        except SendFailed as exc:
            print(f"  cannot ask it: {exc.reason}")
            failed += 1
            continue
        width = max((len(label) for label, _ in probe.facts), default=0)
        for label, value in probe.facts:
            print(f"  {label + ':':<{width + 1}} {value}")
        for problem in probe.problems:
            print(f"  problem: {problem}")
    return 1 if failed else 0
