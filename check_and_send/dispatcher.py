"""One dispatcher pass: send what is due, bring in what arrived, apply delivery reports.

The order of every step is what keeps messages safe:

- A message is claimed (committed) before it is sent, marked "sending"
  (committed) right before the transport gets it, and moved to ``sms`` in one
  transaction after the transport confirmed.  A transport that keeps several
  messages moving gets them through ``check_and_send.windowed``, which does the same
  in group commits (marks a batch ahead, outcomes of a few milliseconds together).
  If that last commit fails, the outcome goes to a local journal that the next pass
  applies first, so a database outage never makes a message go out twice; the
  message stays claimed until then (released, another lane would send it again).
  The lanes of a process share the journal, one of them applying it at a time.
- The journal and the delete ledger live in ``[dispatcher] state_dir``, which
  survives a reboot (``smss.statefiles``).
- Received messages are committed to ``rcv`` before they are deleted from
  the device; a report is deleted only after it was applied.  A message
  between the two is noted in the delete ledger (see ``ledger``), so one
  whose delete failed, or whose pass died, is deleted by the next pass and not
  stored twice.
- A message in parts records each part the transport confirmed with the
  queued message before the next goes out (``Progress``): a retry, even after
  the pass died, sends only the parts not yet confirmed.
- A claim is a lease (``check_and_send.lease``): the dispatcher renews what it holds
  every third of ``claim_lease`` while it works (also while a send blocks it), and a
  claim not renewed for ``claim_lease`` is taken over by any dispatcher, on any host,
  whether its owner died or lost the database.  A message is marked "sending" only
  while its claim is still ours (the mark renews the lease); one taken over is skipped,
  and a dispatcher that could not renew for a whole lease treats its claims as lost.
  An outcome is recorded only while nobody else claims the message.
- Claims left by a dead pass are released (on this host at once: its PID is gone;
  elsewhere once their lease ran out); a claim whose send had started
  counts as an attempt (that message may have gone out: the only duplicate
  window, see docs/dispatcher.md).  Each dispatcher (each lane of a process) claims
  under its own owner id; a claim under its own id that it no longer holds in
  memory (a release that failed while the database was down) is abandoned too,
  and a claim of another live lane of the same process is only once its lease ran out.
- A transport that went down (or did not open) is closed, and is not opened
  again before ``Transport.reopen_delay`` of its consecutive failures has
  passed; the count starts over once it opened.
- The per-SIM rate limit counts the SMS (parts) the transport submitted in the
  last 60 seconds; a pass claims no more than the limit lets it send now and
  waits for a free slot without holding claims another dispatcher could use.
- Every step forward (a message finished, a rate-limit wait begun, a message
  received) calls ``alive``: the lane's pass timer catches a hung pass, not a
  long one that keeps working (stopping that in the middle of a send would
  send one message twice).
- Expiry removes only unclaimed messages, so two lanes never expire (nor a lane
  expire and another send) the same one.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable, List, Optional, Set, Tuple

from check_and_send import windowed
from check_and_send.lease import Keeper, Lease
from check_and_send.ledger import DeleteLedger, fingerprint
from check_and_send.passes import DATABASE, DatabaseDown, PassReport
from smss import statefiles
from smss.events.record import Events
from smss.pidlock import pid_alive
from smss.store import queue, received, sent, transports
from smss.store.database import UNAVAILABLE_ERRORS, Connection, utcnow
from smss.transports.base import (
    DOWN,
    OPERATOR,
    PERMANENT,
    InboundMessage,
    Progress,
    SendFailed,
    Transport,
)

log = logging.getLogger(__name__)

RATE_WINDOW = timedelta(seconds=60)


#: owner ids are "host:pid" or "host:pid/lane"; the column holds 128 characters
OWNER_LENGTH = 128
_LIVE_OWNERS: Set[str] = set()  # owner ids of this process's dispatchers (its lanes)
_LIVE_OWNERS_LOCK = threading.Lock()
_JOURNAL_LOCK = threading.Lock()  # the lanes of a process share one journal file


@dataclass(frozen=True)
class Settings:
    max_attempts: int = 5
    batch_size: int = 20
    retry_delay: float = 60.0
    retry_max_delay: float = 3600.0
    expire_after: float = 86400.0
    claim_lease: float = 30.0  # seconds a claim lasts without being renewed
    rate_limit: int = 0  # messages per minute through this transport; 0: none
    journal: str = ""  # file for outcomes that could not be committed
    ledger: str = ""  # file for received messages between commit and delete
    events: Events = field(default_factory=Events)  # webhooks, dlr-urls, tallies
    lane: str = ""  # the transport's name when one process drives several
    legacy_journal: str = ""  # where versions before state_dir kept them: applied once
    legacy_ledger: str = ""
    site: str = ""  # recorded with the transport's state (Config.site)

    @classmethod
    def from_config(cls, config, lane: str = "") -> "Settings":
        """``config`` as the transport sees it (Config.for_transport); ``lane``: the
        transport's name when one process drives several (each keeps its own ledger
        and claims under its own owner id)."""
        get = config.get
        lockfile = get("dispatcher", "lockfile")
        suffix = f".{lane}" if lane else ""
        journal = statefiles.state_path(config, os.path.basename(lockfile) + ".journal")
        ledger = statefiles.state_path(config, os.path.basename(lockfile) + suffix + ".deleting")
        return cls(
            max_attempts=get("dispatcher", "max_attempts"),
            batch_size=get("dispatcher", "batch_size"),
            retry_delay=get("dispatcher", "retry_delay"),
            retry_max_delay=get("dispatcher", "retry_max_delay"),
            expire_after=get("dispatcher", "expire_after"),
            claim_lease=get("dispatcher", "claim_lease"),
            rate_limit=_rate_limit(config),
            journal=journal,
            ledger=ledger,
            events=Events.from_config(config),
            lane=lane,
            legacy_journal=statefiles.legacy(lockfile + ".journal", journal),
            legacy_ledger=statefiles.legacy(lockfile + suffix + ".deleting", ledger),
            site=config.site(),
        )


def _outcome(line: str) -> dict:
    """One journal line, checked (a torn line raises ValueError/KeyError/TypeError)."""
    outcome = json.loads(line)
    if not isinstance(outcome["id"], int) or outcome["status"] not in (sent.SENT, sent.FAILED):
        raise ValueError("not an outcome")
    for key in ("attempts", "references", "error", "transport"):
        outcome[key]  # noqa: B018 - KeyError for a line that lacks one
    return outcome


def _rate_limit(config) -> int:
    """The rate limit of the transport this configuration describes (its type's section)."""
    from smss.config import KEYS

    kind = config.get("dispatcher", "transport").strip().lower()
    return config.get(kind, "rate_limit") if (kind, "rate_limit") in KEYS else 0


def owner_id(lane: str = "") -> str:
    """``host:pid``, or ``host:pid/lane`` for one lane of a process driving several."""
    owner = f"{socket.gethostname()}:{os.getpid()}"
    return (owner + (f"/{lane}" if lane else ""))[:OWNER_LENGTH]


def parse_owner(owner: str) -> Tuple[str, Optional[int]]:
    """(host, pid) of an owner id; pid None when it names none."""
    process = owner.split("/", 1)[0]
    host, _, pid = process.rpartition(":")
    return host, int(pid) if pid.isdigit() else None


class Dispatcher:
    def __init__(self, conn: Connection, transport: Transport, settings: Settings,
                 on_received: Optional[Callable[[int, InboundMessage], None]] = None,
                 sleep: Callable[[float], object] = time.sleep,
                 alive: Callable[[float], None] = lambda extra_seconds: None,
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self.conn = conn
        self.transport = transport
        self.settings = settings
        self.on_received = on_received
        self.sleep = sleep
        self.alive = alive  # "still making progress; allow extra_seconds more"
        self.stopping = stopping  # asked to stop: no new message is started
        transport.stopping = stopping  # and a transport waiting inside a send ends the wait
        self.owner = owner_id(settings.lane)
        with _LIVE_OWNERS_LOCK:
            _LIVE_OWNERS.add(self.owner)
        self._claimed: List[int] = []  # claimed by us and not yet finished
        self.lease = Lease(settings.claim_lease)  # of what _claimed holds (serial path)
        #: the lane's watchdog gave the running pass up (its transport hangs): its claims
        #: are no longer renewed, so other dispatchers take them over after the lease
        self.given_up = False
        self.ledger = DeleteLedger(settings.ledger, settings.legacy_ledger)
        self._opened = False
        self._open_failures = 0  # consecutive times the transport went down or did not open
        self._reopen_at = 0.0  # time.monotonic() before which it is not opened again
        #: routes this dispatcher claims besides unrouted messages (None: every message);
        #: set by check_and_send.lanes when one process drives several transports
        self.claim_routes: Optional[List[str]] = None
        #: other lanes of this process draw from the same queue at the same time: a
        #: transport that sends one message at a time then claims one at a time, so a
        #: burst is shared by every transport free at the moment
        self.shares_queue = False
        self._was_paused = False

    # -- the pass

    def run_pass(self) -> PassReport:
        report = PassReport()
        try:
            self.replay_journal()
            report.recovered = self.recover_abandoned()
            report.expired = self.expire_old()
            if not self._open(report):
                return report
            self.send_due(report)
            if report.problem_kind in (None, PERMANENT):
                self.receive(report)
            self._save_state(report)
        except DatabaseDown as exc:
            report.problem, report.problem_kind = f"database unavailable: {exc}", DATABASE
        except UNAVAILABLE_ERRORS as exc:
            report.problem, report.problem_kind = f"database unavailable: {exc}", DATABASE
        finally:
            self._release_claims()
            if report.problem_kind in (DOWN, OPERATOR) and self._opened:
                self.went_down()
        return report

    def release_claims(self) -> None:
        self._release_claims()

    def use_connection(self, conn: Connection) -> None:
        """Go on with a new database connection (the old one was lost)."""
        self.conn = conn

    def close(self) -> None:
        if self._opened:
            self._opened = False
            try:
                self.transport.close()
            except Exception as exc:  # noqa: BLE001 - closing must not hide the pass's outcome
                log.warning("closing %s: %s", self.transport.name, exc)

    def went_down(self) -> None:
        """Close the transport; it is opened again after ``reopen_delay`` of the failures
        in a row (the count starts over once it opened)."""
        self.close()
        self._open_failures += 1
        delay = self.transport.reopen_delay(self._open_failures)
        self._reopen_at = time.monotonic() + delay
        log.info("re-opening %s in %gs", self.transport.name, delay)

    def all_down(self) -> bool:
        """Closed and waiting to be opened again (nothing to send or read through it)."""
        return self.reopen_in() is not None

    def reopen_in(self) -> Optional[float]:
        """Seconds until the closed transport may be opened again (0: now); None while
        it is open or was never refused."""
        if self._opened or not self._open_failures:
            return None
        return max(0.0, self._reopen_at - time.monotonic())

    def _open(self, report: PassReport) -> bool:
        if self._opened:
            return True
        wait = self.reopen_in()
        if wait:
            report.problem = f"{self.transport.name} is down; re-opening in {wait:.1f}s"
            report.problem_kind = DOWN
            return False
        try:
            self.transport.open()
        except SendFailed as exc:
            report.problem, report.problem_kind = exc.reason, exc.kind
            log.error("%s unavailable: %s", self.transport.name, exc.reason)
            self._save_state(report)
            self.went_down()
            return False
        self._opened = True
        self._open_failures = 0
        return True

    # -- sending

    def send_due(self, report: PassReport) -> None:
        if self._paused(report):
            return  # an operator paused this transport: it still receives
        if self._windowed():
            windowed.send(self, report)
            return
        while not self.stopping():
            size = self._claim_size()
            began = self.lease.begin()
            batch = queue.claim(self.conn, self.owner, size, self.claim_routes) if size else []
            if not batch:
                return
            self.lease.renewed(began)
            self._claimed = [message.id for message in batch]
            for message in batch:
                if self._wait_for_slot(message.parts) is None:
                    return  # stopping: the claims left are released by the pass
                if self.lease.lost():
                    self._lost_claims()
                    return
                self.renew_leases(due_only=True)
                keep_going = self._send_one(message, report)
                if message.id in self._claimed:
                    self._claimed.remove(message.id)
                self.alive(0.0)
                if not keep_going:
                    return  # transport down or needs an operator: the rest stays queued
            if len(batch) < size or self._paused(report):
                return

    def renew_leases(self, due_only: bool = False) -> None:
        """Renew the leases of the claims this dispatcher holds (its serial batch);
        ``due_only``: only once a third of the lease has passed since the last renewal."""
        if not self._claimed or (due_only and not self.lease.due()) or self.given_up:
            return
        began = self.lease.begin()
        ids = list(self._claimed)
        with self.conn.transaction():
            held = set(queue.renew(self.conn, self.owner, ids))
        self.lease.renewed(began)
        lost = set(ids) - held
        if lost:  # (one new list: the keeper thread renews while the pass is in a send)
            self._claimed = [i for i in self._claimed if i not in lost]
        for message_id in sorted(lost):
            log.warning("message %d: claim taken over by another dispatcher (its lease ran"
                        " out); not sending it", message_id)

    def _lost_claims(self) -> None:
        """Not renewed for a whole lease (the database was away): another dispatcher may
        have taken them over.  Nothing of them is sent; the claims still ours in the
        database are released by the next pass (``recover_abandoned``)."""
        log.warning("could not renew the claims of %d message(s) for %gs; leaving them",
                    len(self._claimed), self.settings.claim_lease)
        self._claimed = []

    def _windowed(self) -> bool:
        """Whether sending goes through ``check_and_send.windowed``: a transport that keeps
        several messages moving (or sends through ``send_many`` anyway) and no rate limit
        (which is counted message by message)."""
        transport = self.transport
        return (transport.window > 1 or transport.streams) and self.settings.rate_limit <= 0

    def still_claimed(self, message_ids: List[int]) -> None:
        """The windowed path ended: these messages are still claimed and unsettled (the
        pass releases them, counting an attempt for those that may have been sent)."""
        self._claimed = list(message_ids)

    def _paused(self, report: PassReport) -> bool:
        if not self.paused_now(self.conn):
            return False
        if self.transport.name not in report.paused:
            report.paused.append(self.transport.name)
        return True

    def paused_now(self, conn: Connection) -> bool:
        """Whether an operator paused this transport (logged when that changes); ``conn``
        is the dispatcher's connection or, while the windowed path runs, its bookkeeper's."""
        found = transports.paused(conn, self.transport.name)
        if found is not None and not self._was_paused:
            log.warning("%s is paused (by %s): sending nothing through it", found.name,
                        found.paused_by)
        elif found is None and self._was_paused:
            log.info("%s is no longer paused", self.transport.name)
        self._was_paused = found is not None
        return found is not None

    def _send_one(self, message: queue.Claimed, report: PassReport) -> bool:
        attempts = message.attempts + 1
        began = self.lease.begin()
        if message.id not in self._claimed:
            return True  # a renewal found it taken over (and said so)
        if not queue.mark_sending(self.conn, message.id, self.owner):
            log.warning("message %d: claim taken over by another dispatcher (its lease ran"
                        " out); not sending it", message.id)
            self._claimed.remove(message.id)
            return True
        if len(self._claimed) == 1:  # the mark renewed the lease of the only claim held
            self.lease.renewed(began)
        progress = Progress.resume(message.progress, self.transport.name,
                                   lambda state: self._save_progress(message.id, state))
        try:
            with Keeper(self.lease, self.renew_leases):  # a send may outlast a lease
                result = self.transport.send(message.phone, message.text, progress)
        except SendFailed as exc:
            return self._failed(message, exc, attempts, report)
        self._finish(message, sent.SENT, attempts, references=result.references)
        report.sent += 1
        log.info("sent %d to %s (%d part(s), refs %s)", message.id, message.phone,
                 result.parts, ",".join(result.references) or "-")
        return True

    def _save_progress(self, message_id: int, progress: Progress) -> None:
        """Keep how far a message in parts got, so a retry sends only the missing parts.
        Without the database the send goes on (a retry may then repeat those parts)."""
        try:
            queue.save_progress(self.conn, message_id, progress.encode())
        except UNAVAILABLE_ERRORS as exc:
            log.warning("could not record the parts of message %d sent so far: %s",
                        message_id, exc)

    def _failed(self, message: queue.Claimed, exc: SendFailed, attempts: int,
                report: PassReport, sink: Optional["windowed.Sink"] = None) -> bool:
        """Decide what a failed send means for the message; ``sink``: put the outcome in
        the windowed path's next group commit instead of committing it now."""
        if exc.kind == PERMANENT or (exc.kind != OPERATOR and attempts >= self.settings.max_attempts
                                     and (exc.kind != DOWN or exc.maybe_sent)):
            if sink is None:
                self._finish(message, sent.FAILED, attempts, error=exc.reason,
                             references=exc.sent_references)
            else:
                sink.finish(message, self.outcome(message, sent.FAILED, attempts,
                                                  error=exc.reason,
                                                  references=exc.sent_references))
            report.failed += 1
            log.warning("message %d to %s failed after %d attempt(s): %s", message.id,
                        message.phone, attempts, exc.reason)
            return True
        if exc.kind in (DOWN, OPERATOR) and not exc.maybe_sent:
            # not the message's fault: no attempt counted
            if sink is None:
                queue.release(self.conn, [message.id], self.owner)
            else:
                sink.release(message)
        else:
            retry_at = utcnow() + timedelta(seconds=self._backoff(attempts))
            if sink is None:
                queue.defer(self.conn, message.id, attempts, retry_at, exc.reason,
                            self.owner)
            else:
                sink.defer(message, attempts, retry_at, exc.reason)
            report.deferred += 1
            log.info("message %d deferred (attempt %d): %s", message.id, attempts, exc.reason)
        if exc.kind in (DOWN, OPERATOR):
            if self.stopping() and exc.kind == DOWN and not exc.maybe_sent:
                return False  # the transport gave up a wait because we stop: no failure
            report.problem, report.problem_kind = exc.reason, exc.kind
            log.error("%s: %s; stopping this pass", self.transport.name, exc.reason)
            return False
        return True

    def _backoff(self, attempts: int) -> float:
        return min(self.settings.retry_delay * 2 ** (attempts - 1), self.settings.retry_max_delay)

    def outcome(self, message: queue.Claimed, status: str, attempts: int, *,
                references=(), error: Optional[str] = None) -> dict:
        """How ``message`` leaves the queue, in the form the journal keeps."""
        return {"id": message.id, "status": status, "attempts": attempts,
                "references": list(references), "error": error,
                "transport": self.transport.name, "owner": self.owner}

    def sent_outcome(self, message: queue.Claimed, outcome: dict) -> sent.Outcome:
        """The ``sms`` row (and its events) an outcome makes."""
        return sent.Outcome(
            message, outcome["status"], outcome["attempts"], outcome["transport"],
            tuple(outcome["references"]), outcome["error"],
            track_delivery=self.transport.tracks_delivery and outcome["status"] == sent.SENT)

    def _finish(self, message: queue.Claimed, status: str, attempts: int, *,
                references=(), error: Optional[str] = None) -> None:
        """Move the message to ``sms``; journal the outcome if the database is gone."""
        outcome = self.outcome(message, status, attempts, references=references, error=error)
        try:
            self._apply(message, outcome)
        except Exception as exc:  # noqa: BLE001 - whatever failed, the send must not repeat
            self._journal(outcome)
            if message.id in self._claimed:  # the claim stays until the journal is applied:
                self._claimed.remove(message.id)  # released, another lane would send it again
            if not isinstance(exc, UNAVAILABLE_ERRORS):
                log.exception("could not record message %d", message.id)
            raise DatabaseDown(str(exc)) from exc

    def _apply(self, message: queue.Claimed, outcome: dict) -> None:
        record = self.sent_outcome(message, outcome)
        with self.conn.transaction():
            if not self.recordable(self.conn, [outcome]):
                return
            sent.record_many(self.conn, [record])
            queue.delete(self.conn, message.id)
            self.settings.events.finished_many(self.conn, [record])

    @staticmethod
    def recordable(conn: Connection, outcomes: List[dict]) -> List[dict]:
        """The outcomes that may be recorded, in the caller's transaction (their rows
        locked): not those of a message another dispatcher took over (its lease ran out)
        and still claims, nor of one no longer queued (the one that took it over
        recorded it).  The journal of an older version names no owner: recorded."""
        holders = queue.owners(conn, [outcome["id"] for outcome in outcomes])
        kept = []
        for outcome in outcomes:
            message_id, owner = outcome["id"], outcome.get("owner")
            if message_id not in holders:
                log.warning("message %d: no longer queued (another dispatcher took it over"
                            " and finished it); this outcome (%s) is not recorded",
                            message_id, outcome["status"])
            elif owner is not None and holders[message_id] not in (None, owner):
                log.warning("message %d: claimed by %s, which took it over; this outcome"
                            " (%s) is not recorded", message_id, holders[message_id],
                            outcome["status"])
            else:
                kept.append(outcome)
        return kept

    # -- the per-SIM rate limit

    def _slot(self, parts: int) -> Tuple[float, int]:
        """(seconds until ``parts`` more SMS fit the limit, SMS sent in the window now).
        A message longer than the whole limit goes alone, once the window is empty."""
        limit = self.settings.rate_limit
        now = utcnow()
        recent = sent.recent_sends(self.conn, self.transport.name, now - RATE_WINDOW)
        used = in_window = sum(count for _, count in recent)
        if used == 0 or used + parts <= limit:
            return 0.0, in_window
        for moment, count in recent:  # oldest first: when does enough leave the window?
            used -= count
            if used == 0 or used + parts <= limit:
                return max(0.0, (moment + RATE_WINDOW - now).total_seconds()) + 0.01, in_window
        return 0.0, in_window  # not reached: the loop ends with used == 0

    def _wait_for_slot(self, parts: int) -> Optional[int]:
        """Sleep until ``parts`` more SMS may go; returns the SMS then in the window,
        or None when the dispatcher is asked to stop."""
        while True:
            if self.stopping():
                return None
            if self.settings.rate_limit <= 0:
                return 0
            wait, in_window = self._slot(parts)
            if wait <= 0:
                return in_window
            log.info("rate limit: %d SMS in the last minute through %s (limit %d); "
                     "waiting %.1fs", in_window, self.transport.name,
                     self.settings.rate_limit, wait)
            self.alive(wait)
            self.sleep(min(wait, self.lease.period))
            self.renew_leases(due_only=True)

    def _claim_size(self) -> int:
        """How many messages to claim: no more than the rate limit lets go now, so a
        waiting dispatcher does not sit on messages another one could send."""
        limit = self.settings.rate_limit
        batch = self.settings.batch_size
        if self.transport.window > 1:  # no more "sending" than can be in flight
            batch = min(batch, self.transport.window)
        elif self.shares_queue:
            batch = 1
        if limit <= 0:
            return batch
        if not queue.due_count(self.conn, self.claim_routes):
            return 0  # nothing to wait for
        in_window = self._wait_for_slot(1)
        if in_window is None:
            return 0
        return max(1, min(batch, limit - in_window))

    def _release_claims(self) -> None:
        """Give back what this pass still holds; a send that had started counts as an
        attempt (the pass was interrupted in it: the message may have gone out)."""
        if not self._claimed:
            return
        error = "pass interrupted while sending; the message may have been sent"
        try:
            for message_id in list(self._claimed):
                queue.recover(self.conn, message_id, self.owner, error)
                self._claimed.remove(message_id)
        except Exception as exc:  # noqa: BLE001 - recover_abandoned releases them later
            log.warning("could not release %d claim(s), the next pass will: %s",
                        len(self._claimed), exc)
        self._claimed = []

    # -- journal of outcomes the database did not take

    def _journal(self, outcome: dict) -> None:
        if self._append_journal([outcome]):
            log.error("database unavailable: outcome of message %s kept in %s", outcome["id"],
                      self.settings.journal)

    def journal_many(self, outcomes: List[dict]) -> None:
        """Append outcomes to the journal with one fsync (the windowed path's failed
        round journals them together)."""
        if self._append_journal(outcomes):
            log.error("database unavailable: the outcomes of messages %s are kept in %s",
                      ", ".join(str(outcome["id"]) for outcome in outcomes),
                      self.settings.journal)

    def _append_journal(self, outcomes: List[dict]) -> bool:
        path = self.settings.journal
        if not path:
            log.error("no journal file: the outcomes of messages %s are lost: %s",
                      ", ".join(str(outcome["id"]) for outcome in outcomes), outcomes)
            return False
        with _JOURNAL_LOCK:  # never between another lane's reading and removing it
            statefiles.append_lines(path, [json.dumps(outcome) for outcome in outcomes])
        return True

    def replay_journal(self) -> None:
        """Apply the outcomes journaled while the database was away (also a journal an
        older version left beside the lock file); a line that cannot be read is skipped.
        The lanes of a process share the journal: one of them applies it at a time."""
        with _JOURNAL_LOCK:
            self._replay_journal()

    def _replay_journal(self) -> None:
        for path in (self.settings.legacy_journal, self.settings.journal):
            if not path or not os.path.exists(path):
                continue
            for outcome in statefiles.read_lines(path, _outcome):
                message = queue.get_claimed(self.conn, outcome["id"])
                if message is None:
                    continue  # already applied
                self._apply(message, outcome)
                log.info("applied journaled outcome of message %s (%s)", outcome["id"],
                         outcome["status"])
            statefiles.remove(path)

    # -- recovery and expiry

    def recover_abandoned(self) -> int:
        """Release claims nobody works on: of any owner whose lease ran out (any host,
        dead or cut off from the database), at once those of a dead process on this
        host, and our own that we no longer hold in memory."""
        host = socket.gethostname()
        lease = self.settings.claim_lease
        recovered = 0
        for message_id, claim in queue.claims(self.conn):
            owner_host, pid = parse_owner(claim.owner)
            lapsed = False
            if claim.owner == self.owner:
                abandoned = message_id not in self._claimed
            elif claim.lapsed(lease):
                abandoned = lapsed = True
            elif owner_host == host and pid == os.getpid():  # our PID: another lane of this
                # process (live), or a process before a reboot that had our PID (dead)
                with _LIVE_OWNERS_LOCK:
                    abandoned = claim.owner not in _LIVE_OWNERS
            elif owner_host == host and pid is not None:
                abandoned = not pid_alive(pid, "check_and_send")
            else:
                abandoned = False
            if not abandoned:
                continue
            if lapsed:
                error = (f"claim of {claim.owner} taken over (not renewed for {lease:g}s)"
                         " while sending; the message may have been sent")
            else:
                error = "dispatcher died while sending; the message may have been sent"
            if queue.recover(self.conn, message_id, claim.owner, error):
                recovered += 1
                if claim.started:
                    log.warning("message %d: %s (claim of %s)", message_id, error, claim.owner)
                elif lapsed:
                    log.info("message %d: took over the claim of %s (not renewed for %gs)",
                             message_id, claim.owner, lease)
                else:
                    log.info("message %d: released abandoned claim of %s", message_id,
                             claim.owner)
        return recovered

    def expire_old(self) -> int:
        if self.settings.expire_after <= 0:
            return 0
        cutoff = utcnow() - timedelta(seconds=self.settings.expire_after)
        count = 0
        for message in queue.expired(self.conn, cutoff, 1000):
            error = message.last_error or "not sent in time"
            with self.conn.transaction():
                if not queue.delete_unclaimed(self.conn, message.id):
                    continue  # another lane (or dispatcher) claimed or expired it meanwhile
                sent.record(self.conn, message, sent.EXPIRED, attempts=message.attempts,
                            error=f"expired: {error}")
                self.settings.events.finished(self.conn, message, sent.EXPIRED, message.attempts,
                                              error=f"expired: {error}")
            count += 1
            log.warning("message %d to %s expired: %s", message.id, message.phone, error)
        return count

    # -- receiving

    def receive(self, report: PassReport) -> None:
        try:
            inbox = self.transport.fetch()
        except SendFailed as exc:
            report.problem, report.problem_kind = exc.reason, exc.kind
            log.error("%s: cannot read received messages: %s", self.transport.name, exc.reason)
            return
        name = self.transport.name
        keys = [fingerprint(name, message) for message in inbox.messages]
        self.ledger.keep_only(keys)
        for message, key in zip(inbox.messages, keys):
            noted = self.ledger.noted_at(key)
            if noted is not None:
                earlier = received.stored_since(self.conn, name, message.phone, message.text,
                                                message.raw_pdu, noted)
                if earlier is not None:
                    log.warning("message at %s was stored already (rcv %d); deleting it",
                                ",".join(map(str, message.handles)), earlier)
                    if self._delete(message.handles, report):
                        self.ledger.forget(key)
                    elif not report.ok:
                        return
                    continue
            incoming = received.Incoming(
                message.phone, message.text, message.sent_at, message.parts, message.smsc,
                name, message.raw_pdu, message.error, message.message_class,
                message.references[0] if message.references else None,
                hook=self.on_received is not None,
            )
            if message.handles:  # something to delete from the device afterwards
                self.ledger.note(key, utcnow())
            with self.conn.transaction():
                rcv_id = received.insert(self.conn, incoming)
                self.settings.events.received(self.conn, rcv_id, incoming)
            report.received += 1
            report.new_rcv_ids.append(rcv_id)
            self.alive(0.0)
            log.info("received %d from %s (%d part(s))%s", rcv_id, message.phone, message.parts,
                     f": {message.error}" if message.error else "")
            if self.on_received is not None:
                self.on_received(rcv_id, message)
            if self._delete(message.handles, report):
                self.ledger.forget(key)
            elif not report.ok:
                return  # the link is gone; the note makes the next pass only delete it
        for delivery in inbox.reports:
            with self.conn.transaction():
                update = sent.report(self.conn, self.transport.name, delivery.reference,
                                     delivery.delivered, delivery.status_code)
                self.settings.events.reported(self.conn, self.transport.name, delivery.reference,
                                              delivery.delivered, delivery.status_code, update)
            report.reports += 1
            if update is None:
                log.info("delivery report for unknown reference %s (status %d)",
                         delivery.reference, delivery.status_code)
            else:
                log.info("delivery report: message %d part %d -> %s", update.sms_id,
                         update.part, update.message_delivery)
            if not self._delete(delivery.handles, report) and not report.ok:
                return  # applying a report again later is harmless

    def _delete(self, handles, report: PassReport) -> bool:
        """Remove stored items from the device; False when that failed (and the report
        says so when the transport went down)."""
        if not handles:
            return True
        try:
            self.transport.delete(handles)
        except SendFailed as exc:
            log.error("%s: could not delete %s: %s", self.transport.name, handles, exc.reason)
            if exc.kind in (DOWN, OPERATOR):
                report.problem, report.problem_kind = exc.reason, exc.kind
            return False
        return True

    def _save_state(self, report: PassReport) -> None:
        state = self.transport.state() if self._opened else None
        try:
            transports.save(
                self.conn, self.transport.name,
                "ok" if report.ok else (report.problem_kind or "error"),
                signal_dbm=state.signal_dbm if state else None,
                registration=state.registration if state else None,
                operator=state.operator if state else None,
                error=report.problem, site=self.settings.site,
            )
        except UNAVAILABLE_ERRORS as exc:
            log.warning("could not save transport state: %s", exc)
