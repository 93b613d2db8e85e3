"""``smss check``: is this site ready to run?  Like ``postfix check`` or ``nginx -t``.

Three stages, every problem of each reported at once, one line each:

1. the configuration file: syntax, sections and keys given twice, unknown sections and
   keys, bad values (``smss.config.check_file``), and what each transport makes of its
   settings (a missing URL, a modem device that does not exist, two transports with one
   name or one device);
2. the database: it answers, and its schema is the one this smss needs; no other site
   sharing it (a cluster: ``[dispatcher] site``) runs a transport of this one's name;
3. each transport: reached without sending anything (``Transport.probe``).  A modem is
   left alone while a ``check_and_send`` holds the dispatcher's lock: it has the port.

Lines start with ``ok``, ``problem`` or ``skipped``; the last line counts the problems.
Exit status 0 when there is none, 1 otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

from smss.config import TRANSPORT_PREFIX, Config, check_file
from smss.pidlock import PidLock
from smss.transports.base import SendFailed, Transport

OK, PROBLEM, SKIPPED = "ok", "problem", "skipped"


@dataclass(frozen=True)
class Line:
    verdict: str  # OK, PROBLEM or SKIPPED
    text: str

    def __str__(self) -> str:
        return f"{self.verdict:<8} {self.text}"


def section_of(config: Config, name: str) -> str:
    """The section that configures transport ``name``: [transport:NAME] or [modem] …"""
    if config.has_named_transports():
        return f"{TRANSPORT_PREFIX}{name}"
    return config.transport_type(name)


def dispatcher_pid(config: Config) -> Optional[int]:
    """The check_and_send that holds the dispatcher's lock now (it has the modems open)."""
    return PidLock(config.get("dispatcher", "lockfile"), marker="check_and_send").holder()


def build_transports(config: Config) -> Iterator[Tuple[str, object]]:
    """(name, Transport or the reason it cannot be built) for each configured transport."""
    from smss import transports

    for name in config.transport_names():
        section = section_of(config, name)
        kind = config.transport_type(name)
        try:
            transport = transports.from_config(config, name, receive=False)
        except SendFailed as exc:
            yield name, exc.reason.replace(f"[{kind}] ", f"[{section}] ")
            continue
        device = config.for_transport(name).get("modem", "device") if kind == "modem" else ""
        if device and "://" not in device and not os.path.exists(device):
            yield name, f"[{section}] device: {device} does not exist"
            continue
        yield name, transport


def configuration(path: Optional[str]) -> Tuple[Config, List[Line], Dict[str, Transport]]:
    config, problems = check_file(path)
    lines = [Line(PROBLEM, text) for text in problems]
    built: Dict[str, Transport] = {}
    where = config.path or "defaults (no configuration file)"
    by_name: Dict[str, str] = {}
    by_device: Dict[str, str] = {}
    for name, transport in build_transports(config):
        if not isinstance(transport, Transport):
            lines.append(Line(PROBLEM, f"{where}: {transport}"))
            continue
        section = section_of(config, name)
        other = by_name.setdefault(transport.name, section)
        if other != section:
            lines.append(Line(PROBLEM, f"{where}: [{section}] name: {transport.name!r} is also "
                              f"the name of [{other}]"))
        device = getattr(getattr(transport, "settings", None), "device", "")
        if device:
            other = by_device.setdefault(device, section)
            if other != section:
                lines.append(Line(PROBLEM, f"{where}: [{section}] device: {device} is also "
                                  f"the device of [{other}]"))
        built[name] = transport
    if not lines:
        lines.append(Line(OK, f"configuration {where}"))
    return config, lines, built


