"""Running one modem session over one file descriptor (the I/O half of a transport).

Owns: the thread that reads bytes from the descriptor into the session and
carries out the session's actions in order - writing (never blocking forever:
a peer that stops reading loses output after ``WRITE_TIMEOUT``), sleeping for
simulated latency, closing the link, running the modem's bookkeeping calls -
and waking up when another thread (a timer, the control channel) queued
output.  Subclasses say how to read, write and close: ``tcp.TcpLink`` for a
socket, ``ptyport.PtyPort`` for a pseudo-terminal.
"""

from __future__ import annotations

import collections
import logging
import os
import select
import threading
from typing import Deque, Optional

from smss.sim.actions import Call, Close, Delay, Write

log = logging.getLogger(__name__)

WRITE_TIMEOUT = 5.0
POLL = 0.5


class StreamLink:
    """Base class; see the module docstring."""

    def __init__(self, modem, label: str) -> None:
        self.modem = modem
        self.label = label
        self._queue: Deque = collections.deque()
        self._queue_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._stopping = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.session = None

    # -- subclass interface
    def fileno(self) -> int:
        raise NotImplementedError

    def read_some(self) -> bytes:
        """Bytes available now; b"" at end of stream."""
        raise NotImplementedError

    def write_some(self, data: bytes) -> int:
        raise NotImplementedError

    def link_closed(self, reason: str) -> bool:
        """The session's link went down (Close action or end of stream).  Return True
        to keep running with a fresh session (the pty comes back), False to end."""
        raise NotImplementedError

    def release(self) -> None:
        """Free the descriptor(s) when the loop ends."""

    # -- lifecycle
    def open_session(self) -> None:
        self.session = self.modem.open_session(self.sink, self.label)

    def start(self) -> None:
        self.open_session()
        self._thread = threading.Thread(target=self._run, name=f"sim-{self.label}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake()
        if self._thread is None:
            self.release()
        elif self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def sink(self, actions: list) -> None:
        """Called by the session (any thread): queue output, wake the loop."""
        with self._queue_lock:
            self._queue.extend(actions)
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # already awake, or shutting down

    def _next_action(self):
        with self._queue_lock:
            return self._queue.popleft() if self._queue else None

    def _drop_queue(self) -> None:
        with self._queue_lock:
            self._queue.clear()

    # -- the loop
    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                action = self._next_action()
                if action is not None:
                    if not self._perform(action):
                        break
                    continue
                if not self._wait_and_read():
                    break
        except Exception:  # noqa: BLE001 - a crashed link must not kill the simulator silently
            log.exception("%s: link loop failed", self.label)
        finally:
            if self.session is not None:
                self.session.close()
            self.release()
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _perform(self, action) -> bool:
        if isinstance(action, Write):
            self._write_all(action.data)
        elif isinstance(action, Delay):
            self._stopping.wait(action.seconds)
        elif isinstance(action, Close):
            return self._closed(action.reason or "closed by the modem")
        elif isinstance(action, Call):
            action.function()
        return True

    def _closed(self, reason: str) -> bool:
        log.info("%s: link down (%s)", self.label, reason)
        self._drop_queue()
        if self.session is not None:
            self.session.close()
            self.session = None
        if self.link_closed(reason) and not self._stopping.is_set():
            self.open_session()
            return True
        return False

    def _wait_and_read(self) -> bool:
        fd = self.fileno()
        try:
            ready, _, _ = select.select([fd, self._wake_r], [], [], POLL)
        except (OSError, ValueError):
            return self._closed("descriptor failed")
        if self._wake_r in ready:
            try:
                while os.read(self._wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        if fd in ready:
            try:
                data = self.read_some()
            except BlockingIOError:
                return True
            except OSError as exc:
                return self._closed(f"read failed: {exc}")
            if not data:
                return self._closed("end of stream")
            if self.session is not None:
                self.session.feed(data)
        return True

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        waited = 0.0
        while view:
            if self._stopping.is_set():
                return
            try:
                _, writable, _ = select.select([], [self.fileno()], [], POLL)
            except (OSError, ValueError):
                return
            if not writable:
                waited += POLL
                if waited >= WRITE_TIMEOUT:
                    log.warning("%s: peer not reading, %d bytes dropped", self.label, len(view))
                    return
                continue
            try:
                sent = self.write_some(bytes(view))
            except BlockingIOError:
                continue
            except OSError as exc:
                log.info("%s: write failed: %s", self.label, exc)
                return
            view = view[sent:]
