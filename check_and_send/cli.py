# PYTHON_ARGCOMPLETE_OK (shell completion: smss.completion)
"""The ``check_and_send`` command: PID lock, passes, kicks, ``--loop``.

One run takes the lock (a kernel flock, free again when its holder dies; the
holder's PID is written in the file), runs a pass, and runs another while a
kick came during it or messages are due.  After releasing the lock it looks at
the queue once more: a message committed while the lock was being released is
never left for cron.  A run that finds the lock held by a live pass tells that
pass to look again (SIGUSR1) and exits 0 at once.

Exit status: 0 when everything due was handled, nothing was due, or another
pass holds the lock; 1 when the transport or database failed (cron mails
it); 2 for bad usage; 3 when the SIM needs a person (PIN, PUK).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import List, Optional, Tuple

from check_and_send.dispatcher import DATABASE, Dispatcher, PassReport, Settings
from check_and_send.hooks import OnReceive
from check_and_send.lanes import Lanes
from smss import completion, logs
from smss.config import Config, ConfigError, load
from smss.events.worker import DeliveryWorker
from smss.helpformat import HelpFormatter
from smss.pidlock import LockHeld, PidLock
from smss.store import migrations, queue
from smss.store.database import UNAVAILABLE_ERRORS, connect_config
from smss.transports.base import OPERATOR, SendFailed

log = logging.getLogger("check_and_send")

EXIT_OK, EXIT_FAILED, EXIT_OPERATOR = 0, 1, 3
MAX_RERUNS = 50  # passes in one run before giving the lock up for cron
DATABASE_MAX_PAUSE = 5.0  # --loop: longest pause between two database connection attempts
TIMEOUT, ERROR = "timeout", "error"  # PassReport.problem_kind of a hung or failed pass


class PassTimeout(Exception):
    """The pass made no progress for [dispatcher] pass_timeout seconds (a hang)."""


class Kicks:
    """SIGUSR1 from a kicked run (or the server): look at the queue again.
    SIGTERM and SIGINT: stop after the message being sent (never in the middle of it)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.stop = threading.Event()
        signal.signal(signal.SIGUSR1, lambda signum, frame: self.event.set())

        def stopping(signum, frame):
            if not self.stop.is_set():
                log.info("signal %d: stopping after the current step", signum)
            self.stop.set()
            self.event.set()  # wakes a waiting loop

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, stopping)

    def take(self) -> bool:
        kicked = self.event.is_set()
        self.event.clear()
        return kicked


