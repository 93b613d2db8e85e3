"""Several transports in one dispatcher process: one lane (a Dispatcher) per transport.

Routing lives in ``msg.route``, set when the message was accepted
(``smss.spooler.validate``): NULL for a message any transport may send; ``NAME`` when
the client pinned a transport (``#phone@NAME;text``): only that one sends it;
``~NAME`` when a number-prefix rule ([dispatcher] routes) prefers it: that
transport sends it, and while it is down (it did not open, lost its link, or
needs a PIN) or paused by an operator, the other transports take it over.
Lanes run in configuration order; after a lane went down, the lanes still up
run once more for its preferred messages.  Each lane keeps its own rate limit
(its section's ``rate_limit``), reads its own device, claims under its own
owner id (``host:pid/NAME``) and keeps its own re-open backoff.  A pass the
database stopped ends the round: the other lanes would only fail the same way.
"""

from __future__ import annotations

import logging
import threading
from typing import List, Optional

from check_and_send.dispatcher import DATABASE, Dispatcher, PassReport
from smss.store.database import Connection
from smss.transports.base import OPERATOR, Transport, wait_until

log = logging.getLogger(__name__)

PREFERRED = "~"


def routes_for(name: str, down: List[str]) -> List[str]:
    """What the lane ``name`` claims besides unrouted messages."""
    return [name, PREFERRED + name] + [PREFERRED + other for other in down if other != name]


class Lanes:
    """Looks like one Dispatcher to check_and_send.cli: run_pass, release_claims, close,
    use_connection, went_down, reopen_in, all_down."""

    def __init__(self, lanes: List[Dispatcher]) -> None:
        self.lanes = lanes
        self.transport = _AnyTransport([lane.transport for lane in lanes])

    def run_pass(self) -> PassReport:
        total = PassReport()
        down: List[str] = []
        problems = []
        for lane in self.lanes:
            lane.claim_routes = routes_for(lane.transport.name, down)
            report = lane.run_pass()
            _add(total, report)
            if report.problem_kind == DATABASE:
                total.problem, total.problem_kind = report.problem, DATABASE
                return total
            if not report.ok:
                down.append(lane.transport.name)
                problems.append((lane.transport.name, report))
            elif report.paused:
                down.append(lane.transport.name)  # not a problem, but it sends nothing
        if down:  # the lanes still up take over what preferred the ones that went down
            for lane in self.lanes:
                if lane.transport.name in down:
                    continue
                lane.claim_routes = [PREFERRED + name for name in down]
                log.info("%s takes over messages for %s", lane.transport.name, ", ".join(down))
                report = lane.run_pass()
                _add(total, report)
                if report.problem_kind == DATABASE:
                    total.problem, total.problem_kind = report.problem, DATABASE
                    return total
                if not report.ok:
                    problems.append((lane.transport.name, report))
        if problems:
            total.problem = "; ".join(f"{name}: {report.problem}" for name, report in problems)
            kinds = {report.problem_kind for _, report in problems}
            total.problem_kind = OPERATOR if OPERATOR in kinds else problems[0][1].problem_kind
        return total

    def release_claims(self) -> None:
        for lane in self.lanes:
            lane.release_claims()

    def close(self) -> None:
        for lane in self.lanes:
            lane.close()

    def use_connection(self, conn: Connection) -> None:
        for lane in self.lanes:
            lane.use_connection(conn)

    def went_down(self) -> None:
        for lane in self.lanes:
            lane.went_down()

    def reopen_in(self) -> Optional[float]:
        """Seconds until the first closed lane may open again; None when none waits."""
        waits = [wait for wait in (lane.reopen_in() for lane in self.lanes) if wait is not None]
        return min(waits) if waits else None

    def all_down(self) -> bool:
        return all(lane.reopen_in() is not None for lane in self.lanes)


def _add(total: PassReport, report: PassReport) -> None:
    for counter in ("sent", "failed", "deferred", "expired", "received", "reports",
                    "recovered"):
        setattr(total, counter, getattr(total, counter) + getattr(report, counter))
    total.new_rcv_ids.extend(report.new_rcv_ids)
    total.paused.extend(name for name in report.paused if name not in total.paused)


class _AnyTransport:
    """The lanes' transports seen as one by --loop: a name for the logs, and a wait that
    returns when any of them has something."""

    def __init__(self, transports: List[Transport]) -> None:
        self.transports = transports
        self.name = "+".join(t.name for t in transports)

    def wait(self, timeout: float, wake: Optional[threading.Event] = None) -> bool:
        return wait_until(timeout, lambda: any(t.wait(0.0, wake) for t in self.transports),
                          wake, step=0.1)
