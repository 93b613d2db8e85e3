"""``GET /metrics``: the Prometheus text format, for monitoring systems.

Readable without a login from ``[web] metrics_allow`` addresses (loopback by
default) and from anywhere with ``Authorization: Bearer <API token>``.

Two sources (docs/integrations.md lists every metric):

- this process: what each front door accepted and refused (``smss.doors``),
  and the process's own CPU and memory;
- the database, read on each scrape: what the dispatchers did (their
  tallies, kept in the transactions that send, receive and apply reports, so
  several dispatchers on several hosts add up), the queue, each transport's
  last reported state, and the webhook outbox.  A dispatcher is another
  process; the database is where its figures meet.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Dict, Iterator, List, Optional

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector

from smss import doors
from smss.events.record import SEND_BUCKETS
from smss.store import outbox, tallies, transports
from smss.store import queue as msg_table
from smss.store.database import utcnow
from smss.web.api import bearer, client_address

router = APIRouter(include_in_schema=False)

UP_STATES = ("ok",)


def allowed(address: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


def _epoch(value: Optional[datetime]) -> Optional[float]:
    return None if value is None else value.replace(tzinfo=timezone.utc).timestamp()


@dataclass
class Figures:
    """What the database says at one scrape."""

    queue: msg_table.QueueStats
    oldest_due: Optional[datetime]
    links: List[transports.TransportStatus]
    tallies: List[tallies.Tally]
    outbox: List[outbox.TargetState]
    now: datetime

    @classmethod
    def read(cls, conn) -> "Figures":
        return cls(msg_table.stats(conn), msg_table.oldest_due(conn),
                   transports.all_status(conn), tallies.all_tallies(conn),
                   outbox.summary(conn), utcnow())


class DatabaseCollector:
    def __init__(self, figures: Figures) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        f = self.figures
        queue = GaugeMetricFamily("smss_queue_messages", "Messages in the queue by state: due"
                                  " (waiting for a dispatcher), retry (waiting after a failed"
                                  " attempt), sending (claimed by a dispatcher)",
                                  labels=["state"])
        queue.add_metric(["due"], f.queue.due)
        queue.add_metric(["retry"], f.queue.deferred)
        queue.add_metric(["sending"], f.queue.claimed)
        yield queue
        age = 0.0 if f.oldest_due is None else max(0.0, (f.now - f.oldest_due).total_seconds())
        yield GaugeMetricFamily("smss_queue_oldest_due_age_seconds", "How long the longest"
                                "-waiting due message has been queued (0: none is due)",
                                value=age)
        yield from self._transports()
        yield from self._tallies()
        pending = GaugeMetricFamily("smss_outbox_events", "Events in the outbox by"
                                    " destination: pending (being tried) and failed (given"
                                    " up in the last 7 days)", labels=["target", "state"])
        for target in f.outbox:
            pending.add_metric([target.target, "pending"], target.pending)
            pending.add_metric([target.target, "failed"], target.failed)
        yield pending

    def _transports(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("smss_transport_up", "1 when the transport's last pass ended"
                               " well (state ok)", labels=["transport"])
        state = GaugeMetricFamily("smss_transport_state", "The transport's state after its"
                                  " last pass (value 1)", labels=["transport", "state"])
        signal = GaugeMetricFamily("smss_transport_signal_dbm", "Signal strength the modem"
                                   " reported", labels=["transport"])
        updated = GaugeMetricFamily("smss_transport_updated_timestamp_seconds", "When the"
                                    " transport last reported its state", labels=["transport"])
        for link in self.figures.links:
            up.add_metric([link.name], 1.0 if link.state in UP_STATES else 0.0)
            state.add_metric([link.name, link.state], 1.0)
            if link.signal_dbm is not None:
                signal.add_metric([link.name], float(link.signal_dbm))
            if link.updated_at is not None:
                updated.add_metric([link.name], _epoch(link.updated_at))
        yield from (up, state, signal, updated)

    def _tallies(self) -> Iterator[Metric]:
        by_name: Dict[str, list] = defaultdict(list)
        for tally in self.figures.tallies:
            by_name[tally.name].append(tally)
        families = [
            ("messages", CounterMetricFamily(
                "smss_messages", "Messages that left the queue, by transport and status"
                " (sent, failed, expired; expired ones have no transport)",
                labels=["transport", "status"]), True),
            ("parts", CounterMetricFamily("smss_parts_sent", "SMS parts sent, by transport",
                                          labels=["transport"]), False),
            ("reports", CounterMetricFamily(
                "smss_delivery_reports", "Delivery reports applied, by transport and outcome"
                " (delivered, failed, pending; unknown: no sent part had the reference)",
                labels=["transport", "outcome"]), True),
            ("received", CounterMetricFamily("smss_received", "SMS received, by transport",
                                             labels=["transport"]), False),
            ("events", CounterMetricFamily(
                "smss_events", "Webhook and dlr-url events, by destination and result"
                " (delivered, failed: given up)", labels=["target", "result"]), True),
        ]
        for name, family, detailed in families:
            for tally in by_name.get(name, ()):
                labels = [tally.transport, tally.detail] if detailed else [tally.transport]
                family.add_metric(labels, tally.value)
            yield family
        last = GaugeMetricFamily("smss_transport_last_sent_timestamp_seconds", "When the"
                                 " transport last sent a message", labels=["transport"])
        for tally in by_name.get("last_sent", ()):
            last.add_metric([tally.transport], tally.value)
        yield last
        yield self._histogram(by_name.get("send_seconds", ()),
                              by_name.get("send_seconds_sum", ()))

    @staticmethod
    def _histogram(buckets, sums) -> Metric:
        histogram = HistogramMetricFamily(
            "smss_send_delay_seconds", "Seconds from a message's acceptance to its sending,"
            " by transport", labels=["transport"])
        counts: Dict[str, Dict[str, float]] = defaultdict(dict)
        for tally in buckets:
            counts[tally.transport][tally.detail] = tally.value
        total_seconds = {tally.transport: tally.value for tally in sums}
        for transport, found in sorted(counts.items()):
            running, cumulative = 0.0, []
            for bound in [f"{b:g}" for b in SEND_BUCKETS] + ["+Inf"]:
                running += found.get(bound, 0.0)
                cumulative.append((bound, running))
            histogram.add_metric([transport], cumulative, total_seconds.get(transport, 0.0))
        return histogram


def _may_read(request: Request, credentials: Optional[HTTPAuthorizationCredentials]) -> bool:
    state = request.app.state
    if allowed(client_address(request), state.settings.metrics_allow):
        return True
    if credentials is None:
        return False
    with state.pool.connection() as conn:
        return state.tokens.check(conn, credentials.credentials) is not None


def _render(request: Request) -> bytes:
    with request.app.state.pool.connection() as conn:
        figures = Figures.read(conn)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(doors.RECORDS)
    registry.register(DatabaseCollector(figures))
    ProcessCollector(registry=registry)
    return generate_latest(registry)


@router.get("/metrics")
async def metrics(request: Request,
                  credentials: Annotated[Optional[HTTPAuthorizationCredentials],
                                         Depends(bearer)]) -> Response:
    if not await run_in_threadpool(_may_read, request, credentials):
        return Response("/metrics: an API token is needed from this address\n",
                        status_code=401, media_type="text/plain",
                        headers={"WWW-Authenticate": "Bearer"})
    return Response(await run_in_threadpool(_render, request), media_type=CONTENT_TYPE_LATEST)