EPILOG = """\
A run takes the dispatcher's lock ([dispatcher] lockfile: a kernel flock, free again
when its holder dies, the file holding the holder's PID), runs a pass, and runs
another while a kick came during it or messages are due.  A run that finds the lock
held by a live pass tells that pass to look again (SIGUSR1) and exits 0 at once, so
cron and the server may start it as often as they like.  SIGTERM stops it after the
message being sent.  With --loop, a transport that went down is opened again after
1 s, doubling to [dispatcher] reopen_max_delay; a database outage leaves the
transports open.

exit status:
  0  everything due was handled, nothing was due, or another pass holds the lock
  1  the transport or the database failed (cron mails it)
  2  bad usage or an unusable configuration
  3  the SIM needs a person (PIN, PUK)

environment:
  SMSS_CONFIG  the configuration file when -c is not given

files:
  /etc/smss/smss.conf  the configuration, see smss.conf(5)
  /run/smss/check_and_send  the lock ([dispatcher] lockfile)
  /var/lib/smss  the journal, the delete ledger, the inbox spools ([dispatcher] state_dir)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="check_and_send",
                                     description="send the smss queue and bring received SMS in",
                                     epilog=EPILOG, formatter_class=HelpFormatter)
    parser.add_argument("-c", "--config", metavar="FILE", help="configuration file (default: "
                        "$SMSS_CONFIG or /etc/smss/smss.conf)")
    parser.add_argument("--loop", action="store_true",
                        help="keep running: wait for kicks and new SMS, poll otherwise")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    completion.enable(parser)
    args = parser.parse_args(argv)
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"check_and_send: {exc}", file=sys.stderr)
        return 2
    logs.setup(config.get("dispatcher", "logfile"), config.get("dispatcher", "loglevel"))
    kicks = Kicks()
    lock = PidLock(config.get("dispatcher", "lockfile"), marker="check_and_send")
    if args.loop:
        return run_loop(config, lock, kicks)
    status = EXIT_OK
    for _ in range(MAX_RERUNS):
        try:
            lock.acquire()
        except LockHeld as exc:
            log.info("another pass is running (pid %s); asked it to look again", exc.pid)
            _poke(exc.pid)
            return status
        except OSError as exc:
            log.error("cannot take the lock %s: %s", lock.path, exc)
            return EXIT_FAILED
        try:
            status, stalled = run_passes(config, kicks)
        finally:
            lock.release()
        if status != EXIT_OK or kicks.stop.is_set() or stalled or not _due(config):
            return status
        log.info("messages arrived while the lock was released; running again")
    return status


def _poke(pid: Optional[int]) -> None:
    if pid:
        try:
            os.kill(pid, signal.SIGUSR1)
        except OSError as exc:
            log.info("could not signal pid %s: %s", pid, exc)


def _due(config: Config) -> bool:
    try:
        conn = connect_config(config)
    except UNAVAILABLE_ERRORS:
        return False
    try:
        return queue.due_count(conn) > 0
    except UNAVAILABLE_ERRORS:
        return False
    finally:
        conn.close()


def _alarm(seconds: float) -> None:
    """Arm the pass timer: a pass with no progress for ``seconds`` is stopped."""
    def expired(signum, frame):
        raise PassTimeout(f"pass ran longer than {seconds:g}s without progress")

    signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def _watchdog(seconds: float):
    """The dispatcher's ``alive``: each step forward re-arms a running pass timer, so
    a long pass that keeps sending is never stopped in the middle of an AT+CMGS."""
    def alive(extra_seconds: float = 0.0) -> None:
        if seconds > 0 and signal.getitimer(signal.ITIMER_REAL)[0] > 0:
            signal.setitimer(signal.ITIMER_REAL, seconds + extra_seconds)

    return alive


def _connect(config: Config):
    """A database connection whose schema matches this smss (raises otherwise)."""
    conn = connect_config(config)
    try:
        migrations.check(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _dispatchers(config: Config, conn, kicks: Kicks):
    """(a Dispatcher for the one transport or Lanes of one per [transport:NAME], the
    on_receive starter or None)."""
    from smss import transports

    alive = _watchdog(config.get("dispatcher", "pass_timeout"))

    def lane(seen: Config, name: str = "") -> Dispatcher:
        return Dispatcher(conn, transports.from_config(seen), Settings.from_config(seen, name),
                          sleep=kicks.stop.wait, stopping=kicks.stop.is_set, alive=alive)

    if config.has_named_transports():
        lanes = [lane(config.for_transport(name), name) for name in config.transport_names()]
        dispatcher = Lanes(lanes)
    else:
        lanes = [lane(config)]
        dispatcher = lanes[0]
    hook = OnReceive.from_config(config, [each.transport.name for each in lanes])
    if hook is not None:
        for each in lanes:
            each.on_received = hook.start
    return dispatcher, hook


def run_passes(config: Config, kicks: Kicks) -> Tuple[int, bool]:
    """Passes while work keeps coming, under the lock; returns the exit status and
    whether the last pass was stalled (what is due waits for a paused transport)."""
    try:
        conn = _connect(config)
    except (migrations.SchemaError, *UNAVAILABLE_ERRORS) as exc:
        log.error("database: %s", exc)
        return EXIT_FAILED, False
    try:
        dispatcher, hook = _dispatchers(config, conn, kicks)
    except SendFailed as exc:
        conn.close()
        log.error("%s", exc.reason)
        return (EXIT_OPERATOR if exc.kind == OPERATOR else EXIT_FAILED), False
    timeout = config.get("dispatcher", "pass_timeout")
    try:
        if hook is not None:
            hook.resume(conn)  # programs a runner that died left waiting
        for _ in range(MAX_RERUNS):
            kicks.take()
            _alarm(timeout)
            try:
                report = dispatcher.run_pass()
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            _log_report(report, dispatcher.transport.name)
            if not report.ok:
                return (EXIT_OPERATOR if report.problem_kind == OPERATOR else EXIT_FAILED), False
            if kicks.stop.is_set():
                return EXIT_OK, False
            if not (kicks.take() or report.received or _more_due(report, conn)):
                return EXIT_OK, report.stalled
        return EXIT_OK, False
    except PassTimeout as exc:
        log.error("%s; stopping (claims are released, the next pass goes on)", exc)
        return EXIT_FAILED, False
    except UNAVAILABLE_ERRORS as exc:
        log.error("database: %s", exc)
        return EXIT_FAILED, False
    finally:
        dispatcher.release_claims()
        dispatcher.close()
        conn.close()


def _log_report(report: PassReport, name: str) -> None:
    parts = [f"{value} {label}" for label, value in (
        ("sent", report.sent), ("failed", report.failed), ("deferred", report.deferred),
        ("expired", report.expired), ("received", report.received),
        ("delivery reports", report.reports), ("recovered", report.recovered)) if value]
    if parts or not report.ok:
        log.info("pass via %s: %s%s", name, ", ".join(parts) or "nothing done",
                 f"; stopped: {report.problem}" if report.problem else "")


def run_loop(config: Config, lock: PidLock, kicks: Kicks) -> int:
    """Hold the lock and the transport; a pass on every kick, new SMS, due retry or poll.

    A transport that went down (or did not open) is opened again after its
    ``reopen_delay`` (1 s doubling to ``reopen_max_delay``; see Dispatcher.went_down),
    while kicks and polls go on for the transports still up.  A database outage
    leaves the transports open: a new connection is tried after a pause of 1 s
    doubling to DATABASE_MAX_PAUSE (or at once on a kick).  A hung or failed pass
    starts afresh: the transports are re-opened with the backoff, the connection anew.
    """
    try:
        lock.acquire()
    except LockHeld as exc:
        log.error("another dispatcher holds %s (pid %s)", lock.path, exc.pid)
        return EXIT_FAILED
    except OSError as exc:
        log.error("cannot take the lock %s: %s", lock.path, exc)
        return EXIT_FAILED
    stop = kicks.stop
    poll = config.get("dispatcher", "poll_interval")
    timeout = config.get("dispatcher", "pass_timeout")
    log.info("check_and_send --loop started (poll every %gs)", poll)
    worker = DeliveryWorker(config)  # webhooks and dlr-urls, in threads of their own
    worker.start()
    conn = dispatcher = hook = None
    database_failures = 0
    try:
        while not stop.is_set():
            if conn is None:
                try:
                    conn = _connect(config)
                except (migrations.SchemaError, *UNAVAILABLE_ERRORS) as exc:
                    log.error("database: %s", exc)
                    database_failures += 1
                    _database_pause(kicks, database_failures)
                    continue
                if dispatcher is not None:
                    dispatcher.use_connection(conn)
            if dispatcher is None:
                try:
                    dispatcher, hook = _dispatchers(config, conn, kicks)
                except SendFailed as exc:  # a transport that cannot even be set up
                    log.error("cannot start a pass: %s", exc.reason)
                    stop.wait(config.get("dispatcher", "reopen_max_delay"))
                    continue
            kicks.take()
            report = _loop_pass(dispatcher, hook, conn, timeout)
            _log_report(report, dispatcher.transport.name)
            if stop.is_set():
                break
            fresh_connection = report.problem_kind == DATABASE
            if report.problem_kind in (TIMEOUT, ERROR):
                dispatcher.went_down()  # the device may hang: open it again, with backoff
                fresh_connection = True  # and the connection may be mid-transaction
            if not fresh_connection:
                database_failures = 0
                try:
                    if report.ok and (report.received or _more_due(report, conn)):
                        continue
                    _wait_for_work(dispatcher, conn, kicks, poll, report.ok, report.stalled)
                    continue
                except UNAVAILABLE_ERRORS as exc:
                    log.error("database unavailable: %s", exc)
            dispatcher.release_claims()
            conn.close()
            conn = None
            database_failures += 1
            _database_pause(kicks, database_failures)
    finally:
        if dispatcher is not None:
            dispatcher.release_claims()
            dispatcher.close()
        if conn is not None:
            conn.close()
        worker.stop()
        lock.release()
    log.info("check_and_send --loop stopped")
    return EXIT_OK


def _loop_pass(dispatcher, hook: Optional[OnReceive], conn, timeout: float) -> PassReport:
    """One pass under the pass timer; a pass that raised is a report, not the loop's end."""
    _alarm(timeout)
    try:
        if hook is not None:
            hook.resume(conn)  # programs a runner that died left waiting
        return dispatcher.run_pass()
    except UNAVAILABLE_ERRORS as exc:
        return PassReport(problem=f"database unavailable: {exc}", problem_kind=DATABASE)
    except PassTimeout as exc:
        return PassReport(problem=str(exc), problem_kind=TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - the loop outlives a bad pass: start afresh
        log.exception("the pass failed")
        return PassReport(problem=f"{type(exc).__name__}: {exc}", problem_kind=ERROR)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def database_pause(failures: int) -> float:
    """Pause before connecting again after the ``failures``-th database failure in a
    row: 1 s, doubling, at most DATABASE_MAX_PAUSE."""
    return min(2.0 ** max(0, failures - 1), DATABASE_MAX_PAUSE)


def _database_pause(kicks: Kicks, failures: int) -> None:
    """Wait before reconnecting; a kick (a record the server just committed: the
    database is back) or a stop ends the wait early.  The transports stay open."""
    pause = database_pause(failures)
    log.info("reconnecting to the database in %gs", pause)
    kicks.take()  # a kick from before the failure is answered by the next pass anyway
    if not kicks.stop.is_set():
        kicks.event.wait(pause)


def _more_due(report: PassReport, conn) -> bool:
    """Another pass now would send something (not when what is due waits for a paused
    transport)."""
    return not report.stalled and bool(queue.due_count(conn))


def _wait_for_work(dispatcher, conn, kicks: Kicks, poll: float, ok: bool,
                   stalled: bool = False) -> None:
    """Until a kick, an SMS indication from a transport, the next retry, a closed
    transport's re-open time, or ``poll``.  While every transport is closed, only the
    re-open time (or a stop) ends the wait: a kick could do nothing but open it early.
    After a pass that did not end well, messages already due are not a reason to run
    again at once (they may be waiting for a transport that is down); nor are they
    when they wait for a paused transport (``stalled``): then only ``poll`` or a kick."""
    import time

    from smss.store.database import utcnow

    stop = kicks.stop
    wait = poll
    reopen = dispatcher.reopen_in()
    if reopen is not None:
        wait = min(wait, reopen)
    if dispatcher.all_down():
        stop.wait(wait)
        return
    next_due = None if stalled else queue.next_due(conn)
    if next_due is not None:
        until_due = (next_due - utcnow()).total_seconds()
        if ok or until_due > 0:
            wait = max(0.0, min(wait, until_due))
    deadline = time.monotonic() + wait
    while not stop.is_set() and not kicks.event.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        try:
            if dispatcher.transport.wait(min(1.0, remaining), kicks.event):
                return
        except SendFailed:
            return  # the next pass finds out and reports it


if __name__ == "__main__":
    sys.exit(main())
