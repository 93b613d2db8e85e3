"""Chaos run: nothing acknowledged is lost.

Clients send records (each try of each record has its own text) while the
server and the dispatcher passes are killed with SIGKILL at random moments and
restarted, and MariaDB is restarted once.  Then the queue is drained and
everything is counted: acknowledged records, stored rows, messages the
simulated network received, duplicates, lost records.

    python3 bench/chaos.py [--records 10000] [--seed 1] [--clients 8]

Exit status 1 when a record that got OK is missing, stored twice, or anything
the network received was never sent by a client.  ``tests/test_chaos.py``
runs a short form in CI.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from support_mariadb import MariaDB  # noqa: E402
from support_sim import running_simulator  # noqa: E402

PHONE = "+420608337726"


@dataclass
class Report:
    records: int
    acked: int = 0
    stored: int = 0
    sent: int = 0
    duplicates: int = 0
    lost: int = 0
    stored_twice: int = 0
    phantom: int = 0
    sent_unacked: int = 0
    not_sent: int = 0
    server_kills: int = 0
    dispatcher_kills: int = 0
    database_restarts: int = 0
    timed_out: bool = False  # the deadline passed before everything was acked and sent
    seconds: float = 0.0
    problems: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.stored_twice or self.phantom or self.not_sent
                    or self.timed_out or self.duplicates > self.dispatcher_kills)

    def line(self) -> str:
        return (f"acked {self.acked} / stored {self.stored} / sent {self.sent} / duplicates "
                f"{self.duplicates} / lost {self.lost}  (records {self.records}, stored twice "
                f"{self.stored_twice}, phantom {self.phantom}, sent but never acked "
                f"{self.sent_unacked}, acked but not sent {self.not_sent}; kills: server "
                f"{self.server_kills}, dispatcher {self.dispatcher_kills}; database restarts "
                f"{self.database_restarts}; {self.seconds:.1f}s"
                f"{'; DEADLINE PASSED' if self.timed_out else ''})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Site:
    def __init__(self, folder: str, db_url: str, modem_url: str, port: int) -> None:
        self.folder = folder
        self.port = port
        self.config = os.path.join(folder, "smss.conf")
        self.server: Optional[subprocess.Popen] = None
        with open(self.config, "w", encoding="utf-8") as handle:
            handle.write(
                f"[server]\nlisten = 127.0.0.1\nport = {port}\npidfile = {folder}/smss.pid\n"
                f"kick_command = {sys.executable} -m check_and_send.cli\n"
                f"logfile = {folder}/server.log\n"
                f"[database]\nurl = {db_url}\nconnect_timeout = 3\n"
                f"[modem]\ndevice = {modem_url}\ncommand_timeout = 3\nsend_timeout = 5\n"
                f"register_timeout = 3\npin_guard_file = {folder}/pins\n"
                f"[dispatcher]\nlockfile = {folder}/cas.lock\nstate_dir = {folder}\n"
                f"logfile = {folder}/cas.log\n"
                "retry_delay = 0\nmax_attempts = 1000\nclaim_lease = 60\npass_timeout = 60\n"
            )
        self.env = dict(os.environ, SMSS_CONFIG=self.config)

    def start_server(self) -> None:
        self.server = subprocess.Popen(
            [sys.executable, "-m", "smss.cli", "-c", self.config, "run"], env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.server.poll() is not None:
                    self.server = subprocess.Popen(  # database down at start: try again
                        [sys.executable, "-m", "smss.cli", "-c", self.config, "run"],
                        env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.1)
        raise RuntimeError("the server did not come back")

    def kill_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.kill()
            self.server.wait()

    def pass_(self) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "check_and_send.cli", "-c", self.config],
                                env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    def dispatcher_pids(self) -> List[int]:
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    cmdline = handle.read()
            except OSError:
                continue
            if b"check_and_send" in cmdline and self.config.encode() in cmdline:
                pids.append(int(entry))
        for entry in os.listdir("/proc"):  # kicked passes find the config in their env
            if entry.isdigit() and int(entry) not in pids:
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as handle:
                        if b"check_and_send.cli" not in handle.read():
                            continue
                    with open(f"/proc/{entry}/environ", "rb") as handle:
                        if f"SMSS_CONFIG={self.config}".encode() in handle.read():
                            pids.append(int(entry))
                except OSError:
                    continue
        return pids


class Clients:
    """Threads that send every record until it is acknowledged."""

    def __init__(self, port: int, records: int, clients: int, rng: random.Random,
                 ingest_seconds: float) -> None:
        self.port = port
        # pause between batches so that sending lasts about ingest_seconds (10.5 = mean batch)
        self.pause = clients * 10.5 * ingest_seconds / max(records, 1)
        self.todo: collections.deque = collections.deque(range(records))
        self.tries: Dict[int, int] = collections.Counter()
        self.acked: Dict[int, tuple] = {}  # record -> (id, text)
        self.attempted: Set[str] = set()
        self.lock = threading.Lock()
        self.stopped = False
        self.rng = rng
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(clients)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def done(self) -> bool:
        with self.lock:
            return not self.todo and all(not t.is_alive() for t in self.threads) or (
                len(self.acked) == len(self.tries) and not self.todo)

    def stop(self) -> None:
        """No new batches: each client ends after the one it is sending."""
        with self.lock:
            self.stopped = True

    def _take(self, count: int) -> List[tuple]:
        with self.lock:
            batch = []
            while not self.stopped and self.todo and len(batch) < count:
                record = self.todo.popleft()
                self.tries[record] += 1
                text = f"chaos {record} try {self.tries[record]}"
                self.attempted.add(text)
                batch.append((record, text))
            return batch

    def _work(self) -> None:
        while True:
            batch = self._take(self.rng.randint(1, 20))
            if not batch:
                return
            replies: List[str] = []
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
                    sock.sendall("".join(f"#{PHONE};{text}\n" for _, text in batch).encode())
                    sock.shutdown(socket.SHUT_WR)
                    data = b""
                    while True:
                        chunk = sock.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    replies = data.decode().splitlines()
            except OSError:
                pass  # the server was killed: what was answered counts, the rest is retried
            with self.lock:
                for (record, text), reply in zip(batch, replies):
                    if reply.startswith("OK "):
                        self.acked[record] = (int(reply.split()[1]), text)
                for record, _ in batch:
                    if record not in self.acked:
                        self.todo.append(record)
            time.sleep(self.rng.uniform(0, 2 * self.pause))


def run(records: int = 10000, seed: int = 1, clients: int = 8, latency: float = 0.005,
        ingest_seconds: float = 0.0, deadline_seconds: float = 0.0, log=print) -> Report:
    """``deadline_seconds``: give up (``timed_out``, and what is left counts as not sent)
    after this long; default: ten times what the records should take, at least 5 minutes."""
    rng = random.Random(seed)
    report = Report(records)
    ingest_seconds = ingest_seconds or max(5.0, records / 500)
    started = time.monotonic()
    deadline = started + (deadline_seconds or max(300.0, 10 * (ingest_seconds + records / 100)))
    folder = tempfile.mkdtemp(prefix="smss-chaos-")
    database = MariaDB(os.path.join(folder, "mariadb"))
    database.start()
    try:
        db_url = database.create_database("chaos")
        with running_simulator(subprocess=True, pty=False, latency=latency) as sim:
            site = Site(folder, db_url, sim.url, free_port())
            site.start_server()
            senders = Clients(site.port, records, clients, rng, ingest_seconds)
            senders.start()
            restart_at = records * 0.4
            cron: List[subprocess.Popen] = []
            last_cron = 0.0
            from smss.store.database import UNAVAILABLE_ERRORS, connect

            def queue_empty() -> bool:
                try:
                    conn = connect(db_url, 3)
                    try:
                        return conn.read().query_one("SELECT COUNT(*) FROM msg")[0] == 0
                    finally:
                        conn.close()
                except UNAVAILABLE_ERRORS:
                    return False

            # chaos while clients send and while the dispatcher works the queue off
            last_note = time.monotonic()
            while not (len(senders.acked) >= records and queue_empty()):
                if time.monotonic() > deadline:
                    log("deadline passed: stopping with what was done")
                    report.timed_out = True
                    break
                time.sleep(rng.uniform(0.2, 1.0))
                if time.monotonic() - last_note > 10:
                    log(f"{len(senders.acked)} acked, {report.server_kills} server and "
                        f"{report.dispatcher_kills} dispatcher kills so far")
                    last_note = time.monotonic()
                if time.monotonic() - last_cron > 1.0:  # the safety-net timer
                    cron = [p for p in cron if p.poll() is None] + [site.pass_()]
                    last_cron = time.monotonic()
                action = rng.random()
                progress = len(senders.acked) / records
                forced = (report.server_kills == 0 and progress >= 0.2) or (
                    report.server_kills == 1 and progress >= 0.6)
                if (forced or action < 0.1) and len(senders.acked) < records:
                    site.kill_server()
                    report.server_kills += 1
                    time.sleep(rng.uniform(0, 0.3))
                    site.start_server()
                elif action < 0.4 or (not report.dispatcher_kills and progress >= 0.3):
                    pids = site.dispatcher_pids()  # (until one was killed: at every chance)
                    if pids:
                        os.kill(rng.choice(pids), signal.SIGKILL)
                        report.dispatcher_kills += 1
                if not report.database_restarts and len(senders.acked) >= restart_at:
                    log("restarting MariaDB")
                    database.stop()
                    time.sleep(1)
                    database.start()
                    report.database_restarts += 1
            if not report.timed_out:
                log("all records acknowledged and the queue is empty")
            senders.stop()
            for process in cron:
                process.wait()
            conn = connect(db_url)
            site.kill_server()
            stored = {int(r[0]): r[1] for r in conn.read().query("SELECT id, text FROM msg")}
            sent_rows = conn.read().query("SELECT id, text, status FROM sms")
            conn.close()
            for row in sent_rows:
                stored[int(row[0])] = row[1]
            texts = collections.Counter(stored.values())
            network = collections.Counter(part["text"] for part in sim.control.sent())
        acked_texts = {text for _, text in senders.acked.values()}
        report.acked = len(senders.acked)
        report.stored = sum(1 for message_id, _ in senders.acked.values() if message_id in stored)
        report.lost = report.acked - report.stored
        report.stored_twice = sum(1 for count in texts.values() if count > 1)
        report.sent = sum(network.values())
        report.duplicates = sum(count - 1 for count in network.values() if count > 1)
        report.phantom = sum(1 for text in network if text not in senders.attempted)
        report.sent_unacked = sum(1 for text in network if text not in acked_texts)
        report.not_sent = sum(1 for text in acked_texts if text not in network)
        report.seconds = time.monotonic() - started
        return report
    finally:
        database.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--ingest-seconds", type=float, default=0.0,
                        help="how long the clients take to send everything (default: records/500)")
    args = parser.parse_args()
    report = run(args.records, args.seed, args.clients, ingest_seconds=args.ingest_seconds)
    print(report.line())
    print("PASS" if report.ok else "FAIL")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
