"""The windowed path of a dispatcher: a transport that keeps several messages moving
(SMPP's window over one or more binds, a GoIP's lines) fed straight from the queue, with
the bookkeeping done in group commits by a thread of its own (the bookkeeper).

The order that keeps messages safe, with the database work batched:

- The bookkeeper claims messages and marks them "sending" in one commit before the
  transport needs them: whenever fewer than ``ahead`` (the larger of the window and
  ``batch_size``) wait, it claims ``ahead`` more, or as many as the transport took
  since its last claim if that is more, twice that if the transport had to wait for
  them (at most ``MAX_CLAIM``), so the marks keep pace with the transport however long
  a commit takes.  The transport pulls messages one by
  one as its window frees up and is handed a message only once that commit has
  returned: nothing is submitted before its sending mark is committed.
- Outcomes go to the bookkeeper as the transport reports them.  Each round of the
  bookkeeper is one transaction: every outcome that came since the round before (the
  ``sms`` rows, the queue rows deleted, deferred or released, and their events for
  webhooks and /metrics) and the claim and mark of the next messages.  While one round
  commits, the next round's outcomes gather: the group grows with the load.
- A message stays claimed by this dispatcher until its outcome is committed or
  journaled, so nobody claims it again before (``Dispatcher._claimed`` holds what is
  neither when the pipeline ends).  When a round's transaction fails, its finished
  outcomes are journaled with one fsync and nothing more is handed out; outcomes still
  coming from the transport are journaled as they come; the pass then ends with
  ``DatabaseDown``.
- Claims are leases (``check_and_send.lease``): a round renews every claim the
  pipeline holds once a third of ``claim_lease`` passed since the last renewal (the
  bookkeeper wakes for it when idle).  A marked message is handed to the transport
  only while the leases are fresh; one whose claim another dispatcher took over (its
  lease ran out) is dropped unsent, and an outcome is recorded, deferred or released
  only while nobody else claims the message (``Dispatcher.recordable``).
- When the transport is done, messages marked but never handed to it, and messages it
  was handed but did not submit (``Transport.send_many`` does not yield those), are
  released without an attempt.  A pass that stops otherwise (an exception) leaves
  them claimed: ``Dispatcher._release_claims`` counts an attempt for those marked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Deque, Dict, Iterator, List, Optional, Protocol, Tuple

from check_and_send.lease import Lease
from check_and_send.passes import DatabaseDown, PassReport
from smss.store import queue, sent
from smss.store.database import Connection, again_on_conflict
from smss.transports.base import SendFailed, Transport

log = logging.getLogger(__name__)

POLL = 0.1  # seconds between looks at a stop request while waiting for the bookkeeper
PAUSE_CHECK_EVERY = 1.0  # seconds: how often a draining pipeline looks for an operator's pause
ALIVE_EVERY = 0.05  # seconds: how often the pass timer is told of progress (two syscalls)
MAX_CLAIM = 1000  # messages claimed (and marked) in one round at most

FINISH, DEFER, RELEASE = "finish", "defer", "release"


class Dispatcher(Protocol):
    """What the windowed path uses of ``check_and_send.dispatcher.Dispatcher``."""

    conn: Connection
    transport: Transport
    owner: str
    claim_routes: Optional[List[str]]
    settings: "object"  # dispatcher.Settings: journal, events, batch_size, claim_lease
    given_up: bool  # the watchdog gave the pass up: leases are no longer renewed

    def stopping(self) -> bool: ...
    def alive(self, extra_seconds: float = 0.0) -> None: ...
    def paused_now(self, conn: Connection) -> bool: ...
    def outcome(self, message: queue.Claimed, status: str, attempts: int, *,
                references=(), error: Optional[str] = None) -> dict: ...
    def sent_outcome(self, message: queue.Claimed, outcome: dict) -> sent.Outcome: ...
    def _failed(self, message: queue.Claimed, exc: SendFailed, attempts: int,
                report: PassReport, sink: Optional["Sink"] = None) -> bool: ...
    def still_claimed(self, message_ids: List[int]) -> None: ...
    def journal_many(self, outcomes: List[dict]) -> None: ...
    def recordable(self, conn: Connection, outcomes: List[dict]) -> List[dict]: ...


@dataclass(frozen=True)
class _Op:
    """What the next round does with one message."""

    kind: str
    message: queue.Claimed
    outcome: Optional[dict] = None  # FINISH: the journal's form of the outcome
    attempts: int = 0  # DEFER
    retry_at: Optional[datetime] = None
    error: str = ""


class Sink:
    """Where ``Dispatcher._failed`` and the windowed path put an outcome: the pipeline's
    next round (group commit)."""

    def __init__(self, pipeline: "Pipeline") -> None:
        self.pipeline = pipeline

    def finish(self, message: queue.Claimed, outcome: dict) -> None:
        self.pipeline.put(_Op(FINISH, message, outcome))

    def defer(self, message: queue.Claimed, attempts: int, retry_at: datetime,
              error: str) -> None:
        self.pipeline.put(_Op(DEFER, message, attempts=attempts, retry_at=retry_at,
                              error=error))

    def release(self, message: queue.Claimed) -> None:
        self.pipeline.put(_Op(RELEASE, message))


class Pipeline:
    """One run of the windowed path: the feed the transport pulls from, the bookkeeper
    thread, and what is still claimed.  The dispatcher's connection belongs to the
    bookkeeper while it runs."""

    def __init__(self, dispatcher: Dispatcher, ahead: int) -> None:
        self.dispatcher = dispatcher
        self.conn = dispatcher.conn
        self.ahead = max(1, ahead)
        self._cond = threading.Condition()
        self._ready: Deque[queue.Claimed] = deque()  # marked, not yet handed out
        self._ops: List[_Op] = []  # outcomes for the next round
        self._claimed: Dict[int, queue.Claimed] = {}  # ours, outcome not yet settled
        self._handed: Dict[int, queue.Claimed] = {}  # given to the transport, no outcome
        self._taken = 0  # messages handed out since the last claim began
        self._starved = False  # the transport waited for a mark since the last claim
        self._exhausted = False  # a claim found fewer due messages than it asked for
        self._closing = False
        self._busy = False  # a round is being committed
        self.error: Optional[BaseException] = None  # the round that failed
        self.rounds = 0
        self.paused = False  # an operator paused the transport meanwhile
        self._pause_checked = time.monotonic()  # Dispatcher.send_due looked just before
        self.lease = Lease(dispatcher.settings.claim_lease)
        self.lease.renewed(self.lease.begin())  # nothing claimed yet: nothing to renew
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"bookkeeper {dispatcher.transport.name}")

    # -- the dispatcher's side (its own thread)

    def start(self) -> None:
        self._thread.start()

    def feed(self) -> Iterator[Tuple[int, str, str]]:
        """The messages for ``Transport.send_many``, each once its mark is committed."""
        stopping = self.dispatcher.stopping
        cond = self._cond
        while True:
            with cond:
                while not self._ready or not self.lease.fresh():
                    if self.error is not None or self._exhausted or stopping():
                        return
                    self._starved = bool(not self._ready)
                    cond.notify_all()
                    cond.wait(POLL)
                message = self._ready.popleft()
                self._handed[message.id] = message
                self._taken += 1
                if len(self._ready) < self.ahead:
                    cond.notify_all()  # the bookkeeper may claim the next ones
            yield message.id, message.phone, message.text

    def outcome_for(self, message_id: int) -> queue.Claimed:
        """The message an outcome of the transport is about; it is no longer in flight."""
        with self._cond:
            return self._handed.pop(message_id)

    def put(self, op: _Op) -> None:
        """Hand an outcome to the next round; after a failed round a finished outcome is
        journaled at once instead (the database is away)."""
        with self._cond:
            if self.error is None:
                self._ops.append(op)
                if not self._busy:
                    self._cond.notify_all()
                return
        if op.kind == FINISH:
            assert op.outcome is not None
            self._journal([op.outcome])
            with self._cond:
                self._claimed.pop(op.message.id, None)

    def close(self, transport_done: bool) -> List[int]:
        """Let the bookkeeper commit what is left and stop; returns the ids still claimed
        and unsettled.  ``transport_done``: ``send_many`` ended by itself, so what it was
        handed and did not yield was not submitted and goes back without an attempt."""
        with self._cond:
            unsent = list(self._ready)
            self._ready.clear()
            if transport_done:
                unsent += list(self._handed.values())
                self._handed.clear()
            for message in unsent:
                self._ops.append(_Op(RELEASE, message))
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        with self._cond:
            return list(self._claimed)

    # -- the bookkeeper

    def _wanted(self) -> int:
        """How many messages to claim in the next round (under the lock)."""
        if (self._closing or self._exhausted or self.error is not None
                or self.dispatcher.stopping() or len(self._ready) >= self.ahead):
            return 0
        taken = self._taken * 2 if self._starved else self._taken
        return max(self.ahead, min(taken, MAX_CLAIM))

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while True:
                    ops, wanted = self._ops, self._wanted()
                    renewing = (self.lease.due() and bool(self._claimed)
                                and not self.dispatcher.given_up)
                    if ops or wanted or renewing or self._closing:
                        break
                    cond.wait(POLL)
                self._ops = []
                self._busy = True
                if wanted:
                    self._taken, self._starved = 0, False
                closing = self._closing
                settled = {op.message.id for op in ops}
                still = [i for i in self._claimed if i not in settled]
                held = still if renewing else []
            if not ops and not wanted and not renewing and closing:
                return
            began = self.lease.begin()
            try:
                claimed, lost = self._round_again_on_conflict(ops, wanted, held)
            except BaseException as exc:  # noqa: BLE001 - whatever failed, keep the outcomes
                self._failed(ops, exc)
                return
            with cond:
                self.rounds += 1
                self._busy = False
                if renewing or not still:  # every claim held is as new as this round
                    self.lease.renewed(began)
                for op in ops:
                    self._claimed.pop(op.message.id, None)
                self._drop(lost)
                for message in claimed:
                    self._claimed[message.id] = message
                self._ready.extend(claimed)
                if len(claimed) < wanted:
                    self._exhausted = True
                cond.notify_all()

    def _drop(self, lost: List[int]) -> None:
        """Claims another dispatcher took over (their lease ran out): not ours to send
        or settle any more (under the lock).  One already handed to the transport is
        the documented "maybe sent" case; its outcome will not be recorded."""
        if not lost:
            return
        gone = set(lost)
        self._ready = deque(m for m in self._ready if m.id not in gone)
        for message_id in lost:
            self._claimed.pop(message_id, None)
            log.warning("message %d: claim taken over by another dispatcher (its lease ran"
                        " out)%s", message_id, "; it was already handed to the transport"
                        if message_id in self._handed else "; not sending it")

    def _round_again_on_conflict(self, ops: List[_Op], wanted: int, held: List[int]
                                 ) -> Tuple[List[queue.Claimed], List[int]]:
        """``_round``, tried again when it lost a race to another Galera node at COMMIT
        (rolled back whole, so nothing of it happened): a conflict is not an outage."""
        return again_on_conflict(
            lambda: self._round(ops, wanted, held),
            on_retry=lambda: log.info("a round lost a race to another node; trying it again"))

    def _round(self, ops: List[_Op], wanted: int, held: List[int]
               ) -> Tuple[List[queue.Claimed], List[int]]:
        """One transaction: the leases of ``held`` renewed, the outcomes, then the next
        claim (marked "sending").  Returns (the claimed, the ids of ``held`` another
        dispatcher took over)."""
        dispatcher = self.dispatcher
        owner = dispatcher.owner
        conn = self.conn
        with conn.transaction():
            renewed = set(queue.renew(conn, owner, held))
            finished = [op for op in ops if op.kind == FINISH]
            if finished:
                kept = {outcome["id"] for outcome in dispatcher.recordable(
                    conn, [op.outcome for op in finished if op.outcome is not None])}
                finished = [op for op in finished if op.message.id in kept]
            if finished:
                outcomes = [dispatcher.sent_outcome(op.message, op.outcome)
                            for op in finished]
                sent.record_many(conn, outcomes)
                queue.delete_many(conn, [op.message.id for op in finished])
                dispatcher.settings.events.finished_many(conn, outcomes)
            for op in ops:
                if op.kind == DEFER:
                    assert op.retry_at is not None
                    queue.defer_row(conn, op.message.id, op.attempts, op.retry_at, op.error,
                                    owner)
            queue.release_rows(conn, [op.message.id for op in ops if op.kind == RELEASE],
                               owner)
            lost = [i for i in held if i not in renewed]
            if not wanted or self._paused():
                return [], lost
            return queue.claim_rows(conn, owner, wanted, dispatcher.claim_routes,
                                    sending=True), lost

    def _paused(self) -> bool:
        """An operator paused the transport while the queue drains (looked at every
        PAUSE_CHECK_EVERY): no more claims; what is marked still goes out."""
        now = time.monotonic()
        if now - self._pause_checked < PAUSE_CHECK_EVERY:
            return False
        self._pause_checked = now
        self.paused = self.dispatcher.paused_now(self.conn)
        return self.paused

    def _failed(self, ops: List[_Op], exc: BaseException) -> None:
        """The round's transaction failed: keep its finished outcomes in the journal."""
        finished = [op for op in ops if op.kind == FINISH]
        try:
            if finished:
                self._journal([op.outcome for op in finished if op.outcome is not None])
        finally:
            with self._cond:
                for op in finished:
                    self._claimed.pop(op.message.id, None)
                self.error = exc
                self._busy = False
                pending, self._ops = self._ops, []
                self._cond.notify_all()
            for op in pending:  # came while the round failed
                self.put(op)

    def _journal(self, outcomes: List[dict]) -> None:
        self.dispatcher.journal_many(outcomes)


