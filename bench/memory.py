"""Memory benchmark: resident memory of `smss run` idle, with 1,000 idle connections, and
with 1,000 clients writing while the database is stalled.

    python3 bench/memory.py [--connections 1000] [--backend sqlite|mariadb]
                            [--stall-records 1000] [--stall-record-bytes 80]
                            [--stall-seconds 30]

Starts the real server (default limits, SQLite unless told otherwise), reads
VmRSS from /proc/PID/status after start, after one record (the phone number
and alphabet tables load on first use), with ``--connections`` idle
connections open, and with each of those connections having sent one record
and got its ``OK`` while staying open.  Target (issue 6): under 80 MiB with
1,000 connections; printed as PASS or MISS, never asserted.

With ``--backend mariadb`` a second part freezes the database (SIGSTOP) for
``--stall-seconds`` while ``--connections`` new clients each try to send
``--stall-records`` records of ``--stall-record-bytes`` bytes and read their
replies, then thaws it (SIGCONT) and lets them finish.  It prints the server's
VmRSS at each quarter of the stall with what the clients had got through by
then (into the server or the kernel's socket buffers), the replies (`OK`,
`ERR 503` for records whose commit attempt timed out during the stall) and
whether every acknowledged record is in the table.
"""

from __future__ import annotations

import argparse
import os
import resource
import selectors
import signal
import socket
import sys
import time
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

TARGET_MIB = 80.0


def raise_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise SystemExit(f"need {needed} file descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_for(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    return harness.status_field(pid, field) / 1024


def read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(256)
        if not chunk:
            break
        data += chunk
    return data


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="smss memory benchmark")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--backend", choices=["sqlite", "mariadb"], default="sqlite")
    parser.add_argument("--stall-records", type=int, default=1000,
                        help="records each client sends while the database is frozen")
    parser.add_argument("--stall-record-bytes", type=int, default=80,
                        help="length of each of those records")
    parser.add_argument("--stall-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    raise_file_limit(args.connections + 256)
    info = harness.machine()
    print(f"smss memory benchmark: {info['cpus']} x {info['cpu_model']}, Python {info['python']}")
    folder = harness.temp_folder("smss-memory-")
    backend = harness.Backend(args.backend, folder)
    server = None
    sockets: List[socket.socket] = []
    try:
        backend.start()
        url = backend.new_database("memory")
        server = harness.smss_server(os.path.join(folder, "smss"), url).start()
        pid = server.pid
        time.sleep(0.5)
        figures = [("idle, after start", rss_mib(pid))]
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"#420608337726;warm-up\n")
            sock.shutdown(socket.SHUT_WR)
            assert read_line(sock).startswith(b"OK"), "the warm-up record was not accepted"
        time.sleep(0.2)
        figures.append(("idle, after one record", rss_mib(pid)))
        base_fds = open_fds(pid)
        for _ in range(args.connections):
            sockets.append(socket.create_connection(("127.0.0.1", server.port), timeout=30))
        if not wait_for(lambda: open_fds(pid) >= base_fds + args.connections):
            print(f"the server holds only {open_fds(pid) - base_fds} of {args.connections}"
                  " connections; see its log:\n" + server.log()[-2000:])
            return 1
        time.sleep(0.5)
        idle_with_connections = rss_mib(pid)
        figures.append((f"{args.connections} idle connections open", idle_with_connections))
        for number, sock in enumerate(sockets):
            sock.sendall(f"#420608337726;memory bench {number}\n".encode())
        acked = sum(1 for sock in sockets if read_line(sock).startswith(b"OK"))
        time.sleep(0.5)
        figures.append((f"{args.connections} open, each sent a record ({acked} OK)",
                        rss_mib(pid)))
        for sock in sockets:
            sock.close()
        sockets.clear()
        wait_for(lambda: open_fds(pid) <= base_fds)
        time.sleep(0.5)
        figures.append(("after they closed", rss_mib(pid)))
        figures.append(("peak (VmHWM)", rss_mib(pid, "VmHWM")))
        for label, value in figures:
            print(f"  {label:45} {value:7.1f} MiB")
        per = (idle_with_connections - figures[1][1]) * 1024 / args.connections
        print(f"  {'per idle connection':45} {per:7.1f} KiB")
        passed = idle_with_connections < TARGET_MIB
        print(f"{'PASS' if passed else 'MISS'}  RSS with {args.connections} idle connections ="
              f" {idle_with_connections:.1f} MiB (target < {TARGET_MIB:.0f} MiB)")
        if backend.pid is not None:
            return stalled(server, backend, url, args.connections, args.stall_records,
                           args.stall_record_bytes, args.stall_seconds)
        return 0
    finally:
        for sock in sockets:
            sock.close()
        if server is not None:
            server.stop()
        backend.stop()
        harness.remove(folder)


