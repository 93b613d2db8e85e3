"""The transports of one dispatcher process, all at once: one lane per transport.

A lane is a ``Dispatcher`` driven in a thread of its own, with its own database
connection (a ``Connection`` serves one thread at a time), its own owner id for
claims (``host:pid/NAME``), its own rate limit, re-open backoff, delete ledger and
transport state; a configuration without ``[transport:NAME]`` sections has one
lane.  SQLite queues the lanes' writes (busy timeout); MariaDB hands them
different rows (``FOR UPDATE SKIP LOCKED``).  A lane that shares the queue with
others and sends one message at a time claims one at a time, so a burst is spread
over every transport free at the moment.

Routing lives in ``msg.route``, set when the message was accepted
(``smss.spooler.validate``): NULL for a message any transport may send; ``NAME``
when the client pinned a transport (``#phone@NAME;text``): only that one sends it,
and it waits while NAME is down; ``~NAME`` when a number-prefix rule ([dispatcher]
routes) prefers it: that transport sends it, and while it is down (it did not
open, lost its link, needs a PIN, hung) or an operator paused it, the other lanes
claim it too.  Which lanes
are down is the one thing the lanes share (``Board``); a lane that goes down while
messages the others may take are due (those, or one it gave back) wakes them.

Each lane's pass runs under its own timer: every step forward re-arms it
(``Lane.alive``), and the watchdog (``Lanes.watch``, in the main thread, which
also turns signals into kicks and the stop) gives up on a lane whose pass made no
progress for ``pass_timeout``: it aborts that lane's transport, so the I/O it is
blocked in fails at once, and the pass ends as timed out (its claims released,
its transport opened again later).  The other lanes never wait for it.

``Lanes.run_once`` is one ``check_and_send`` run: each lane runs passes while it
has work (a kick, something received, messages due that it may claim), then
waits idle; the run ends when every lane is idle or finished, so an idle lane
still takes over the messages of one that goes down later.  A lane that went
down, or that the database stopped, is finished for the run.  ``Lanes.run_loop``
is ``--loop``: each lane passes on a kick that finds messages for it, on a new SMS
its transport announces, on its next retry, when its look at the queue every
``queue_check_interval`` finds messages due for it (another site's spooler accepted
them and kicked only its own dispatcher, which may be down), or every
``poll_interval``; a lane
that went down is opened again after its backoff while the others go on; a lane
that lost the database connects again after a pause (1 s doubling to
``DATABASE_MAX_PAUSE``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterable, List, Optional, Set

from check_and_send.dispatcher import DATABASE, Dispatcher, PassReport
from smss.store import migrations, queue
from smss.store.database import UNAVAILABLE_ERRORS, Connection, utcnow
from smss.transports.base import OPERATOR, SendFailed

log = logging.getLogger(__name__)

PREFERRED = "~"
TIMEOUT, ERROR = "timeout", "error"  # PassReport.problem_kind of a hung or failed pass
MAX_RERUNS = 50  # passes of one lane in one run before it leaves the rest to cron
DATABASE_MAX_PAUSE = 5.0  # --loop: longest pause between two database connection attempts
ABANDON_AFTER = 10.0  # seconds a lane given up by the watchdog has to end its pass


def routes_for(name: str, down: Iterable[str]) -> List[str]:
    """What the lane ``name`` claims besides unrouted messages."""
    return [name, PREFERRED + name] + [PREFERRED + other for other in sorted(down)
                                       if other != name]


def database_pause(failures: int) -> float:
    """Pause before connecting again after the ``failures``-th database failure in a
    row: 1 s, doubling, at most DATABASE_MAX_PAUSE."""
    return min(2.0 ** max(0, failures - 1), DATABASE_MAX_PAUSE)


class Board:
    """What the lanes of a process share: which of them are down (the others then claim
    the messages that prefer them) and, in a one-shot run, whether every lane is idle."""

    def __init__(self, routing: bool) -> None:
        self.routing = routing  # [transport:NAME] sections: messages carry routes
        self.lanes: List["Lane"] = []
        self._changed = threading.Condition()
        self._down: Set[str] = set()
        self._idle: Set[str] = set()
        self._finished: Set[str] = set()
        self.over = False  # one-shot: every lane idle or finished; the idle ones end

    def add(self, lane: "Lane") -> None:
        self.lanes.append(lane)
        self._reroute()

    def _reroute(self) -> None:
        if self.routing:
            for lane in self.lanes:
                lane.dispatcher.claim_routes = routes_for(lane.name, self._down)

    def went_down(self, lane: "Lane") -> None:
        """``lane`` is down: the others claim what prefers it, and those idle look now."""
        with self._changed:
            if lane.name in self._down:
                return
            self._down.add(lane.name)
            self._reroute()
        others = [other for other in self.lanes if other is not lane]
        if others and lane.due_for_others():
            log.info("%s is down; the other transports look at the queue", lane.name)
            self.kick(others)

    def came_up(self, lane: "Lane") -> None:
        with self._changed:
            if lane.name in self._down:
                self._down.discard(lane.name)
                self._reroute()

    def kick(self, lanes: Optional[Iterable["Lane"]] = None) -> None:
        """Wake ``lanes`` (default: all) to look at the queue."""
        with self._changed:
            for lane in (self.lanes if lanes is None else lanes):
                lane.kick.set()
            self._changed.notify_all()

    # -- one-shot runs

    def idle(self, lane: "Lane") -> bool:
        """Wait until ``lane`` is kicked (True: run again) or the run is over (False)."""
        with self._changed:
            self._idle.add(lane.name)
            self._settle()
            while not lane.kick.is_set() and not self.over:
                self._changed.wait()
            self._idle.discard(lane.name)
            return lane.kick.is_set()

    def finished(self, lane: "Lane") -> None:
        with self._changed:
            self._finished.add(lane.name)
            self._settle()

    def end(self) -> None:
        """Stop waiting for kicks (a stop was asked for)."""
        with self._changed:
            self.over = True
            self._changed.notify_all()

    def _settle(self) -> None:
        everyone = {lane.name for lane in self.lanes}
        quiet = self._idle | self._finished
        if quiet >= everyone and not any(lane.kick.is_set() for lane in self.lanes
                                         if lane.name in self._idle):
            self.over = True
            self._changed.notify_all()


class Lane:
    """One transport's dispatcher in a thread of its own."""

    def __init__(self, name: str, dispatcher: Dispatcher, board: Board,
                 connect: Callable[[], Connection], stop: threading.Event,
                 pass_timeout: float, before_pass: Callable[[Connection], None] = lambda c: None
                 ) -> None:
        self.name = name
        self.dispatcher = dispatcher
        dispatcher.alive = self.alive
        self.board = board
        self.connect = connect
        self.stop = stop
        self.pass_timeout = pass_timeout
        self.before_pass = before_pass  # on_receive's runner for what waits
        self.kick = threading.Event()  # look at the queue (SIGUSR1, a lane went down, stop)
        self.conn: Optional[Connection] = None
        self.problem: Optional[PassReport] = None  # one-shot: why the lane finished early
        self.last_report: Optional[PassReport] = None
        self.thread: Optional[threading.Thread] = None
        self._timer = threading.Lock()
        self._deadline: Optional[float] = None  # monotonic; None: no pass running
        self._aborted_at: Optional[float] = None
        self.abandoned = False  # did not end its pass after the watchdog gave it up
        board.add(self)

    # -- the pass timer

    def alive(self, extra_seconds: float = 0.0) -> None:
        """A step forward (the dispatcher's ``alive``): the running pass gets another
        ``pass_timeout`` (plus ``extra_seconds``, a rate-limit wait) without progress."""
        with self._timer:
            if self._deadline is not None and self._aborted_at is None:
                self._deadline = time.monotonic() + self.pass_timeout + extra_seconds

    def watch(self, now: float) -> None:
        """From the watchdog: give up on a pass past its deadline (abort its transport)."""
        with self._timer:  # (so the abort can never reach the next pass's transport)
            if self._deadline is None or self._aborted_at is not None or now < self._deadline:
                return
            self._aborted_at = now
            self.dispatcher.given_up = True  # its claims' leases run out from now on
            reason = f"pass ran longer than {self.pass_timeout:g}s without progress"
            log.error("%s: %s; giving the device up (claims are released, it is opened"
                      " again later)", self.name, reason)
            try:
                self.dispatcher.transport.abort(reason)
            except Exception:  # noqa: BLE001 - the watchdog must go on watching the others
                log.exception("%s: aborting the transport failed", self.name)

    def stuck(self, now: float) -> bool:
        """Given up by the watchdog ABANDON_AFTER ago and still in its pass."""
        with self._timer:
            aborted = self._aborted_at
        return (aborted is not None and now - aborted >= ABANDON_AFTER
                and self.thread is not None and self.thread.is_alive())

    # -- one pass

    def run_pass(self) -> PassReport:
        """One pass under the timer; a pass that raised is a report, not the lane's end."""
        with self._timer:
            self._aborted_at = None
            self.dispatcher.given_up = False
            self._deadline = time.monotonic() + self.pass_timeout if self.pass_timeout > 0 \
                else None
        try:
            self.before_pass(self.conn)
            report = self.dispatcher.run_pass()
        except UNAVAILABLE_ERRORS as exc:
            report = PassReport(problem=f"database unavailable: {exc}", problem_kind=DATABASE)
        except Exception as exc:  # noqa: BLE001 - the lane outlives a bad pass: start afresh
            log.exception("%s: the pass failed", self.name)
            report = PassReport(problem=f"{type(exc).__name__}: {exc}", problem_kind=ERROR)
        finally:
            with self._timer:
                self._deadline = None
                aborted = self._aborted_at is not None
        if aborted:
            report.problem = f"pass ran longer than {self.pass_timeout:g}s without progress"
            report.problem_kind = TIMEOUT
        log_report(report, self.name)
        if report.problem_kind in (TIMEOUT, ERROR) and self.dispatcher.reopen_in() is None:
            self.dispatcher.went_down()  # the device may hang: open it again, with backoff
        self.last_report = report
        if report.problem_kind not in (None, DATABASE) or (report.ok and report.paused):
            self.board.went_down(self)  # (paused: not a problem, but it sends nothing)
        elif report.ok:
            self.board.came_up(self)
        return report

    def due(self) -> int:
        """Messages due now that this lane may claim."""
        return queue.due_count(self.conn, self.dispatcher.claim_routes)

    def _more_due(self, report: PassReport) -> bool:
        """Another pass now would send something (not when what is due waits for this
        lane's transport, paused by an operator)."""
        return not report.stalled and bool(self.due())

    def due_for_others(self) -> int:
        """Messages due now that the other lanes may take while this one is down: those
        without a route (one it gave back, say) and those that prefer it."""
        if self.conn is None:
            return 0
        try:
            return queue.due_count(self.conn, [PREFERRED + self.name])
        except UNAVAILABLE_ERRORS:
            return 0

    def _open_connection(self) -> bool:
        try:
            self.conn = self.connect()
        except (migrations.SchemaError, *UNAVAILABLE_ERRORS) as exc:
            log.error("%s: database: %s", self.name, exc)
            return False
        self.dispatcher.use_connection(self.conn)
        return True

    def _close_connection(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception as exc:  # noqa: BLE001 - it is being given up anyway
                log.debug("%s: closing the database connection: %s", self.name, exc)
            self.conn = None

    def _finish(self) -> None:
        if self.conn is not None:
            self.dispatcher.release_claims()
        self.dispatcher.close()
        self._close_connection()

    # -- one-shot

    def run_once(self) -> None:
        """Passes while there is work, then idle until kicked or the run is over."""
        try:
            if not self._open_connection():
                self.problem = PassReport(problem="database unavailable",
                                          problem_kind=DATABASE)
                return
            for _ in range(MAX_RERUNS):
                self.kick.clear()
                report = self.run_pass()
                if not report.ok:
                    self.problem = report
                    return
                if self.stop.is_set():
                    return
                if self.kick.is_set() or report.received or self._more_due(report):
                    continue
                if not self.board.idle(self) or self.stop.is_set():
                    return
        except UNAVAILABLE_ERRORS as exc:
            log.error("%s: database: %s", self.name, exc)
            self.problem = PassReport(problem=f"database unavailable: {exc}",
                                      problem_kind=DATABASE)
        finally:
            self._finish()
            self.board.finished(self)

    # -- --loop

    def run_loop(self, poll: float, queue_check: float = 0.0) -> None:
        """Until the stop: a pass whenever there may be work (see the module docstring);
        ``queue_check``: seconds between two looks at the queue while idle (0: none)."""
        failures = 0
        try:
            while not self.stop.is_set():
                if self.conn is None and not self._open_connection():
                    failures += 1
                    self._database_pause(failures)
                    continue
                self.kick.clear()
                report = self.run_pass()
                if self.stop.is_set():
                    break
                if report.problem_kind not in (DATABASE, TIMEOUT, ERROR):
                    failures = 0
                    try:
                        if report.ok and (report.received or self._more_due(report)):
                            continue
                        self._wait_for_work(poll, report.ok, report.stalled, queue_check)
                        continue
                    except UNAVAILABLE_ERRORS as exc:
                        log.error("%s: database unavailable: %s", self.name, exc)
                    except Exception:  # noqa: BLE001 - the lane outlives it: start afresh
                        log.exception("%s: waiting for work failed", self.name)
                # a fresh connection: the old one is lost, or may be mid-transaction
                self.dispatcher.release_claims()
                self._close_connection()
                failures += 1
                self._database_pause(failures)
        finally:
            self._finish()

    def _database_pause(self, failures: int) -> None:
        """Wait before reconnecting; a kick (a record the server just committed: the
        database is back) or a stop ends the wait early.  The transport stays open."""
        pause = database_pause(failures)
        log.info("%s: reconnecting to the database in %gs", self.name, pause)
        self.kick.clear()  # a kick from before the failure is answered by the next pass
        if not self.stop.is_set():
            self.kick.wait(pause)

    def _wait_for_work(self, poll: float, ok: bool, stalled: bool = False,
                       queue_check: float = 0.0) -> None:
        """Until a kick finds messages this lane may claim, its transport announces an SMS,
        its next retry, its transport's re-open time, a look at the queue every
        ``queue_check`` seconds finds messages due for it, or ``poll``.  While its
        transport is closed only the re-open time (or a stop) ends the wait: a kick could
        do nothing but open it early.  After a pass that did not end well, messages already
        due are not a reason to run again at once (they may be waiting for a transport that
        is down); nor are they while this lane's transport is paused (``stalled``): then
        only ``poll`` or a kick, and no looks at the queue."""
        wait = poll
        reopen = self.dispatcher.reopen_in()
        if reopen is not None:
            self.stop.wait(min(wait, reopen))
            return
        next_due = None if stalled else queue.next_due(self.conn, self.dispatcher.claim_routes)
        if next_due is not None:
            until_due = (next_due - utcnow()).total_seconds()
            if ok or until_due > 0:
                wait = max(0.0, min(wait, until_due))
        deadline = time.monotonic() + wait
        looks = queue_check > 0 and ok and not stalled
        next_look = time.monotonic() + queue_check
        transport = self.dispatcher.transport
        while not self.stop.is_set():
            if self.kick.is_set():
                self.kick.clear()
                if self.due():
                    return
            now = time.monotonic()
            if looks and now >= next_look:
                if self.due():  # one indexed count (msg_due)
                    log.debug("%s: messages due in the queue", self.name)
                    return
                next_look = now + queue_check
            remaining = deadline - now
            if remaining <= 0:
                return
            step = min(1.0, remaining, max(0.0, next_look - now)) if looks \
                else min(1.0, remaining)
            try:
                if transport.wait(step, self.kick):
                    return
            except SendFailed:
                return  # the next pass finds out and reports it


class Lanes:
    """The lanes of one process, their threads, and the watchdog (run in the main thread
    by ``supervise``)."""

    def __init__(self, board: Board, stop: threading.Event,
                 lane_ended: Callable[[], None] = lambda: None) -> None:
        self.board = board
        self.stop = stop
        self.lane_ended = lane_ended  # wakes the main thread

    @property
    def lanes(self) -> List[Lane]:
        return self.board.lanes

    @property
    def name(self) -> str:
        return "+".join(lane.name for lane in self.lanes)

    def start(self, target: Callable[[Lane], None]) -> None:
        tag = len(self.lanes) > 1
        for lane in self.lanes:
            lane.thread = threading.Thread(target=self._run, args=(target, lane), daemon=True,
                                           name=f"lane {lane.name}")
            lane.thread.lane_tag = f"/{lane.name}" if tag else ""  # see LaneTag
            lane.thread.start()

    def _run(self, target: Callable[[Lane], None], lane: Lane) -> None:
        try:
            target(lane)
        except Exception:  # noqa: BLE001 - a lane that dies must say so
            log.exception("%s: the lane stopped", lane.name)
            if lane.problem is None:
                lane.problem = PassReport(problem="the lane stopped", problem_kind=ERROR)
            self.board.finished(lane)
        finally:
            self.lane_ended()

    def kick(self) -> None:
        self.board.kick()

    def stopping(self) -> None:
        """After ``stop`` was set: wake every lane so each ends after its current step."""
        self.board.end()
        self.board.kick()

    def watch(self) -> None:
        now = time.monotonic()
        for lane in self.lanes:
            lane.watch(now)
            if not lane.abandoned and lane.stuck(now):
                lane.abandoned = True
                log.error("%s did not end its pass %gs after it was given up; leaving it",
                          lane.name, ABANDON_AFTER)
                if lane.problem is None:
                    lane.problem = PassReport(problem="hung", problem_kind=TIMEOUT)
                self.board.finished(lane)

    def running(self) -> bool:
        """Some lane's thread still runs (one given up and stuck does not count)."""
        return any(lane.thread is not None and lane.thread.is_alive() and not lane.abandoned
                   for lane in self.lanes)

    def stalled(self) -> bool:
        """A lane's last pass found its transport paused and moved nothing: what is due
        may be waiting for it, so running again at once would do nothing either."""
        return any(lane.last_report is not None and lane.last_report.stalled
                   for lane in self.lanes)

    def exit_kind(self) -> Optional[str]:
        """OPERATOR when a lane needs a person, another problem kind when a lane failed,
        None when every lane ended well."""
        kinds = [lane.problem.problem_kind for lane in self.lanes if lane.problem is not None]
        if not kinds:
            return None
        return OPERATOR if OPERATOR in kinds else (kinds[0] or ERROR)


class LaneTag(logging.Filter):
    """Adds ``lane`` to every record: ``/NAME`` in the thread of one of several lanes,
    else nothing (the log format shows ``[PID/NAME]``, so each line says its modem)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.lane = getattr(threading.current_thread(), "lane_tag", "")
        return True


def log_report(report: PassReport, name: str) -> None:
    parts = [f"{value} {label}" for label, value in (
        ("sent", report.sent), ("failed", report.failed), ("deferred", report.deferred),
        ("expired", report.expired), ("received", report.received),
        ("delivery reports", report.reports), ("recovered", report.recovered)) if value]
    if parts or not report.ok:
        log.info("pass via %s: %s%s", name, ", ".join(parts) or "nothing done",
                 f"; stopped: {report.problem}" if report.problem else "")
