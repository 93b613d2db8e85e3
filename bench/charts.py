#!/usr/bin/env python3
"""The web interface's history charts and CSV export on a big table: how long the
status page's two chart queries take, and what an export costs, on SQLite and a
private MariaDB.

    python3 bench/charts.py                       # 1,000,000 rows in sms and rcv (about 15 min)
    python3 bench/charts.py --rows 50000 --backends sqlite   # a quick look

Two spreads of the same number of rows: over a year (the 30 days of the chart
hold a twelfth of them) and all within the last 30 days (the chart reads all of
them).  "chart ms" is a full read of the 30 days; "cached ms" what a status page
shown again costs while the web application's cache of older hours is fresh.
Each figure is the median of ``--repeat`` runs; the export is timed once and its
peak Python allocation measured with tracemalloc in a second run.  No figure is
asserted anywhere: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Backend  # noqa: E402

from smss.store import paging, sent  # noqa: E402
from smss.store.database import connect, utcnow  # noqa: E402
from smss.web import charts, export  # noqa: E402

CHUNK = 5000  # rows per INSERT batch


def seed(url: str, rows: int, days: int) -> None:
    rng = random.Random(2021)
    now = utcnow()
    span = days * 86400
    conn = connect(url)
    try:
        for start in range(0, rows, CHUNK):
            sms_rows, rcv_rows = [], []
            for number in range(start, min(rows, start + CHUNK)):
                at = now - timedelta(seconds=rng.randint(60, span))
                status = "sent" if rng.random() < 0.93 else rng.choice(["failed", "expired"])
                delivery = rng.choice(["delivered", "delivered", "pending"]) \
                    if status == "sent" else None
                via = rng.choice(["gsm1", "gsm2", "smpp"])
                sms_rows.append((number + 1, "+420608337726", "bench", status, at, 1, "", at,
                                 1, via, delivery))
                rcv_rows.append(("+420777123456", "bench", at, 1, via))
            with conn.transaction():
                conn.executemany(
                    "INSERT INTO sms (id, phone, text, status, sent_at, parts, client,"
                    " created_at, attempts, transport, delivery)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?)", sms_rows)
                conn.executemany(
                    "INSERT INTO rcv (phone, text, received_at, parts, transport)"
                    " VALUES (?,?,?,?,?)", rcv_rows)
        if conn.dialect == "mysql":
            conn.execute("ANALYZE TABLE sms, rcv").close()
        else:
            conn.execute("ANALYZE").close()
    finally:
        conn.close()


def chart_ms(url: str, repeat: int, cache=None) -> float:
    """Median milliseconds of the status page's chart data: a full read (no cache), or
    with the web application's cache warm (what a page shown again costs)."""
    conn = connect(url)
    try:
        if cache is not None:
            charts.load(conn, utcnow(), timezone.utc, cache=cache)
        times = []
        for _ in range(repeat):
            began = time.perf_counter()
            charts.load(conn, utcnow(), timezone.utc, cache=cache)
            times.append((time.perf_counter() - began) * 1000)
        return statistics.median(times)
    finally:
        conn.close()


def export_figures(url: str):
    """(rows, seconds, bytes) of a whole export, and its peak allocation in a second run
    under tracemalloc (which slows Python down too much to time it)."""
    def run():
        conn = connect(url)
        try:
            rows = sent.every(conn, paging.Filters(), chunk=export.CHUNK)
            written = lines = 0
            for piece in export.csv_lines(rows, export.SENT_COLUMNS, timezone.utc):
                written += len(piece)
                lines += piece.count(b"\r\n")
            return lines - 1, written
        finally:
            conn.close()

    began = time.perf_counter()
    rows, written = run()
    seconds = time.perf_counter() - began
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return rows, seconds, written, peak


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in sms and in rcv")
    parser.add_argument("--backends", default="sqlite,mariadb")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--mysql-url", default="", help="an existing MariaDB (default: a "
                        "private one)")
    args = parser.parse_args(argv)
    print(f"{'backend':<8} {'rows':>9} {'spread':>8} {'chart ms':>9} {'cached ms':>9}"
          f" {'export rows/s':>14} {'export MB':>10} {'peak MB':>8}")
    with tempfile.TemporaryDirectory(prefix="smss-bench-charts-") as folder:
        for name in args.backends.split(","):
            backend = Backend(name.strip(), folder, args.mysql_url).start()
            try:
                for days in (365, 30):
                    url = backend.new_database(f"charts{days}")
                    seed(url, args.rows, days)
                    milliseconds = chart_ms(url, args.repeat)
                    cached = chart_ms(url, args.repeat, charts.HourCache())
                    rows, seconds, written, peak = export_figures(url)
                    print(f"{name:<8} {rows:>9,} {days:>4} days {milliseconds:>9.0f}"
                          f" {cached:>9.0f} {rows / seconds:>14,.0f} {written / 1e6:>10.1f}"
                          f" {peak / 1e6:>8.1f}", flush=True)
            finally:
                backend.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