class Writer:
    """One client of the stalled part: sends its records as fast as the server reads them
    (non-blocking), half-closes, and reads every reply."""

    def __init__(self, number: int, records: int, record_bytes: int, port: int) -> None:
        lines = []
        for i in range(records):
            head = f"#420608337726;client {number:04} record {i:05}: "
            lines.append(head + "x" * max(0, record_bytes - len(head) - 1) + "\n")
        self.payload = "".join(lines).encode()
        self.sent = 0
        self.replies = b""
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setblocking(False)

    def send_some(self) -> None:
        try:
            self.sent += self.sock.send(self.payload[self.sent:self.sent + 65536])
        except BlockingIOError:
            return
        if self.sent == len(self.payload):
            self.sock.shutdown(socket.SHUT_WR)

    def read_some(self) -> bool:
        """False at the end of the replies."""
        try:
            chunk = self.sock.recv(65536)
        except BlockingIOError:
            return True
        self.replies += chunk
        return bool(chunk)


def stalled(server, backend, url: str, clients: int, records: int, record_bytes: int,
            seconds: float) -> int:
    pid = server.pid
    before = rss_mib(pid)
    selector = selectors.DefaultSelector()
    writers: Dict[socket.socket, Writer] = {}
    for number in range(clients):
        writer = Writer(number, records, record_bytes, server.port)
        writers[writer.sock] = writer
        selector.register(writer.sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    everyone = list(writers.values())
    finished: List[Writer] = []
    samples = []  # (seconds into the stall, VmRSS MiB, MiB the clients got through)
    peak = before
    os.kill(backend.pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        marks = [seconds * quarter / 4 for quarter in (1, 2, 3, 4)]
        while marks:
            pump(selector, writers, finished, 0.1)
            elapsed = time.monotonic() - start
            peak = max(peak, rss_mib(pid))
            if elapsed >= marks[0]:
                marks.pop(0)
                samples.append((elapsed, rss_mib(pid),
                                sum(w.sent for w in everyone) / 1048576))
        answered = sum(w.replies.count(b"\n") for w in everyone)
    finally:
        os.kill(backend.pid, signal.SIGCONT)
    while writers:
        pump(selector, writers, finished, 1.0)
    replies = [line for w in everyone for line in w.replies.splitlines()]
    every = all(len(w.replies.splitlines()) == records for w in everyone)
    ok_ids = {int(line.split()[1]) for line in replies if line.startswith(b"OK ")}
    counts: Dict[str, int] = {}
    for line in replies:
        key = " ".join(line.decode().split()[:2]) if line.startswith(b"ERR") else "OK"
        counts[key] = counts.get(key, 0) + 1
    from smss.store.database import connect

    conn = connect(url)
    stored = {int(row[0]) for row in conn.read().query(
        "SELECT id FROM msg WHERE text LIKE ?", ("client %",))}
    conn.close()
    offered = sum(len(w.payload) for w in everyone)
    print(f"stalled database: {clients} clients each sending {records} records of"
          f" {record_bytes} bytes ({offered / 1048576:.1f} MiB in all),"
          f" database frozen for {seconds:g} s")
    print(f"  {'VmRSS before the stall':45} {before:7.1f} MiB")
    for elapsed, rss, through in samples:
        label = f"VmRSS {elapsed:.0f} s into the stall"
        print(f"  {label:45} {rss:7.1f} MiB   (clients got {through:.1f} MiB through)")
    print(f"  {'VmRSS peak during the stall':45} {peak:7.1f} MiB")
    print(f"  {'VmRSS after the thaw, all answered':45} {rss_mib(pid):7.1f} MiB")
    print(f"  replies during the stall: {answered}; in all: "
          + ", ".join(f"{key} {value}" for key, value in sorted(counts.items())))
    lost = ok_ids - stored
    print(f"every client got a reply for every record: {'yes' if every else 'NO'}")
    print(f"every acknowledged record stored: {'yes' if not lost else f'NO, {len(lost)} missing'}"
          f" ({len(ok_ids)} OK, {len(stored)} rows)")
    return 0 if not lost and every else 1


def pump(selector: selectors.BaseSelector, writers: Dict[socket.socket, Writer],
         finished: List[Writer], timeout: float) -> None:
    """Move data for ``timeout`` seconds at most; finished clients go to ``finished``."""
    for key, events in selector.select(timeout):
        writer = writers[key.fileobj]
        if events & selectors.EVENT_WRITE:
            writer.send_some()
            if writer.sent == len(writer.payload):
                selector.modify(writer.sock, selectors.EVENT_READ)
        if events & selectors.EVENT_READ and not writer.read_some():
            selector.unregister(writer.sock)
            del writers[writer.sock]
            writer.sock.close()
            finished.append(writer)


if __name__ == "__main__":
    sys.exit(main())