def send(dispatcher: Dispatcher, report: PassReport) -> None:
    """Drain the queue through the transport's ``send_many`` until nothing is due, the
    transport goes down, or a stop is asked.  Raises DatabaseDown (after the outcomes
    were journaled) when the database failed."""
    transport = dispatcher.transport
    pipeline = Pipeline(dispatcher, max(transport.window, dispatcher.settings.batch_size))
    sink = Sink(pipeline)
    pipeline.start()
    done = False
    told = 0.0  # when the pass timer was last re-armed
    try:
        for message_id, outcome in transport.send_many(pipeline.feed()):
            message = pipeline.outcome_for(message_id)
            attempts = message.attempts + 1
            if isinstance(outcome, SendFailed):
                dispatcher._failed(message, outcome, attempts, report, sink)
            else:
                sink.finish(message, dispatcher.outcome(message, sent.SENT, attempts,
                                                        references=outcome.references))
                report.sent += 1
                log.info("sent %d to %s (%d part(s), refs %s)", message.id, message.phone,
                         outcome.parts, ",".join(outcome.references) or "-")
            now = time.monotonic()
            if now - told >= ALIVE_EVERY:
                dispatcher.alive(0.0)
                told = now
        done = True
    finally:
        dispatcher.still_claimed(pipeline.close(done))
    if pipeline.paused and transport.name not in report.paused:
        report.paused.append(transport.name)
    if pipeline.error is not None:
        raise DatabaseDown(str(pipeline.error)) from pipeline.error
