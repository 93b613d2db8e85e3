"""node-smpp (npm ``smpp``) as the SMSC of the SMPP tests: ``tests/smsc/smsc.js`` in a
Node process on 127.0.0.1, driven through its stdin/stdout (JSON lines).

    with running_smsc() as smsc:
        smsc.port, smsc.set(receipts="after"), smsc.deliver([...]), smsc.events("submit_sm")

Needs ``node`` and ``npm ci`` run in tests/smsc (``.ci/run`` does both).  Without them
the tests are skipped, except under CI (``CI`` set), where that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional

from support_tools import missing

HERE = os.path.dirname(os.path.abspath(__file__))
SMSC_DIR = os.path.join(HERE, "smsc")
SCRIPT = os.path.join(SMSC_DIR, "smsc.js")


def node_available() -> Optional[str]:
    """Why node-smpp cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not os.path.isdir(os.path.join(SMSC_DIR, "node_modules", "smpp")):
        return "node-smpp is not installed: run `npm ci` in tests/smsc"
    return None


def require_node() -> None:
    problem = node_available()
    if problem is not None:
        missing(problem)


class Smsc:
    def __init__(self, timeout: float = 15.0) -> None:
        self.timeout = timeout
        self.process = subprocess.Popen(
            ["node", SCRIPT, "0"], cwd=SMSC_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, encoding="utf-8", bufsize=1)
        self._lock = threading.Condition()
        self._events: List[Dict[str, Any]] = []
        self._replies: Dict[int, Dict[str, Any]] = {}
        self._ids = 0
        self._stderr: List[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        listening = self.wait_event("listening")
        self.port: int = listening["port"]
        self.host = "127.0.0.1"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            message = json.loads(line)
            with self._lock:
                if "reply" in message:
                    self._replies[message["reply"]] = message
                else:
                    self._events.append(message)
                self._lock.notify_all()
        with self._lock:
            self._lock.notify_all()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line)

    @property
    def url(self) -> str:
        return f"smpp://smss:secret@{self.host}:{self.port}"

    def command(self, cmd: str, timeout: Optional[float] = None, **fields) -> Dict[str, Any]:
        with self._lock:
            self._ids += 1
            number = self._ids
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(dict(fields, id=number, cmd=cmd)) + "\n")
        self.process.stdin.flush()
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._lock:
            while number not in self._replies:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.process.poll() is not None:
                    raise AssertionError(f"SMSC gave no reply to {cmd}: {''.join(self._stderr)}")
                self._lock.wait(remaining)
            reply = self._replies.pop(number)
        if "error" in reply:
            raise AssertionError(f"SMSC {cmd}: {reply['error']}")
        return reply

    def set(self, **settings) -> None:
        self.command("set", **settings)

    def deliver(self, pdus: List[Dict[str, Any]], system_id: str = "smss") -> Dict[str, Any]:
        return self.command("deliver", pdus=pdus, system_id=system_id)

    def stats(self) -> Dict[str, Any]:
        return self.command("stats")

    def events(self, name: Optional[str] = None) -> List[Dict[str, Any]]:
        with self._lock:
            return [e for e in self._events if name is None or e["event"] == name]

    def wait_event(self, name: str, predicate: Callable[[Dict[str, Any]], bool] = lambda e: True,
                   count: int = 1, timeout: Optional[float] = None) -> Dict[str, Any]:
        """The ``count``-th event called ``name`` that matches ``predicate``."""
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._lock:
            while True:
                found = [e for e in self._events if e["event"] == name and predicate(e)]
                if len(found) >= count:
                    return found[count - 1]
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.process.poll() is not None:
                    raise AssertionError(f"no {name} event (have {len(found)} of {count}); "
                                         f"events: {self._events[-10:]}; "
                                         f"stderr: {''.join(self._stderr)}")
                self._lock.wait(remaining)

    def reset(self) -> None:
        """Back to the defaults, every connection cut, nothing waiting, no events."""
        self.command("reset")
        deadline = time.monotonic() + self.timeout
        while self.stats()["sessions"] and time.monotonic() < deadline:
            time.sleep(0.01)
        self.clear()

    def wait_events(self, name: str, count: int, timeout: Optional[float] = None
                    ) -> List[Dict[str, Any]]:
        """Every event called ``name``, once there are at least ``count`` (the SMSC reports
        on stdout, which may lag behind what it answered on the socket)."""
        self.wait_event(name, count=count, timeout=timeout)
        return self.events(name)

    def clear(self) -> None:
        with self._lock:
            self._events.clear()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.command("quit", timeout=5)
            except (AssertionError, OSError, ValueError):
                pass
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass


@contextmanager
def running_smsc(**settings) -> Iterator[Smsc]:
    require_node()
    smsc = Smsc()
    try:
        if settings:
            smsc.set(**settings)
        yield smsc
    finally:
        smsc.close()


def ucs2(text: str) -> str:
    return text.encode("utf-16-be").hex()


def mo(text_hex: str, *, sender: str = "420608337726", data_coding: int = 8,
       esm_class: int = 0, recipient: str = "smss", **extra) -> Dict[str, Any]:
    """A mobile-originated deliver_sm as a GoIP sends it (UTF-16BE, data_coding 8)."""
    return dict(source_addr_ton=1, source_addr_npi=1, source_addr=sender, dest_addr_ton=0,
                dest_addr_npi=0, destination_addr=recipient, esm_class=esm_class,
                data_coding=data_coding, short_message_hex=text_hex, **extra)