def database(config: Config) -> Line:
    from smss.store import migrations
    from smss.store.database import DatabaseError, DatabaseUrl, connect_config

    url = config.get("database", "url")
    try:
        parsed = DatabaseUrl.parse(url)
    except DatabaseError as exc:
        return Line(PROBLEM, f"database: [database] url: {exc}")
    where = f"database {parsed.describe()}"
    if parsed.dialect == "sqlite" and not os.path.exists(parsed.path):
        folder = os.path.dirname(os.path.abspath(parsed.path))
        if not os.path.isdir(folder):
            return Line(PROBLEM, f"{where}: no directory {folder}")
        return Line(OK, f"{where}: not created yet (the server creates it at start)")
    try:
        conn = connect_config(config)
    except DatabaseError as exc:
        return Line(PROBLEM, f"{where}: {exc}")
    try:
        have = migrations.current_version(conn)
        want = migrations.latest_version(conn.dialect)
        if have == 0:
            return Line(OK, f"{where}: empty (the server creates the schema at start)")
        migrations.check(conn)
    except migrations.SchemaError as exc:
        return Line(PROBLEM, f"{where}: {exc}")
    except Exception as exc:  # noqa: BLE001 - whatever the database says is the finding
        return Line(PROBLEM, f"{where}: {exc}")
    finally:
        conn.close()
    return Line(OK, f"{where}: schema version {have} of {want}")


def names_in_use(config: Config, built: Dict[str, Transport]) -> List[Line]:
    """A problem for each transport name that another live site uses (transport names are
    unique among the sites sharing a database: delivery reports, rate limits, pauses and
    the status page go by name)."""
    from smss.store import migrations, transports
    from smss.store.database import DatabaseError, DatabaseUrl, connect_config, utcnow

    names = {found.name: name for name, found in built.items()}
    url = DatabaseUrl.parse(config.get("database", "url"))
    if url.dialect == "sqlite" and not os.path.exists(url.path):
        return []  # not created yet: nobody runs anything on it
    try:
        conn = connect_config(config)
    except DatabaseError:
        return []  # database() said why
    try:
        if migrations.current_version(conn) != migrations.latest_version(conn.dialect):
            return []  # database() said so; the column may not be there yet
        taken = transports.used_elsewhere(conn, sorted(names), config.site())
    finally:
        conn.close()
    lines = []
    for status in taken:
        section = section_of(config, names[status.name])
        age = (utcnow() - status.updated_at).total_seconds() if status.updated_at else 0
        lines.append(Line(PROBLEM, f"[{section}] name: {status.name!r} is the name of a "
                          f"transport that site {status.site} runs (its last pass {age:.0f}s "
                          f"ago); names must be unique among the sites sharing the database "
                          f"(this is site {config.site()})"))
    return lines


def transport(config: Config, name: str, found: Transport, holder: Optional[int]) -> Line:
    kind = config.transport_type(name)
    label = f"transport {name}" + (f" ({found.name})" if found.name != name else "")
    if kind == "modem" and holder is not None:
        return Line(SKIPPED, f"{label}: check_and_send (pid {holder}) has it open; "
                    "`smss status` shows what its last pass saw")
    try:
        probe = found.probe()
    except SendFailed as exc:
        return Line(PROBLEM, f"{label}: {exc.reason}")
    if probe.problems:
        return Line(PROBLEM, f"{label}: {'; '.join(probe.problems)}")
    shown = [value for key, value in probe.facts if key in SUMMARY or key.startswith("port ")]
    return Line(OK, f"{label}: {', '.join(shown) or 'answers'}")


#: the facts of a probe that ``smss check`` shows on its one line
SUMMARY = ("model", "SIM", "registration", "operator", "signal", "SMSC system_id", "AMI",
           "WebCGI", "web server")


def run(path: Optional[str]) -> List[Line]:
    config, lines, built = configuration(path)
    lines.append(database(config))
    if lines[-1].verdict == OK:
        lines.extend(names_in_use(config, built))
    holder = dispatcher_pid(config)
    for name, found in built.items():
        lines.append(transport(config, name, found, holder))
    return lines


def main(path: Optional[str]) -> int:
    lines = run(path)
    for line in lines:
        print(line, flush=True)
    problems = sum(line.verdict == PROBLEM for line in lines)
    print(f"{problems} problem{'s' if problems != 1 else ''}" if problems else "no problems")
    return 1 if problems else 0
