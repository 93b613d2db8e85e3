"""``on_receive``: run a program for each received SMS, the way gammu-smsd's RunOnReceive does.

The queue is the database.  A message stored while ``on_receive`` is configured
gets ``rcv.handler_state = 'waiting'`` in the same commit.  A runner process
(``python -m check_and_send.hooks``, one per dispatcher: it holds the lock
``<lockfile>.hooks``) runs the waiting ones of the dispatcher's transports oldest
first, at most ``on_receive_max`` at once, each in a session and process group of
its own, never through a shell (the text is data, not code).  A program still
running after ``on_receive_timeout`` is killed with its whole process group.  A
program that ended is reaped at once and its exit status recorded in
``rcv.handler_status`` (state ``done``; -9: killed after the timeout, 127: could
not be started, -1: its runner died while it ran, so its outcome is unknown and
it is not run again).  The runner exits when nothing waits.

The dispatcher starts the runner when it stores a message, and at the start of
each run and each ``--loop`` pass when messages wait (a runner that was killed,
or that the dispatcher never got to start, leaves the rows waiting, never lost).
The pass goes on reading the modem at once; the runner outlives a one-shot pass.
The dispatcher reaps the runner it started (a thread waits for it), so ``--loop``
leaves no zombies.  SIGTERM to the runner: it starts nothing more, waits for the
programs running, records them, and leaves the rest waiting for the next runner.

Variables: ``SMS_MESSAGES=1``, ``SMS_1_NUMBER``, ``SMS_1_TEXT``, ``SMS_1_CLASS``
(-1: none), ``SMS_1_REFERENCE``, ``DECODED_PARTS=1``, ``DECODED_1_TEXT`` (as
gammu-smsd; a multipart message arrives reassembled, as one), plus
``SMSS_RCV_ID``, ``SMSS_PARTS``, ``SMSS_SENT_AT``, ``SMSS_RECEIVED_AT``,
``SMSS_TRANSPORT`` and ``SMSS_ERROR``.  The program also gets the rcv id as its
last argument.

The runner and the programs write to the dispatcher's log file when there is
one, not to the pass's stdout/stderr: a program still running must not hold
the pipe of whoever ran the pass (cron, a test, a shell with ``| tee``) open.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from smss.pidlock import LockHeld, PidLock
from smss.transports.base import InboundMessage

log = logging.getLogger(__name__)

RUNNER_MARKER = "check_and_send.hooks"
KILLED, NOT_STARTED, RUNNER_DIED = -9, 127, -1
TICK = 0.05  # seconds between two looks at the programs running
DATABASE_PATIENCE = 600.0  # seconds the runner keeps trying to record a status


def lock_path(config) -> str:
    return config.get("dispatcher", "lockfile") + ".hooks"


class OnReceive:
    """The dispatcher's side: start the runner when there is something for it."""

    def __init__(self, command: str, config_path: str, logfile: str = "",
                 lock: str = "", transports: Sequence[str] = ()) -> None:
        self.argv = shlex.split(command)
        self.config_path = config_path
        self.logfile = logfile
        self.lock = PidLock(lock, marker=RUNNER_MARKER) if lock else None
        self.transports = list(transports)

    @classmethod
    def from_config(cls, config, transports: Sequence[str] = ()) -> Optional["OnReceive"]:
        command = config.get("dispatcher", "on_receive")
        if not command:
            return None
        return cls(command, config.path, config.get("dispatcher", "logfile"),
                   lock_path(config), transports)

    def start(self, rcv_id: int, message: Optional[InboundMessage] = None) -> None:
        """A message was stored (waiting): make sure a runner will run it."""
        self.wake()

    def resume(self, conn) -> None:
        """Start the runner if messages of our transports wait (a runner died, or the
        dispatcher died before it started one)."""
        from smss.store import received

        if received.hooks_waiting(conn, self.transports, 1):
            self.wake()

    def wake(self) -> None:
        """Start a runner unless one holds the lock: that one looks for waiting rows once
        more after it let the lock go, which is after our commit.  (A runner that is
        only exiting no longer holds it; a second runner that finds the lock taken
        exits at once.)"""
        if self.lock is not None and self.lock.holder() is not None:
            return
        env = dict(os.environ)
        if self.config_path:
            env["SMSS_CONFIG"] = self.config_path
        output = None
        if self.logfile:
            try:
                output = open(self.logfile, "ab")  # handed to the runner and its programs
            except OSError as exc:
                log.warning("on_receive: cannot open %s for its output: %s", self.logfile, exc)
        argv = [sys.executable, "-m", RUNNER_MARKER]
        for name in self.transports:
            argv += ["--transport", name]
        try:
            runner = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=output,
                                      stderr=output, start_new_session=True)
        except OSError as exc:  # the SMS is stored and waits; the next pass tries again
            log.error("on_receive: cannot start the runner: %s", exc)
            return
        finally:
            if output is not None:
                output.close()
        threading.Thread(target=runner.wait, name="on_receive reaper", daemon=True).start()


