"""Posting the outbox: one thread per destination, never in the way of sending or receiving.

``smss run``, ``smss web`` and ``check_and_send --loop`` each start a
``DeliveryWorker`` (docs/integrations.md); they share the work through the
outbox's claims, so an event is posted by one of them at a time.  Each
destination (each ``[webhook:NAME]``, and all Kannel dlr-urls together) has
its own thread, so a receiver that is slow or down delays only its own
events.

A webhook event is POSTed as JSON with ``X-Smss-Event``, ``X-Smss-Event-Id``,
``X-Smss-Timestamp`` and ``X-Smss-Signature`` (``smss.events.signing``); a
dlr-url is fetched with GET, as Kannel does.  Any 2xx answer delivers the
event; anything else (another status, a redirect, a refused connection, a
timeout) is retried after ``retry_delay``, doubling up to
``retry_max_delay``, until the event is older than its ``max_age``: then it
stays in the outbox as failed (the status page and ``smss status`` show it).
A worker that dies between a post and its commit leaves a claim that is
released after a while, and the event is posted again: at least once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from typing import List, Optional, Tuple

from smss import __version__
from smss.events import signing
from smss.events.record import DLR_TARGET, WEBHOOK_TARGET
from smss.store import dlr_requests, idempotency, outbox, tallies
from smss.store.database import UNAVAILABLE_ERRORS, Connection, connect_config, utcnow

log = logging.getLogger(__name__)

BATCH = 10  # events claimed at a time by one destination's thread
HOUSEKEEPING_INTERVAL = 300.0
KEEP_FAILED = timedelta(days=30)
READ_LIMIT = 64 * 1024  # the most of an answer's body read (and thrown away)


@dataclass(frozen=True)
class Destination:
    target: str  # outbox.target
    url: Optional[str]  # a webhook's URL; None: each event carries its own (dlr-url)
    secret: str = ""
    timeout: float = 10.0
    max_age: float = 86400.0

    @property
    def stale_after(self) -> timedelta:
        """A claim older than this belongs to a worker that died."""
        return timedelta(seconds=2 * self.timeout + 60)


def destinations(config) -> List[Destination]:
    found = [Destination(DLR_TARGET, None, timeout=config.get("outbox", "dlr_timeout"),
                         max_age=config.get("outbox", "dlr_max_age"))]
    for name, values in config.webhooks().items():
        found.append(Destination(WEBHOOK_TARGET + name, values["url"], values["secret"],
                                 values["timeout"], values["max_age"]))
    return found


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer that is not 2xx: the event is not delivered."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        return None


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)


def post(destination: Destination, item: outbox.Item) -> Tuple[bool, str]:
    """One attempt: (delivered, what happened)."""
    if destination.url is None:  # a Kannel dlr-url: GET, as Kannel's smsbox does
        request = urllib.request.Request(item.url or "", method="GET", headers={
            "User-Agent": f"smss/{__version__}"})
    else:
        body = item.payload.encode("utf-8")
        stamp = str(int(time.time()))
        request = urllib.request.Request(destination.url, data=body, method="POST", headers={
            "Content-Type": "application/json",
            "User-Agent": f"smss/{__version__}",
            "X-Smss-Event": item.kind,
            "X-Smss-Event-Id": item.event_id,
            "X-Smss-Timestamp": stamp,
            "X-Smss-Signature": signing.sign(destination.secret, stamp, body),
        })
    try:
        with _OPENER.open(request, timeout=destination.timeout) as answer:
            answer.read(READ_LIMIT)
            status = answer.status
    except urllib.error.HTTPError as exc:
        exc.close()
        return False, f"HTTP {exc.code}"
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return False, f"no answer within {destination.timeout:g}s"
        return False, str(reason)
    except (socket.timeout, TimeoutError):
        return False, f"no answer within {destination.timeout:g}s"
    except (OSError, ValueError) as exc:  # connection reset mid-answer, a bad URL ...
        return False, f"{type(exc).__name__}: {exc}"
    if 200 <= status < 300:
        return True, f"HTTP {status}"
    return False, f"HTTP {status}"


class DeliveryWorker:
    """``start()`` the threads, ``stop()`` them (a post in progress is finished)."""

    def __init__(self, config, owner: str = "") -> None:
        self.config = config
        self.destinations = destinations(config)
        self.poll_interval = config.get("outbox", "poll_interval")
        self.retry_delay = config.get("outbox", "retry_delay")
        self.retry_max_delay = config.get("outbox", "retry_max_delay")
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []

    def start(self) -> None:
        for number, destination in enumerate(self.destinations):
            thread = threading.Thread(target=self._run, args=(destination, number == 0),
                                      name=f"outbox {destination.target}", daemon=True)
            thread.start()
            self._threads.append(thread)
        names = ", ".join(d.target for d in self.destinations)
        log.info("posting events to: %s", names)

    def stop(self) -> None:
        self._stop.set()
        for thread, destination in zip(self._threads, self.destinations):
            thread.join(destination.timeout + 10)
        self._threads = []

    # -- one destination's thread

    def _run(self, destination: Destination, housekeeper: bool) -> None:
        conn: Optional[Connection] = None
        backoff = 0.0
        next_housekeeping = next_release = 0.0
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = connect_config(self.config)
                if time.monotonic() >= next_release:
                    released = outbox.release_stale(conn, destination.target,
                                                    utcnow() - destination.stale_after)
                    if released:
                        log.warning("%s: %d event(s) claimed by a worker that stopped are"
                                    " posted again", destination.target, released)
                    next_release = time.monotonic() + 30
                if housekeeper and time.monotonic() >= next_housekeeping:
                    self._housekeeping(conn)
                    next_housekeeping = time.monotonic() + HOUSEKEEPING_INTERVAL
                items = outbox.claim(conn, destination.target, self.owner, BATCH)
                backoff = 0.0
                if not items:
                    self._stop.wait(self.poll_interval)
                    continue
                self._deliver_all(conn, destination, items)
            except UNAVAILABLE_ERRORS as exc:
                # once per outage: the dispatcher and the server report it too
                log.log(logging.DEBUG if backoff else logging.WARNING,
                        "%s: database unavailable, events wait: %s", destination.target, exc)
                conn = _close(conn)
                backoff = min(max(backoff * 2, 1.0), 60.0)
                self._stop.wait(backoff)
            except Exception:  # noqa: BLE001 - the thread outlives one bad event
                log.exception("%s: posting events failed", destination.target)
                conn = _close(conn)
                backoff = min(max(backoff * 2, 1.0), 60.0)
                self._stop.wait(backoff)
        _close(conn)

    def _deliver_all(self, conn: Connection, destination: Destination,
                     items: List[outbox.Item]) -> None:
        for number, item in enumerate(items):
            if self._stop.is_set():
                outbox.release(conn, [i.id for i in items[number:]])
                return
            delivered, detail = post(destination, item)
            self._record(conn, destination, item, delivered, detail)

    def _record(self, conn: Connection, destination: Destination, item: outbox.Item,
                delivered: bool, detail: str) -> None:
        attempts = item.attempts + 1
        if delivered:
            with conn.transaction():
                outbox.delivered(conn, item.id)
                tallies.add(conn, [("events", destination.target, "delivered", 1.0)])
            log.info("%s: event %s (%s) delivered: %s", destination.target, item.event_id,
                     item.kind, detail)
            return
        now = utcnow()
        deadline = item.created_at + timedelta(seconds=destination.max_age)
        if now >= deadline:
            with conn.transaction():
                outbox.give_up(conn, item.id, attempts, detail)
                tallies.add(conn, [("events", destination.target, "failed", 1.0)])
            log.error("%s: event %s (%s) not delivered after %d attempt(s) in %s; given up: %s",
                      destination.target, item.event_id, item.kind, attempts,
                      _duration(now - item.created_at), detail)
            return
        delay = min(self.retry_delay * 2 ** (attempts - 1), self.retry_max_delay)
        retry_at = min(now + timedelta(seconds=delay), deadline)
        outbox.retry(conn, item.id, attempts, retry_at, detail)
        log.warning("%s: event %s (%s) not delivered (attempt %d): %s; again in %.1fs",
                    destination.target, item.event_id, item.kind, attempts, detail,
                    (retry_at - now).total_seconds())

    def _housekeeping(self, conn: Connection) -> None:
        """Forget what has outlived its use: failed events after 30 days, Idempotency-Keys
        after 24 hours, dlr-url requests after a week."""
        pruned = (outbox.prune_failed(conn, utcnow() - KEEP_FAILED), idempotency.prune(conn),
                  dlr_requests.prune(conn))
        if any(pruned):
            log.info("pruned %d failed event(s), %d Idempotency-Key(s), %d dlr-url request(s)",
                     *pruned)


def _close(conn: Optional[Connection]) -> None:  # noqa: D103
    if conn is not None:
        conn.close()
    return None


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds}s"
