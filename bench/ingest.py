"""Ingest benchmark: records acknowledged per second, and per-connection latency.

    python3 bench/ingest.py [--quick] [--backends sqlite,mariadb] [--json FILE]

The server under test is the real ``smss run`` in a subprocess (default limits,
log level INFO, no dispatcher kick) on 127.0.0.1.  Clients come from
``bench/loadgen.py`` in another process: 1, 16, 64 and 256 concurrent
connections, each connection carrying 1 record (a scheduled task) or 100
records (a batch); a connection's latency runs from connect to its last reply.
Two references run in the same invocation, against the same database server
with the same schema and durability settings:

- naive: ``bench/naive_spooler.py``, a thread and a connection per client, one
  INSERT + commit per record (seed 002), under the same load generator;
- multi-row: the database's own rate for the same rows inserted with
  ``executemany`` (a multi-row INSERT on MariaDB) in committed transactions of
  1000 rows, measured before and after the runs.

The figures that matter are the ratios smss/naive and smss/multi-row, because
they hold on a noisy machine.  Targets are printed with PASS or MISS, never
asserted.  MariaDB is a private server started for the run
(``tests/support_mariadb.py``), or ``--mysql-url`` of one that exists.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

from smss.store.database import connect, utcnow  # noqa: E402

LOADGEN = os.path.join(harness.BENCH, "loadgen.py")
SCENARIOS = {1: "1 rec/conn", 100: "100 rec/conn"}

# The targets of issue 6.
TARGET_NAIVE_RATIO = 10.0  # 64 batch clients into MariaDB: smss >= 10x naive
TARGET_MULTIROW_RATIO = 0.5  # ... and >= half the database's own multi-row insert rate
TARGET_P99_MS = 50.0  # 64 single-record clients: p99 under 50 ms


@dataclass
class Cell:
    backend: str
    server: str  # "smss" or "naive"
    records: int  # per connection
    clients: int
    connections: int = 0
    ok: int = 0
    failed: int = 0
    problems: Dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    rate: float = 0.0  # records acknowledged per second
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    rows: int = 0  # rows in msg afterwards (warm-up included)
    cpu_server: float = 0.0
    cpu_db: float = 0.0
    cpu_clients: float = 0.0
    error: str = ""


def percentile(values: List[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def multirow_rate(backend: harness.Backend, rows: int, chunk: int = 1000) -> float:
    """Rows per second the database commits when handed the rows in bulk."""
    url = backend.new_database("multirow")
    conn = connect(url)
    now = utcnow()
    data = [(f"+42060{i % 10_000_000:07d}", f"bench record {i % 100} from client {i % 256}: "
             f"backup of srv{i % 256} ok", 1, "127.0.0.1", None, now, now) for i in range(rows)]
    sql = ("INSERT INTO msg (phone, text, parts, client, route, created_at, next_attempt_at)"
           " VALUES (?, ?, ?, ?, ?, ?, ?)")
    try:
        start = time.perf_counter()
        for first in range(0, rows, chunk):
            with conn.transaction():
                conn.executemany(sql, data[first:first + chunk]).close()
        elapsed = time.perf_counter() - start
    finally:
        conn.close()
        backend.drop(url)
    return rows / elapsed


def count_rows(url: str) -> int:
    conn = connect(url)
    try:
        return int(conn.read().query_one("SELECT COUNT(*) FROM msg")[0])
    finally:
        conn.close()


def run_cell(cell: Cell, server: harness.Spooler, backend: harness.Backend, url: str,
             seconds: float, procs: int) -> Cell:
    backend.empty(url)
    pids = {"server": server.pid, "db": backend.pid}
    before = {k: harness.cpu_seconds(p) for k, p in pids.items() if p}
    argv = [sys.executable, LOADGEN, "--port", str(server.port), "--clients", str(cell.clients),
            "--records", str(cell.records), "--seconds", str(seconds), "--procs", str(procs),
            "--timeout", "120"]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=seconds + 600, check=True)
        result = json.loads(done.stdout)
    except (subprocess.SubprocessError, ValueError) as exc:
        cell.error = f"load generator failed: {exc}"
        return cell
    after = {k: harness.cpu_seconds(p) for k, p in pids.items() if p}
    cell.connections, cell.ok, cell.failed = result["connections"], result["ok"], result["failed"]
    cell.problems = result["problems"]
    cell.elapsed = result["elapsed"]
    cell.rate = cell.ok / cell.elapsed if cell.elapsed else 0.0
    latencies = result["latencies"]
    cell.p50_ms = percentile(latencies, 0.50) * 1000
    cell.p99_ms = percentile(latencies, 0.99) * 1000
    cell.max_ms = max(latencies, default=float("nan")) * 1000
    cell.cpu_server = after["server"] - before["server"]
    cell.cpu_db = after.get("db", 0.0) - before.get("db", 0.0)
    cell.cpu_clients = result["cpu"]
    cell.rows = count_rows(url)
    if cell.rows < cell.ok:
        cell.error = f"only {cell.rows} rows stored for {cell.ok} OK replies"
    return cell


def fmt_rate(value: Optional[float]) -> str:
    return "-" if value is None or value != value else f"{value:,.0f}"


def print_cell(cell: Cell) -> None:
    if cell.error:
        print(f"{cell.backend:8} {SCENARIOS.get(cell.records, cell.records):13} {cell.clients:>4}"
              f"  {cell.server:6} ERROR: {cell.error}", flush=True)
        return
    cpu = f"{cell.cpu_server:5.1f} {cell.cpu_db:5.1f} {cell.cpu_clients:5.1f}"
    failed = f"{cell.failed}" + (f" {cell.problems}" if cell.problems else "")
    print(f"{cell.backend:8} {SCENARIOS.get(cell.records, cell.records):13} {cell.clients:>4}"
          f"  {cell.server:6} {cell.connections:>6} {cell.ok:>7} {cell.elapsed:6.1f}"
          f" {fmt_rate(cell.rate):>8} {cell.p50_ms:8.1f} {cell.p99_ms:8.1f} {cell.max_ms:8.1f}"
          f"  {cpu}  {failed}",
          flush=True)


HEADER = (f"{'backend':8} {'scenario':13} {'cli':>4}  {'server':6} {'conns':>6} {'acked':>7}"
          f" {'secs':>6} {'rec/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
          f"  {'cpu s: srv    db  load':22}"
          f"  failed")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(cells: List[Cell], multirow: Dict[str, float]) -> List[str]:
    """The ratio table and the target lines."""
    out = ["", "ratios (rec/s of smss over the references)",
           f"{'backend':8} {'scenario':13} {'cli':>4} {'smss':>8} {'naive':>8} {'multi-row':>9}"
           f" {'smss/naive':>10} {'smss/multi':>10}"]
    by_key = {(c.backend, c.server, c.records, c.clients): c for c in cells if not c.error}
    for cell in cells:
        if cell.server != "smss" or cell.error:
            continue
        naive = by_key.get((cell.backend, "naive", cell.records, cell.clients))
        multi = multirow.get(cell.backend)
        naive_ratio = f"{cell.rate / naive.rate:9.1f}x" if naive and naive.rate else "-"
        multi_ratio = f"{cell.rate / multi:10.2f}" if multi else "-"
        out.append(f"{cell.backend:8} {SCENARIOS.get(cell.records, cell.records):13}"
                   f" {cell.clients:>4} {fmt_rate(cell.rate):>8}"
                   f" {fmt_rate(naive.rate if naive else None):>8} {fmt_rate(multi):>9}"
                   f" {naive_ratio:>10} {multi_ratio:>10}")
    out += ["", "targets (issue 6)"]
    batch = by_key.get(("mariadb", "smss", 100, 64))
    naive = by_key.get(("mariadb", "naive", 100, 64))
    multi = multirow.get("mariadb")
    if batch and naive and naive.rate:
        ratio = batch.rate / naive.rate
        out.append(f"  {verdict(ratio >= TARGET_NAIVE_RATIO)}  MariaDB, 64 clients x 100 records:"
                   f" smss/naive = {ratio:.1f}x (target >= {TARGET_NAIVE_RATIO:.0f}x)")
    else:
        out.append("  n/a   MariaDB, 64 clients x 100 records vs naive: not measured in this run")
    if batch and multi:
        ratio = batch.rate / multi
        out.append(f"  {verdict(ratio >= TARGET_MULTIROW_RATIO)}  MariaDB, 64 clients x 100"
                   f" records: smss/multi-row = {ratio:.2f} (target >= {TARGET_MULTIROW_RATIO})")
    else:
        out.append("  n/a   MariaDB, 64 clients x 100 records vs multi-row: not measured")
    for backend in ("mariadb", "sqlite"):
        single = by_key.get((backend, "smss", 1, 64))
        if single:
            out.append(f"  {verdict(single.p99_ms < TARGET_P99_MS)}  {backend}, 64 clients x 1"
                       f" record: p99 = {single.p99_ms:.1f} ms (target < {TARGET_P99_MS:.0f} ms)")
        else:
            out.append(f"  n/a   {backend}, 64 clients x 1 record: not measured in this run")
    return out


def run_backend(name: str, args, folder: str, cells: List[Cell],
                multirow: Dict[str, float], versions: Dict[str, str]) -> None:
    backend = harness.Backend(name, os.path.join(folder, name), args.mysql_url)
    os.makedirs(backend.folder, exist_ok=True)
    servers: List[harness.Spooler] = []
    try:
        backend.start()
        versions[name] = backend.version
        rates = [multirow_rate(backend, args.multirow_rows) for _ in range(args.multirow_repeat)]
        before = statistics.median(rates)
        print(f"{name}: {backend.version}; multi-row insert before the runs:"
              f" {fmt_rate(before)} rows/s", flush=True)
        smss_url = backend.new_database("smss")
        naive_url = backend.new_database("naive")
        smss = harness.smss_server(os.path.join(backend.folder, "smss"), smss_url).start()
        servers.append(smss)
        naive = harness.naive_server(os.path.join(backend.folder, "naive"), naive_url).start()
        servers.append(naive)
        print(HEADER, flush=True)
        for records in args.records:
            for clients in args.clients:
                for server, url in ((smss, smss_url), (naive, naive_url)):
                    cell = Cell(name, server.name, records, clients)
                    cells.append(run_cell(cell, server, backend, url, args.seconds, args.procs))
                    print_cell(cell)
        for server in servers:
            server.stop()
        servers.clear()
        rates = [multirow_rate(backend, args.multirow_rows) for _ in range(args.multirow_repeat)]
        after = statistics.median(rates)
        multirow[name] = (before + after) / 2
        print(f"{name}: multi-row insert after the runs: {fmt_rate(after)} rows/s;"
              f" reference used: {fmt_rate(multirow[name])} rows/s", flush=True)
    finally:
        for server in servers:
            server.stop()
        backend.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="smss ingest benchmark")
    parser.add_argument("--quick", action="store_true",
                        help="a short run (1 and 16 clients, short cells) to see that it works")
    parser.add_argument("--backends", default="sqlite,mariadb")
    parser.add_argument("--clients", help="comma-separated (default 1,16,64,256)")
    parser.add_argument("--records", help="records per connection, comma-separated (1,100)")
    parser.add_argument("--seconds", type=float, help="measured time per cell (default 5)")
    parser.add_argument("--procs", type=int, default=1, help="load generator processes")
    parser.add_argument("--mysql-url", default="",
                        help="use this MariaDB/MySQL server (its user must create databases)")
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args(argv)
    args.clients = [int(c) for c in (args.clients or ("1,16" if args.quick else "1,16,64,256"))
                    .split(",")]
    args.records = [int(r) for r in (args.records or "1,100").split(",")]
    args.seconds = args.seconds or (0.5 if args.quick else 5.0)
    args.multirow_rows = 5_000 if args.quick else 50_000
    args.multirow_repeat = 1 if args.quick else 3
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    info = harness.machine()
    print(f"smss ingest benchmark{' (quick)' if args.quick else ''}:"
          f" {info['cpus']} x {info['cpu_model']}, {info['memory']} RAM,"
          f" Python {info['python']}, Linux {info['kernel']}, load {info['load']}")
    print(f"cells of {args.seconds:g} s; load generator: {args.procs} process(es), asyncio;"
          " latency = connect -> last reply;\ncpu s = CPU seconds used in the cell by the server,"
          " the database server (MariaDB only) and the load generator")
    folder = harness.temp_folder("smss-bench-")
    cells: List[Cell] = []
    multirow: Dict[str, float] = {}
    versions: Dict[str, str] = {}
    started = time.monotonic()
    try:
        for name in backends:
            if name == "mariadb" and not args.mysql_url and not harness.mariadb_available():
                print("mariadb: skipped, MariaDB is not installed (Debian package mariadb-server)")
                continue
            run_backend(name, args, folder, cells, multirow, versions)
    finally:
        harness.remove(folder)
    lines = report(cells, multirow)
    print("\n".join(lines))
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"machine": info, "versions": versions, "multirow": multirow,
                       "cells": [asdict(c) for c in cells], "report": lines,
                       "quick": args.quick, "seconds": args.seconds}, handle, indent=1)
    return 0 if cells and not any(c.error for c in cells) else 1


if __name__ == "__main__":
    sys.exit(main())
