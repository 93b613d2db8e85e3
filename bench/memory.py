"""Memory benchmark: resident memory of `smss run` idle and with 1,000 idle connections.

    python3 bench/memory.py [--connections 1000] [--backend sqlite|mariadb]

Starts the real server (default limits, SQLite unless told otherwise), reads
VmRSS from /proc/PID/status after start, after one record (the phone number
and alphabet tables load on first use), with ``--connections`` idle
connections open, and with each of those connections having sent one record
and got its ``OK`` while staying open.  Target (issue 6): under 80 MiB with
1,000 connections; printed as PASS or MISS, never asserted.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import sys
import time
from typing import List

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
        return 0
    finally:
        for sock in sockets:
            sock.close()
        if server is not None:
            server.stop()
        backend.stop()
        harness.remove(folder)


if __name__ == "__main__":
    sys.exit(main())
