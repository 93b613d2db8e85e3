"""The benchmarks still run: short versions of bench/*.py, checked for output, not for speed.

No timing is asserted (the machine is shared); what is checked is that each
command completes, prints its table with numbers in it, and that every record
a benchmark client got ``OK`` for is in the database.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from support_tools import module

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(REPO, "bench")
NUMBER = r"[\d,]+(?:\.\d+)?"

pytestmark = pytest.mark.slow


def run(args, timeout=300) -> str:
    done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_ingest_quick_prints_the_table_and_loses_nothing(mariadb, tmp_path):
    report = tmp_path / "ingest.json"
    out = run([os.path.join(BENCH, "ingest.py"), "--quick", "--seconds", "0.3",
               "--mysql-url", mariadb.create_database(), "--json", str(report)])
    for backend in ("sqlite", "mariadb"):
        for scenario in ("1 rec/conn", "100 rec/conn"):
            for server in ("smss", "naive"):
                row = re.compile(rf"^{backend} +{re.escape(scenario)} +\d+ +{server} +\d+ +\d+"
                                 rf" +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER} ", re.M)
                assert row.search(out), f"no {backend}/{scenario}/{server} row in:\n{out}"
        assert re.search(rf"^{backend}: .*multi-row insert .*: {NUMBER} rows/s", out, re.M)
        assert re.search(rf"^{backend} +100 rec/conn +16 +{NUMBER} +{NUMBER} +{NUMBER}"
                         rf" +{NUMBER}x +{NUMBER}$", out, re.M), out
    assert "targets (issue 6)" in out
    figures = json.loads(report.read_text())
    assert len(figures["cells"]) == 2 * 2 * 2 * 2
    for cell in figures["cells"]:
        assert cell["error"] == "" and cell["failed"] == 0, cell
        assert cell["ok"] > 0 and cell["ok"] % cell["records"] == 0, cell
        assert cell["rows"] >= cell["ok"], cell  # every acknowledged record is stored


def test_memory_with_a_few_connections():
    out = run([os.path.join(BENCH, "memory.py"), "--connections", "50"])
    assert re.search(rf"50 idle connections open +{NUMBER} MiB", out), out
    assert re.search(r"50 open, each sent a record \(50 OK\)", out), out
    assert re.search(rf"^(PASS|MISS)  RSS with 50 idle connections = {NUMBER} MiB", out, re.M)


def test_memory_with_a_stalled_database(mariadb):
    out = run([os.path.join(BENCH, "memory.py"), "--backend", "mariadb", "--connections", "20",
               "--stall-records", "50", "--stall-seconds", "2"])
    assert re.search(rf"VmRSS 2 s into the stall +{NUMBER} MiB", out), out
    assert "every client got a reply for every record: yes" in out, out
    assert re.search(r"^every acknowledged record stored: yes \(1000 OK, 1000 rows\)", out,
                     re.M), out


def test_atheris_runs_each_target_briefly(tmp_path):
    module("atheris", "pip install atheris")
    out = run([os.path.join(BENCH, "fuzz_atheris.py"), "--seconds", "1",
               "--artifacts", str(tmp_path)])
    for target in ("protocol", "atparse", "pdu"):
        assert re.search(rf"^{target} +ok: {NUMBER} inputs", out, re.M), out
    assert not [name for name in os.listdir(tmp_path) if name.startswith(("crash", "timeout"))]


def test_smpp_against_a_throttling_and_a_dropping_smsc(tmp_path):
    from support_smsc import require_node

    require_node()
    report = tmp_path / "smpp.json"
    out = run([os.path.join(BENCH, "smpp.py"), "--throttled", "--drops", "--messages", "10",
               "--json", str(report)])
    for smsc in ("5 submit_sm/s", "5 submit_sm/s, 20% ESME_RSYSERR", "drops every 8th PDU"):
        assert re.search(rf"^{re.escape(smsc)} +10 +{NUMBER} ", out, re.M), out
    rows = json.loads(report.read_text())["rows"]
    assert len(rows) == 3 and all(row["seconds"] > 0 for row in rows)


def test_charts_with_a_few_thousand_rows(mariadb):
    out = run([os.path.join(BENCH, "charts.py"), "--rows", "3000", "--repeat", "1",
               "--mysql-url", mariadb.create_database()])
    for backend in ("sqlite", "mariadb"):
        for days in (365, 30):
            assert re.search(rf"^{backend} +3,000 +{days} days +{NUMBER} +{NUMBER} +{NUMBER}"
                             rf" +{NUMBER} +{NUMBER}$", out, re.M), out
