# PYTHON_ARGCOMPLETE_OK (shell completion: smss.completion)
"""The ``check_and_send`` command: PID lock, signals, the lanes' threads, ``--loop``.

One run takes the lock (a kernel flock, free again when its holder dies; the
holder's PID is written in the file) and starts one lane per transport
(``check_and_send.lanes``): each runs passes while it has work, all at the same
time.  The main thread turns signals into kicks and the stop and runs the
watchdog of every lane's pass timer.  After releasing the lock it looks at the
queue once more: a message committed while the lock was being released is never
left for cron.  A run that finds the lock held by a live pass tells that pass to
look again (SIGUSR1) and exits 0 at once.

Exit status: 0 when everything due was handled, nothing was due, or another
pass holds the lock; 1 when a transport or the database failed (cron mails
it); 2 for bad usage; 3 when a SIM needs a person (PIN, PUK).
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import sys
import threading
from typing import List, Optional, Tuple

from check_and_send.dispatcher import Dispatcher, Settings
from check_and_send.hooks import OnReceive
from check_and_send.lanes import Board, Lane, Lanes, LaneTag
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
MAX_RERUNS = 50  # runs after a lock release before leaving the queue to cron
TICK = 0.2  # seconds between two looks of the watchdog


class Signals:
    """SIGUSR1 from a kicked run (or the server): look at the queue again.  SIGTERM and
    SIGINT: stop after the message being sent (never in the middle of it).

    A handler only notes the signal and wakes the main thread (``signal.set_wakeup_fd``),
    which passes it on to the lanes (``supervise``): a handler that set an Event or
    logged could deadlock on a lock the main thread holds at that moment."""

    def __init__(self) -> None:
        self.kicked = False
        self.stopping = False
        self.stop = threading.Event()  # set by the main thread once it saw ``stopping``
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGUSR1, self._kick)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)

    def _kick(self, signum, frame) -> None:
        self.kicked = True

    def _stop(self, signum, frame) -> None:
        self.stopping = True

    def wait(self, timeout: float) -> None:
        """Until a signal arrives or ``timeout`` passes (main thread)."""
        try:
            ready, _, _ = select.select([self._wake_r], [], [], timeout)
        except InterruptedError:
            return
        if ready:
            try:
                while os.read(self._wake_r, 512):
                    pass
            except BlockingIOError:
                pass

    def take_kick(self) -> bool:
        kicked, self.kicked = self.kicked, False
        return kicked

    def wake(self) -> None:
        """End the main thread's ``wait`` now (from any thread: a lane that ended)."""
        try:
            os.write(self._wake_w, b"\0")
        except OSError:  # full: it is awake anyway
            pass


EPILOG = """\
A run takes the dispatcher's lock ([dispatcher] lockfile: a kernel flock, free again
when its holder dies, the file holding the holder's PID), runs a pass, and runs
another while a kick came during it or messages are due.  Every transport
([transport:NAME]) runs its passes at the same time, in a thread of its own.  A run
that finds the lock held by a live pass tells that pass to look again (SIGUSR1) and
exits 0 at once, so cron and the server may start it as often as they like.  SIGTERM
stops each transport after the message it is sending.  With --loop, a transport that
went down is opened again after 1 s, doubling to [dispatcher] reopen_max_delay,
while the others go on; a database outage leaves the transports open.

exit status:
  0  everything due was handled, nothing was due, or another pass holds the lock
  1  a transport or the database failed (cron mails it)
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
    handler = logs.setup(config.get("dispatcher", "logfile"), config.get("dispatcher", "loglevel"))
    handler.addFilter(LaneTag())
    handler.setFormatter(logging.Formatter(logs.FORMAT.replace("%(process)d]",
                                                               "%(process)d%(lane)s]")))
    signals = Signals()
    lock = PidLock(config.get("dispatcher", "lockfile"), marker="check_and_send")
    if args.loop:
        return run_loop(config, lock, signals)
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
            status, stalled = run_passes(config, signals)
        finally:
            lock.release()
        if status != EXIT_OK or signals.stopping or stalled or not _due(config):
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


def _connect(config: Config):
    """A database connection whose schema matches this smss (raises otherwise)."""
    conn = connect_config(config)
    try:
        migrations.check(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _lanes(config: Config, signals: Signals) -> Lanes:
    """A lane for the one transport, or one per [transport:NAME], not started yet.
    Raises SendFailed for a transport that cannot even be set up."""
    from smss import transports

    if "claim_timeout" in config.raw.get("dispatcher", {}):
        log.warning("[dispatcher] claim_timeout is ignored: claims are leases now, taken"
                    " over %gs after their dispatcher stopped renewing them (claim_lease)",
                    config.get("dispatcher", "claim_lease"))
    routing = config.has_named_transports()
    names = config.transport_names() if routing else [""]
    built = []
    for name in names:
        seen = config.for_transport(name) if name else config
        built.append((name, transports.from_config(seen), Settings.from_config(seen, name)))
    hook = OnReceive.from_config(config, [transport.name for _, transport, _ in built])
    board = Board(routing)
    timeout = config.get("dispatcher", "pass_timeout")
    for _, transport, settings in built:
        dispatcher = Dispatcher(None, transport, settings, sleep=signals.stop.wait,
                                stopping=signals.stop.is_set)
        dispatcher.shares_queue = len(built) > 1
        if hook is not None:
            dispatcher.on_received = hook.start
        Lane(transport.name, dispatcher, board, lambda: _connect(config), signals.stop,
             timeout, before_pass=hook.resume if hook is not None else lambda conn: None)
    return Lanes(board, signals.stop, signals.wake)


def supervise(lanes: Lanes, signals: Signals) -> None:
    """The main thread while the lanes run: signals become kicks and the stop, the
    watchdog looks at every lane's pass timer; returns once no lane runs."""
    while lanes.running():
        if signals.stopping and not signals.stop.is_set():
            log.info("stopping after the current step")
            signals.stop.set()
            lanes.stopping()
        if signals.take_kick():
            lanes.kick()
        lanes.watch()
        signals.wait(TICK)


