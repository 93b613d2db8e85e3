"""Load generator for the ingest benchmark: many concurrent clients on real loopback TCP.

Each of ``--clients`` workers loops: connect, send ``--records`` records in one
write, half-close (as ``smss-client`` and ``nc -N`` do), read one reply line per
record, close.  A connection's latency is connect -> last reply.  Workers stop
opening connections after ``--seconds`` or ``--max-connections``; connections in
flight are finished (bounded by ``--timeout``).  Before the measured part one
untimed warm-up round runs (one single-record connection per worker).  The result is one
JSON object on stdout: counts, elapsed time, latencies, and this process's CPU.

Runs in its own process so that the server under test and the clients do not
share an interpreter; ``--procs N`` splits the workers over N processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import sys
import time
from typing import Dict, List

PHONES = ["+420608337726", "+420777123456", "+420602111222", "+420731555666"]


def payload(worker: int, records: int) -> bytes:
    parts = []
    for i in range(records):
        phone = PHONES[(worker + i) % len(PHONES)]
        parts.append(f"#{phone};bench record {i} from client {worker}: backup of srv{worker} ok\n")
    return "".join(parts).encode()


class Tally:
    def __init__(self) -> None:
        self.connections = 0
        self.ok = 0
        self.failed = 0  # connections that did not get an OK for every record
        self.latencies: List[float] = []
        self.problems: Dict[str, int] = {}

    def problem(self, what: str) -> None:
        self.failed += 1
        self.problems[what] = self.problems.get(what, 0) + 1


async def one_connection(host: str, port: int, data: bytes, records: int, timeout: float,
                         tally: Tally) -> None:
    start = time.perf_counter()
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        writer.write(data)
        if writer.can_write_eof():
            writer.write_eof()
        ok = 0
        for _ in range(records):
            line = await asyncio.wait_for(reader.readline(), timeout)
            if not line:
                break
            if line.startswith(b"OK "):
                ok += 1
        elapsed = time.perf_counter() - start
        tally.connections += 1
        tally.ok += ok
        if ok == records:
            tally.latencies.append(elapsed)
        else:
            tally.problem(f"{records - ok} of {records} records not acknowledged")
    except asyncio.TimeoutError:
        tally.connections += 1
        tally.problem("timeout")
    except OSError as exc:
        tally.connections += 1
        tally.problem(type(exc).__name__)
    finally:
        if writer is not None:
            writer.close()


async def run_workers(args, first_worker: int, workers: int) -> dict:
    datas = [payload(first_worker + w, args.records) for w in range(workers)]
    warm = Tally()  # one single-record connection per worker: threads, connections, caches
    await asyncio.gather(*(one_connection(args.host, args.port, payload(first_worker + w, 1), 1,
                                          args.timeout, warm) for w in range(workers)))
    tally = Tally()
    budget = [args.max_connections]
    start = time.perf_counter()
    stop_at = start + args.seconds

    async def worker(w: int) -> None:
        while time.perf_counter() < stop_at and budget[0] > 0:
            budget[0] -= 1
            await one_connection(args.host, args.port, datas[w], args.records, args.timeout,
                                 tally)

    await asyncio.gather(*(worker(w) for w in range(workers)))
    end = time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "connections": tally.connections,
        "ok": tally.ok,
        "failed": tally.failed,
        "problems": tally.problems,
        "warmup_failed": warm.failed,
        "elapsed": end - start,
        "latencies": tally.latencies,
        "cpu": usage.ru_utime + usage.ru_stime,
    }


def _child(args, first_worker: int, workers: int, queue) -> None:
    queue.put(asyncio.run(run_workers(args, first_worker, workers)))


def merge(results: List[dict]) -> dict:
    merged = {"connections": 0, "ok": 0, "failed": 0, "problems": {}, "warmup_failed": 0,
              "elapsed": 0.0, "latencies": [], "cpu": 0.0}
    for result in results:
        for key in ("connections", "ok", "failed", "warmup_failed", "cpu"):
            merged[key] += result[key]
        merged["elapsed"] = max(merged["elapsed"], result["elapsed"])
        merged["latencies"].extend(result["latencies"])
        for what, count in result["problems"].items():
            merged["problems"][what] = merged["problems"].get(what, 0) + count
    return merged


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, default=1, help="concurrent connections")
    parser.add_argument("--records", type=int, default=1, help="records per connection")
    parser.add_argument("--seconds", type=float, default=5.0, help="open connections this long")
    parser.add_argument("--max-connections", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=120.0, help="per step of a connection")
    parser.add_argument("--procs", type=int, default=1, help="client processes")
    args = parser.parse_args(argv)
    procs = max(1, min(args.procs, args.clients))
    if procs == 1:
        result = asyncio.run(run_workers(args, 0, args.clients))
    else:
        queue: multiprocessing.Queue = multiprocessing.Queue()
        args.max_connections = max(1, args.max_connections // procs)
        shares = [args.clients // procs + (1 if i < args.clients % procs else 0)
                  for i in range(procs)]
        children, first = [], 0
        for share in shares:
            child = multiprocessing.Process(target=_child, args=(args, first, share, queue))
            child.start()
            children.append(child)
            first += share
        results = [queue.get() for _ in children]
        for child in children:
            child.join()
        result = merge(results)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
