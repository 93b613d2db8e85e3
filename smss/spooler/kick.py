"""Kicking the dispatcher after records are committed, with kicks collapsed.

``Kicker.kick`` starts the dispatcher command unless one it started is still
running; then it only remembers that another pass is wanted and starts it when
the running one exits.  So a thousand records in a second start one pass (plus
at most one more for the records that arrived during it), and a kick that
arrives during a pass is never lost.  The command never goes through a shell.

When a dispatcher already holds its lock (``check_and_send --loop``, or a pass
cron started), the kick is a SIGUSR1 to it instead of a new process: that is
what a started command would do anyway, minus the Python start-up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import signal
from typing import Dict, List, Optional

from smss.pidlock import PidLock

log = logging.getLogger(__name__)


class Kicker:
    def __init__(self, command: str, env: Optional[Dict[str, str]] = None,
                 dispatcher_lock: str = "") -> None:
        self.argv: List[str] = shlex.split(command)
        self._env = env
        self._lock = PidLock(dispatcher_lock, marker="check_and_send") if dispatcher_lock else None
        self.poked = 0  # kicks delivered as a signal to a running dispatcher
        self._running: Optional[asyncio.Task] = None
        self._pending = False
        self.started = 0  # passes started, for status and tests

    @property
    def enabled(self) -> bool:
        return bool(self.argv)

    def kick(self) -> None:
        """Ask for a dispatcher pass; call from the event loop's thread."""
        if not self.argv:
            return
        if self._running is not None and not self._running.done():
            self._pending = True
            return
        if self._poke_holder():
            return
        self._running = asyncio.get_running_loop().create_task(self._run())

    def _poke_holder(self) -> bool:
        holder = self._lock.holder() if self._lock is not None else None
        if holder is None:
            return False
        try:
            os.kill(holder, signal.SIGUSR1)
        except OSError:
            return False
        self.poked += 1
        return True

    async def _run(self) -> None:
        while True:
            self._pending = False
            self.started += 1
            env = dict(os.environ, **self._env) if self._env else None
            try:
                process = await asyncio.create_subprocess_exec(
                    *self.argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,  # a Ctrl-C on the server's terminal is not the pass's
                )
            except OSError as exc:
                log.error("cannot start dispatcher %r: %s", self.argv[0], exc)
                return
            status = await process.wait()
            if status != 0:
                log.warning("dispatcher %s exited with status %s", self.argv[0], status)
            if not self._pending:
                return

    async def wait(self) -> None:
        """Wait for a running pass (used at shutdown and in tests)."""
        if self._running is not None:
            await asyncio.shield(self._running)
