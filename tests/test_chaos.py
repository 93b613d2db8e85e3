"""The chaos run's short form: kill -9 the server and the dispatcher at random moments,
restart MariaDB once, and lose nothing that was acknowledged (bench/chaos.py is the long
form)."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))

import chaos  # noqa: E402


@pytest.mark.slow
def test_nothing_acknowledged_is_lost_under_kills_and_a_database_restart(mariadb):
    lines = []
    report = chaos.run(records=int(os.environ.get("SMSS_CHAOS_RECORDS", "1500")), seed=11,
                       ingest_seconds=8, log=lines.append)
    print(report.line())
    assert not report.timed_out, report.line()
    assert report.acked == report.records
    assert report.lost == 0 and report.stored_twice == 0 and report.phantom == 0
    assert report.not_sent == 0  # every acknowledged record reached the network
    assert report.duplicates <= report.dispatcher_kills  # only the documented window
    assert report.server_kills >= 2 and report.database_restarts == 1
    assert report.dispatcher_kills >= 1  # the duplicate bound above was really put to the test