def run_passes(config: Config, signals: Signals) -> Tuple[int, bool]:
    """One run under the lock: every lane passes while it has work.  Returns the exit
    status and whether a lane ended stalled (what is due may wait for a paused
    transport, so running again at once would do nothing)."""
    try:
        lanes = _lanes(config, signals)
    except SendFailed as exc:
        log.error("%s", exc.reason)
        return (EXIT_OPERATOR if exc.kind == OPERATOR else EXIT_FAILED), False
    lanes.start(Lane.run_once)
    supervise(lanes, signals)
    kind = lanes.exit_kind()
    if kind is None:
        return EXIT_OK, lanes.stalled()
    return (EXIT_OPERATOR if kind == OPERATOR else EXIT_FAILED), False


def run_loop(config: Config, lock: PidLock, signals: Signals) -> int:
    """Hold the lock and the transports; each lane passes on a kick that finds messages
    for it, a new SMS, its next retry, messages due its look at the queue every
    queue_check_interval finds, or every poll_interval (see check_and_send.lanes).

    A transport that went down (or did not open) is opened again after its
    ``reopen_delay`` (1 s doubling to ``reopen_max_delay``; see Dispatcher.went_down),
    while the other lanes go on.  A database outage leaves the transports open: each
    lane connects again after a pause of 1 s doubling to DATABASE_MAX_PAUSE (or at
    once on a kick).  A hung or failed pass starts afresh: that transport is re-opened
    with the backoff, its connection anew.
    """
    try:
        lock.acquire()
    except LockHeld as exc:
        log.error("another dispatcher holds %s (pid %s)", lock.path, exc.pid)
        return EXIT_FAILED
    except OSError as exc:
        log.error("cannot take the lock %s: %s", lock.path, exc)
        return EXIT_FAILED
    poll = config.get("dispatcher", "poll_interval")
    queue_check = config.get("dispatcher", "queue_check_interval")
    log.info("check_and_send --loop started (poll every %gs, queue looked at every %gs)",
             poll, queue_check)
    worker = DeliveryWorker(config)  # webhooks and dlr-urls, in threads of their own
    worker.start()
    try:
        while not signals.stopping:
            try:
                lanes = _lanes(config, signals)
            except SendFailed as exc:  # a transport that cannot even be set up
                log.error("cannot start a pass: %s", exc.reason)
                signals.wait(config.get("dispatcher", "reopen_max_delay"))
                continue
            lanes.start(lambda lane: lane.run_loop(poll, queue_check))
            supervise(lanes, signals)
            break
    finally:
        worker.stop()
        lock.release()
    if not signals.stopping:  # every lane ended by itself: a bug, logged by the lane
        log.error("check_and_send --loop: no transport is left running; exiting")
        return EXIT_FAILED
    log.info("check_and_send --loop stopped")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
