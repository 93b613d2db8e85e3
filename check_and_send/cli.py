# PYTHON_ARGCOMPLETE_OK (shell completion: smss.completion)
"""The ``check_and_send`` command: PID lock, passes, kicks, ``--loop``.

One run takes the PID lock (a stale one from a dead pass is broken), runs a
pass, and runs another while a kick came during it or messages are due.
After releasing the lock it looks at the queue once more: a message
committed while the lock was being released is never left for cron.  A run
that finds the lock held by a live pass tells that pass to look again
(SIGUSR1) and exits 0 at once.

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

from check_and_send.dispatcher import Dispatcher, PassReport, Settings
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
A run takes the dispatcher's lock ([dispatcher] lockfile), runs a pass, and runs
another while a kick came during it or messages are due.  A run that finds the lock
held by a live pass tells that pass to look again (SIGUSR1) and exits 0 at once, so
cron and the server may start it as often as they like.  SIGTERM stops it after the
message being sent.

exit status:
  0  everything due was handled, nothing was due, or another pass holds the lock
  1  the transport or the database failed (cron mails it)
  2  bad usage or an unusable configuration
  3  the SIM needs a person (PIN, PUK)

environment:
  SMSS_CONFIG  the configuration file when -c is not given

files:
  /etc/smss/smss.conf  the configuration, see smss.conf(5)
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


def _open(config: Config, kicks: Kicks):
    from smss import transports

    conn = connect_config(config)
    migrations.check(conn)
    hook = OnReceive.from_config(config)
    alive = _watchdog(config.get("dispatcher", "pass_timeout"))

    def lane(seen: Config, name: str = "") -> Dispatcher:
        return Dispatcher(conn, transports.from_config(seen), Settings.from_config(seen, name),
                          on_received=hook.start if hook else None,
                          sleep=kicks.stop.wait, stopping=kicks.stop.is_set, alive=alive)

    if not config.has_named_transports():
        return conn, lane(config)
    return conn, Lanes([lane(config.for_transport(name), name)
                        for name in config.transport_names()])


def run_passes(config: Config, kicks: Kicks) -> Tuple[int, bool]:
    """Passes while work keeps coming, under the lock; returns the exit status and
    whether the last pass was stalled (what is due waits for a paused transport)."""
    try:
        conn, dispatcher = _open(config, kicks)
    except (migrations.SchemaError, *UNAVAILABLE_ERRORS) as exc:
        log.error("database: %s", exc)
        return EXIT_FAILED, False
    except SendFailed as exc:
        log.error("%s", exc.reason)
        return (EXIT_OPERATOR if exc.kind == OPERATOR else EXIT_FAILED), False
    timeout = config.get("dispatcher", "pass_timeout")
    try:
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
    """Hold the lock and the transport; a pass on every kick, new SMS, due retry or poll."""
    try:
        lock.acquire()
    except LockHeld as exc:
        log.error("another dispatcher holds %s (pid %s)", lock.path, exc.pid)
        return EXIT_FAILED
    stop = kicks.stop
    poll = config.get("dispatcher", "poll_interval")
    timeout = config.get("dispatcher", "pass_timeout")
    log.info("check_and_send --loop started (poll every %gs)", poll)
    worker = DeliveryWorker(config)  # webhooks and dlr-urls, in threads of their own
    worker.start()
    conn = dispatcher = None
    backoff = 0.0
    try:
        while not stop.is_set():
            if backoff:
                kicks.event.wait(backoff)
                if stop.is_set():
                    break
                kicks.take()  # a kick ended the pause early: this attempt answers it
            if dispatcher is None:
                try:
                    conn, dispatcher = _open(config, kicks)
                except (migrations.SchemaError, SendFailed, *UNAVAILABLE_ERRORS) as exc:
                    log.error("cannot start a pass: %s", getattr(exc, "reason", exc))
                    backoff = _next_backoff(backoff)
                    continue
            kicks.take()
            _alarm(timeout)
            try:
                report = dispatcher.run_pass()
            except PassTimeout as exc:
                report = PassReport(problem=str(exc), problem_kind="timeout")
            except Exception as exc:  # noqa: BLE001 - the loop outlives a bad pass: start afresh
                log.exception("the pass failed")
                report = PassReport(problem=f"{type(exc).__name__}: {exc}", problem_kind="error")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            _log_report(report, dispatcher.transport.name)
            if report.ok and not stop.is_set():
                try:
                    if report.received or _more_due(report, conn):
                        backoff = 0.0
                        continue
                    _wait_for_work(dispatcher, conn, kicks, stop, poll, report.stalled)
                except UNAVAILABLE_ERRORS as exc:
                    report.problem = f"database unavailable: {exc}"
                except Exception as exc:  # noqa: BLE001 - as above: a fresh connection follows
                    log.exception("between passes")
                    report.problem = f"{type(exc).__name__}: {exc}"
            if not report.ok:  # start again from a fresh connection after a pause
                log.info("re-opening in %gs", _next_backoff(backoff))
                dispatcher.release_claims()
                dispatcher.close()
                conn.close()
                conn = dispatcher = None
                backoff = _next_backoff(backoff)
                continue
            backoff = 0.0
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


def _next_backoff(backoff: float) -> float:
    """Pause before re-opening after a failure: 1 s (a link blip), doubling to 5 minutes."""
    return min(max(backoff * 2, 1.0), 300.0)


def _more_due(report: PassReport, conn) -> bool:
    """Another pass now would send something (not when what is due waits for a paused
    transport)."""
    return not report.stalled and bool(queue.due_count(conn))


def _wait_for_work(dispatcher, conn, kicks: Kicks, stop: threading.Event, poll: float,
                   stalled: bool = False) -> None:
    """Until a kick, an SMS indication from the transport, the next retry, or ``poll``
    (``stalled``: what is due waits for a paused transport; only ``poll`` or a kick)."""
    import time

    from smss.store.database import utcnow

    wait = poll
    next_due = None if stalled else queue.next_due(conn)
    if next_due is not None:
        wait = max(0.0, min(wait, (next_due - utcnow()).total_seconds()))
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