def environment(row: Dict, klass: str = "-1", reference: str = "0") -> Dict[str, str]:
    """The program's variables for one ``rcv`` row."""
    text = (row["text"] or "").replace("\0", "")
    def when(value) -> str:
        return "" if value is None else str(value)
    return {
        "SMS_MESSAGES": "1",
        "SMS_1_NUMBER": row["phone"] or "",
        "SMS_1_TEXT": text,
        "SMS_1_CLASS": klass,
        "SMS_1_REFERENCE": reference,
        "DECODED_PARTS": "1",
        "DECODED_1_TEXT": text,
        "SMSS_RCV_ID": str(row["id"]),
        "SMSS_PARTS": str(row["parts"]),
        "SMSS_SENT_AT": when(row["sent_at"]),
        "SMSS_RECEIVED_AT": when(row["received_at"]),
        "SMSS_TRANSPORT": row["transport"] or "",
        "SMSS_ERROR": row["error"] or "",
    }


# -- the runner


@dataclass
class _Running:
    rcv_id: int
    process: subprocess.Popen
    deadline: float


class Runner:
    """Runs the waiting programs; see the module docstring."""

    def __init__(self, config, transports: Sequence[str]) -> None:
        self.config = config
        self.transports = list(transports)
        self.argv = shlex.split(config.get("dispatcher", "on_receive"))
        self.timeout = config.get("dispatcher", "on_receive_timeout")
        self.most = config.get("dispatcher", "on_receive_max")
        self.stop = threading.Event()
        self.conn = None
        self._running: List[_Running] = []
        self._unrecorded: Dict[int, int] = {}  # rcv id -> status the database did not take
        self._database_lost_at: Optional[float] = None

    def _db(self):
        from smss.store.database import connect_config

        if self.conn is None:
            self.conn = connect_config(self.config)
        return self.conn

    def _database_failed(self, exc: Exception) -> None:
        log.warning("on_receive: database unavailable: %s", exc)
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self._database_lost_at is None:
            self._database_lost_at = time.monotonic()

    def run(self) -> None:
        """Until nothing waits (or SIGTERM) and every program ended and is recorded."""
        from smss.store.database import UNAVAILABLE_ERRORS

        try:
            self._orphans()
        except UNAVAILABLE_ERRORS as exc:
            self._database_failed(exc)
            return  # nothing runs yet: the next pass starts a runner again
        while True:
            self._reap()
            self._record()
            started = 0
            if not self.stop.is_set() and len(self._running) < self.most:
                try:
                    started = self._fill()
                except UNAVAILABLE_ERRORS as exc:
                    self._database_failed(exc)
            if not self._running and not started:
                if not self._unrecorded or self._gave_up():
                    return  # nothing waits (or nothing can be told): done
            time.sleep(TICK if self._database_lost_at is None else 1.0)

    def _gave_up(self) -> bool:
        lost = self._database_lost_at
        if lost is not None and time.monotonic() - lost > DATABASE_PATIENCE:
            log.error("on_receive: database unavailable for %gs; the status of rcv %s is"
                      " lost", DATABASE_PATIENCE, ", ".join(map(str, self._unrecorded)))
            return True
        return False

    def _orphans(self) -> None:
        """Rows left running by a runner that died: their outcome is unknown."""
        from smss.store import received

        conn = self._db()
        for rcv_id in received.hooks_running(conn, self.transports):
            log.warning("on_receive: the runner died while the program for rcv %d ran;"
                        " its outcome is unknown, it is not run again", rcv_id)
            received.set_handler_status(conn, rcv_id, RUNNER_DIED)

    def _fill(self) -> int:
        """Start waiting programs in the free slots, oldest first; how many started."""
        from smss.store import received

        conn = self._db()
        started = 0
        for rcv_id in received.hooks_waiting(conn, self.transports,
                                             self.most - len(self._running)):
            if self.stop.is_set():
                break
            if received.start_hook(conn, rcv_id):
                self._start(conn, rcv_id)
                started += 1
        self._database_lost_at = None
        return started

    def _start(self, conn, rcv_id: int) -> None:
        from smss.store import received

        row = received.get(conn, rcv_id)
        if row is None:
            return  # deleted meanwhile
        env = dict(os.environ)
        env.update(environment(
            row, str(-1 if row["message_class"] is None else row["message_class"]),
            str(row["concat_reference"] or 0)))
        try:
            process = subprocess.Popen([*self.argv, str(rcv_id)], env=env,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            log.error("on_receive: cannot start %s: %s", self.argv[0], exc)
            self._finished(rcv_id, NOT_STARTED)
            return
        self._running.append(_Running(rcv_id, process, time.monotonic() + self.timeout))
        log.debug("on_receive: rcv %d: started %s (pid %d)", rcv_id, self.argv[0], process.pid)

    def _reap(self) -> None:
        now = time.monotonic()
        for item in list(self._running):
            status = item.process.poll()
            if status is None and now >= item.deadline:
                self._kill_group(item.process)
                item.process.wait()
                log.error("on_receive: %s ran longer than %gs for rcv %d, killed with its"
                          " process group", self.argv[0], self.timeout, item.rcv_id)
                status = KILLED
            if status is None:
                continue
            self._running.remove(item)
            self._finished(item.rcv_id, status)

    @staticmethod
    def _kill_group(process: subprocess.Popen) -> None:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: group id = its pid
        except ProcessLookupError:
            pass

    def _finished(self, rcv_id: int, status: int) -> None:
        if status != 0:
            log.warning("on_receive: %s exited with %s for rcv %d", self.argv[0], status, rcv_id)
        self._unrecorded[rcv_id] = status
        self._record()

    def _record(self) -> None:
        from smss.store import received
        from smss.store.database import UNAVAILABLE_ERRORS

        while self._unrecorded:
            rcv_id, status = next(iter(self._unrecorded.items()))
            try:
                received.set_handler_status(self._db(), rcv_id, status)
            except UNAVAILABLE_ERRORS as exc:
                self._database_failed(exc)
                return
            del self._unrecorded[rcv_id]
            self._database_lost_at = None


def main(argv: Optional[List[str]] = None) -> int:
    """The runner: holds ``<lockfile>.hooks`` and runs what waits (see the docstring)."""
    from smss import logs
    from smss.config import load
    from smss.store import received
    from smss.store.database import UNAVAILABLE_ERRORS

    parser = argparse.ArgumentParser(prog="python -m check_and_send.hooks")
    parser.add_argument("--transport", action="append", default=[],
                        help="run the programs of messages from this transport (repeatable)")
    args = parser.parse_args(argv)
    config = load()
    logs.setup(config.get("dispatcher", "logfile"), config.get("dispatcher", "loglevel"))
    if not config.get("dispatcher", "on_receive"):
        log.error("on_receive: no program configured")
        return 1
    runner = Runner(config, args.transport)

    def stopping(signum, frame):
        log.info("on_receive: signal %d: waiting for the programs running, starting no more",
                 signum)
        runner.stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stopping)
    lock = PidLock(lock_path(config), marker=RUNNER_MARKER)
    while not runner.stop.is_set():
        try:
            lock.acquire()
        except LockHeld:
            return 0  # another runner does it
        try:
            runner.run()
        finally:
            lock.release()
        if runner.stop.is_set():
            break
        try:  # a message stored while the lock was being released is not left waiting
            if not received.hooks_waiting(runner._db(), args.transport, 1):
                break
        except UNAVAILABLE_ERRORS:
            break
    if runner.conn is not None:
        runner.conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
