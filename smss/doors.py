"""What each front door accepted and refused, counted in this process (``/metrics``).

The doors are ``tcp`` (port 2021), ``api`` (the HTTP API), ``web`` (the send
form) and ``kannel`` (``/cgi-bin/sendsms``).  A record counts as ``ok`` when
it was committed (it got ``OK <id>``) and as ``refused`` with the code of its
``ERR`` line otherwise.  The counters live in the process that runs the doors
and start from zero when it starts, as Prometheus counters do; serve the web
interface from ``smss run`` (``[web] enabled``) to see the TCP door's figures
beside the others.
"""

from __future__ import annotations

from prometheus_client import Counter

RECORDS = Counter("smss_records", "Records handed to a front door: result ok (committed) or"
                  " refused with the code of its ERR reply", ["door", "result", "code"],
                  registry=None)


def accepted(door: str, count: int = 1) -> None:
    if count:
        RECORDS.labels(door, "ok", "").inc(count)


def refused(door: str, code: int) -> None:
    RECORDS.labels(door, "refused", str(code)).inc()
