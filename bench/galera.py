#!/usr/bin/env python3
"""Two smss sites on a MariaDB Galera cluster: every acknowledged record sent once, and how fast.

Each site is what one box of a highly available setup runs: ``smss run`` (its
own port), ``check_and_send --loop`` with its own simulated modem (transports
``gsm-a`` and ``gsm-b``), and a ``[database] url`` that lists every node with
its own node first.  Clients hand records to both sites the way
``smss-client -a A,B`` does (half of them list site B first).  A fault may hit
site B's node while records flow: ``kill`` (kill -9, started again after
``--outage`` seconds), ``freeze`` (SIGSTOP, SIGCONT after ``--outage``),
``isolate`` (Galera's gmcast.isolate, rejoined after ``--outage``).
``--one-node`` runs the same two sites on one node of the cluster (the
comparison for "claims do not fight").

    python3 bench/galera.py --records 1000                 # no fault, 3 nodes
    python3 bench/galera.py --records 1000 --one-node      # the same on one node
    python3 bench/galera.py --records 1000 --fault kill    # kill -9 site B's node

It prints one line per run: acknowledged, sent, duplicates, acknowledged but
not sent, still queued, passes that ended on a database problem, and seconds
from the first record to the last one sent.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
for _folder in (os.path.join(HERE, ".."), os.path.join(HERE, "..", "tests")):
    sys.path.insert(0, _folder)

from smss.clients.smss_client import Server, make_record, send_records  # noqa: E402
from support_galera import Cluster  # noqa: E402
from support_sim import running_simulator  # noqa: E402

from smss.store import migrations  # noqa: E402
from smss.store.database import UNAVAILABLE_ERRORS, connect  # noqa: E402

PHONE = "+420608337726"
FAULTS = ("none", "kill", "freeze", "isolate")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Site:
    """One box: a spooler, a --loop dispatcher and a modem, on its own folder."""

    def __init__(self, name: str, folder: str, db_url: str, modem_url: str,
                 settings: Dict[str, Dict[str, str]]) -> None:
        self.name = name
        self.folder = folder
        self.port = free_port()
        self.config = os.path.join(folder, "smss.conf")
        self.cas_log = os.path.join(folder, "cas.log")
        sections: Dict[str, Dict[str, str]] = {
            "server": {"listen": "127.0.0.1", "port": str(self.port),
                       "pidfile": f"{folder}/smss.pid", "logfile": f"{folder}/server.log",
                       "kick_command": f"{sys.executable} -m check_and_send.cli"},
            "database": {"url": db_url, "connect_timeout": "2", "read_timeout": "5",
                         "write_timeout": "5"},
            f"transport:gsm-{name}": {"type": "modem", "device": modem_url,
                                      "command_timeout": "3", "send_timeout": "5",
                                      "register_timeout": "3",
                                      "pin_guard_file": f"{folder}/pins"},
            "dispatcher": {"lockfile": f"{folder}/cas.lock", "state_dir": folder,
                           "logfile": self.cas_log, "retry_delay": "0",
                           "max_attempts": "1000", "poll_interval": "2",
                           "pass_timeout": "60"},
        }
        for section, values in settings.items():
            sections.setdefault(section, {}).update(values)
        with open(self.config, "w", encoding="utf-8") as handle:
            for section, values in sections.items():
                handle.write(f"[{section}]\n")
                handle.writelines(f"{key} = {value}\n" for key, value in values.items())
        self.env = dict(os.environ, SMSS_CONFIG=self.config)
        self.processes: List[subprocess.Popen] = []

    def start(self) -> None:
        for module, args in (("smss.cli", ["run"]), ("check_and_send.cli", ["--loop"])):
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", module, "-c", self.config, *args], env=self.env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.processes[0].poll() is not None:
                    raise RuntimeError(f"site {self.name}: the server did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def database_problems(self) -> int:
        """Passes of the dispatcher that ended because of the database."""
        try:
            with open(self.cas_log, encoding="utf-8", errors="replace") as handle:
                return sum(1 for line in handle if re.search(
                    r"stopped: database unavailable|database: |database unavailable:", line))
        except FileNotFoundError:
            return 0


@dataclass
class Report:
    records: int
    fault: str
    nodes: int
    acked: int = 0
    in_doubt: int = 0  # answered ERR 504 (maybe stored): a client does not send it again
    sent: int = 0
    duplicates: int = 0
    not_sent: int = 0
    queued: int = 0
    database_problems: int = 0
    seconds: float = 0.0
    timed_out: bool = False
    notes: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.acked + self.in_doubt == self.records and not self.not_sent
                and not self.queued
                and not self.timed_out and self.duplicates == 0)

    def line(self) -> str:
        where = "1 node" if self.nodes == 1 else f"{self.nodes} nodes"
        return (f"{where:8} fault {self.fault:8} records {self.records}: acked {self.acked},"
                + (f" in doubt (ERR 504) {self.in_doubt}," if self.in_doubt else "") +
                f" sent {self.sent}, duplicates {self.duplicates}, not sent {self.not_sent},"
                f" still queued {self.queued}, passes ended by the database"
                f" {self.database_problems}, {self.seconds:.1f}s"
                + ("; DEADLINE PASSED" if self.timed_out else ""))


def run(cluster: Cluster, records: int = 1000, fault: str = "none", one_node: bool = False,
        outage: float = 10.0, clients: int = 4, latency: float = 0.005,
        deadline_seconds: float = 600.0, log=print) -> Report:
    """Both sites against ``cluster`` (healthy on entry and on return)."""
    if fault not in FAULTS:
        raise ValueError(f"fault must be one of {', '.join(FAULTS)}")
    report = Report(records, fault, 1 if one_node else len(cluster.nodes))
    rng = random.Random(7)
    name = cluster.create_database().rsplit("/", 1)[1]
    nodes = cluster.nodes
    orders = ([nodes[:1], nodes[:1]] if one_node
              else [nodes, nodes[1:] + nodes[:1]])  # site A: node 1 first; site B: node 2
    setup = connect(cluster.url(name, orders[0]))
    migrations.migrate(setup)
    setup.close()
    folder = tempfile.mkdtemp(prefix="smss-galera-sites-")
    acked: Dict[str, int] = {}
    in_doubt: List[str] = []
    lock = threading.Lock()
    with ExitStack() as stack:
        sims = [stack.enter_context(running_simulator(subprocess=True, pty=False,
                                                      latency=latency)) for _ in range(2)]
        sites = []
        for index, site_name in enumerate(("a", "b")):
            path = os.path.join(folder, site_name)
            os.makedirs(path)
            sites.append(Site(site_name, path, cluster.url(name, orders[index]),
                              sims[index].url, {}))
        stack.callback(lambda: [site.stop() for site in sites])
        for site in sites:
            site.start()
        servers = [Server("127.0.0.1", site.port) for site in sites]
        todo = collections.deque(f"galera {n}" for n in range(records))

        def client(number: int) -> None:
            order = servers if number % 2 == 0 else servers[::-1]
            while True:
                with lock:
                    batch = [todo.popleft() for _ in range(min(10, len(todo)))]
                if not batch:
                    return
                payload = "".join(make_record(PHONE, text) for text in batch).encode()
                delivery = send_records(payload, order, timeout=15, retries=20)
                with lock:
                    for text, reply in zip(batch, delivery.replies):
                        if reply is not None and reply.ok:
                            acked[text] = int(reply.ident)
                        elif reply is not None and reply.code == "504":
                            in_doubt.append(text)  # maybe stored: smss-client stops too
                        else:  # no final answer anywhere: hand it in again later
                            todo.append(text)
                time.sleep(rng.uniform(0, 0.02))

        started = time.monotonic()
        threads = [threading.Thread(target=client, args=(n,), daemon=True)
                   for n in range(clients)]
        for thread in threads:
            thread.start()
        victim = nodes[0] if one_node else nodes[1]
        faulted = fault == "none"
        deadline = started + deadline_seconds
        reader = None
        recovery: Optional[threading.Timer] = None
        while True:
            if time.monotonic() > deadline:
                report.timed_out = True
                log("deadline passed")
                break
            if not faulted and len(acked) >= records * 0.4:
                log(f"fault: {fault} {victim.name} for {outage:g}s")
                {"kill": victim.kill, "freeze": victim.freeze, "isolate": victim.isolate}[fault]()
                stack.callback(cluster.heal)
                recovery = threading.Timer(outage, _recover, (cluster, victim, fault))
                recovery.start()
                faulted = True
            sent = sum(len(sim.control.sent()) for sim in sims)
            recovered = recovery is None or not recovery.is_alive()
            if len(acked) + len(in_doubt) >= records and sent >= len(acked) and recovered:
                if reader is None:
                    reader = _reader(cluster, name, orders[0])
                try:
                    if reader.read().query_one("SELECT COUNT(*) FROM msg")[0] == 0:
                        break
                except UNAVAILABLE_ERRORS:
                    reader.close()
                    reader = None
            time.sleep(0.2)
        report.seconds = time.monotonic() - started
        if recovery is not None:
            recovery.join()
        for thread in threads:
            thread.join(5)
        texts = collections.Counter(part["text"] for sim in sims for part in sim.control.sent())
        report.acked = len(acked)
        report.in_doubt = len(in_doubt)
        report.sent = sum(texts.values())
        report.duplicates = sum(count - 1 for count in texts.values() if count > 1)
        report.not_sent = sum(1 for text in acked if text not in texts)
        reader = reader or _reader(cluster, name, orders[0])
        report.queued = int(reader.read().query_one("SELECT COUNT(*) FROM msg")[0])
        reader.close()
        report.database_problems = sum(site.database_problems() for site in sites)
    return report


def _reader(cluster: Cluster, name: str, order) -> object:
    return connect(cluster.url(name, order), connect_timeout=2, read_timeout=5,
                   write_timeout=5)


def _recover(cluster: Cluster, node, fault: str) -> None:
    if fault == "kill":
        node.start()
    elif fault == "freeze":
        node.thaw()
    elif fault == "isolate":
        node.rejoin()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--fault", choices=FAULTS, default="none")
    parser.add_argument("--one-node", action="store_true",
                        help="both sites on the first node only (the comparison)")
    parser.add_argument("--outage", type=float, default=10.0)
    args = parser.parse_args()
    cluster = Cluster(3).start()
    try:
        report = run(cluster, args.records, args.fault, args.one_node, args.outage)
    finally:
        cluster.cleanup()
    print(report.line())
    print("PASS" if report.ok else "FAIL")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
