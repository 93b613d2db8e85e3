"""Two smss sites on a 3-node Galera cluster (bench/galera.py is the long form): with no
fault, with site B's node killed, frozen or cut off while records flow, every record the
clients got `OK` for is sent exactly once and nothing stays queued."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))

import galera as bench  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.mariadb]


@pytest.mark.parametrize("fault", bench.FAULTS)
def test_every_acknowledged_record_is_sent_once(galera, fault):
    lines = []
    report = bench.run(galera, records=300, fault=fault, outage=8.0, deadline_seconds=240,
                       latency=0.02,  # slow enough that site B holds claims when hit
                       log=lines.append)
    print(report.line())
    assert not report.timed_out, (report.line(), lines)
    assert report.acked + report.in_doubt == report.records  # ERR 504: not sent again
    assert report.not_sent == 0 and report.queued == 0
    assert report.duplicates == 0  # no dispatcher was killed: no "maybe sent" window opened
    if fault != "none":
        assert lines and lines[0].startswith(f"fault: {fault}")
