"""``on_receive``: run a program for each received SMS, the way gammu-smsd's RunOnReceive does.

The pass starts a small detached runner (``python -m check_and_send.hooks``)
and goes on reading the modem at once.  The runner reads the ``rcv`` row,
runs the configured program with the message in environment variables (never
through a shell: the text is data, not code), waits up to
``on_receive_timeout``, and records the exit status in ``rcv.handler_status``
(-9 when it had to be killed, 127 when it could not be started).

Variables: ``SMS_MESSAGES=1``, ``SMS_1_NUMBER``, ``SMS_1_TEXT``, ``SMS_1_CLASS``
(-1: none), ``SMS_1_REFERENCE``, ``DECODED_PARTS=1``, ``DECODED_1_TEXT`` (as
gammu-smsd; a multipart message arrives reassembled, as one), plus
``SMSS_RCV_ID``, ``SMSS_PARTS``, ``SMSS_SENT_AT``, ``SMSS_RECEIVED_AT``,
``SMSS_TRANSPORT`` and ``SMSS_ERROR``.  The program also gets the rcv id as its
last argument.

The runner and the program write to the dispatcher's log file when there is
one, not to the pass's stdout/stderr: a program still running must not hold
the pipe of whoever ran the pass (cron, a test, a shell with ``| tee``) open.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
from typing import Dict, List, Optional

from smss.transports.base import InboundMessage

log = logging.getLogger(__name__)


class OnReceive:
    def __init__(self, command: str, config_path: str, logfile: str = "") -> None:
        self.argv = shlex.split(command)
        self.config_path = config_path
        self.logfile = logfile
        self._runners: List[subprocess.Popen] = []

    @classmethod
    def from_config(cls, config) -> Optional["OnReceive"]:
        command = config.get("dispatcher", "on_receive")
        if not command:
            return None
        return cls(command, config.path, config.get("dispatcher", "logfile"))

    def start(self, rcv_id: int, message: Optional[InboundMessage] = None) -> None:
        self._runners = [r for r in self._runners if r.poll() is None]  # reap finished ones
        env = dict(os.environ)
        if self.config_path:
            env["SMSS_CONFIG"] = self.config_path
        if message is not None:
            env["SMSS_HOOK_CLASS"] = str(-1 if message.message_class is None
                                         else message.message_class)
            env["SMSS_HOOK_REFERENCE"] = str(message.references[0] if message.references else 0)
        output = None
        if self.logfile:
            try:
                output = open(self.logfile, "ab")  # handed to the child
            except OSError as exc:
                log.warning("on_receive: cannot open %s for its output: %s", self.logfile, exc)
        try:
            runner = subprocess.Popen(
                [sys.executable, "-m", "check_and_send.hooks", str(rcv_id)],
                env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                start_new_session=True,
            )
        except OSError as exc:  # the SMS is stored; only its program does not run
            log.error("on_receive: cannot start the runner for rcv %d: %s", rcv_id, exc)
            return
        finally:
            if output is not None:
                output.close()
        self._runners.append(runner)


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


def run(rcv_id: int) -> int:
    """The runner: one rcv row, one program run, its status recorded."""
    from smss import logs
    from smss.config import load
    from smss.store import received
    from smss.store.database import connect_config

    config = load()
    logs.setup(config.get("dispatcher", "logfile"), config.get("dispatcher", "loglevel"))
    argv = shlex.split(config.get("dispatcher", "on_receive"))
    timeout = config.get("dispatcher", "on_receive_timeout")
    conn = connect_config(config)
    try:
        row = received.get(conn, rcv_id)
        if row is None or not argv:
            log.error("on_receive: no rcv row %s or no program", rcv_id)
            return 1
        env = dict(os.environ)
        env.update(environment(row, os.environ.get("SMSS_HOOK_CLASS", "-1"),
                               os.environ.get("SMSS_HOOK_REFERENCE", "0")))
        try:
            process = subprocess.Popen([*argv, str(rcv_id)], env=env, stdin=subprocess.DEVNULL)
        except OSError as exc:
            log.error("on_receive: cannot start %s: %s", argv[0], exc)
            status = 127
        else:
            try:
                status = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                log.error("on_receive: %s ran longer than %gs for rcv %d, killed", argv[0],
                          timeout, rcv_id)
                status = -9
        if status != 0:
            log.warning("on_receive: %s exited with %s for rcv %d", argv[0], status, rcv_id)
        received.set_handler_status(conn, rcv_id, status)
        return 0
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(run(int(sys.argv[1])))
