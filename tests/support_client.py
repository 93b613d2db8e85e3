"""Test helpers for the clients: a scripted TCP peer and runners for each client build.

``ScriptedPeer`` is a throwaway server on 127.0.0.1 whose behaviour a test
writes as a function of the connection (what a real smss server would not do:
hang, hang up early, answer garbage; or what it does only when its database
is down, answer ``ERR 503``).  The scripts below answer in the words of the
real server (smss/spooler/server.py).  The runners start one client build as
a real process: ``smss_client.py`` under this Python, the native POSIX build of
``smssclient.c``, or ``SMSSClient.exe`` under Wine.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from typing import Callable, Dict, List, Optional, Sequence

from smss.spooler.protocol import RecordParser

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENT_PY = os.path.join(REPO, "clients", "smss_client.py")
WINDOWS_DIR = os.path.join(REPO, "clients", "windows")
SAFETY_TIMEOUT = 120.0  # seconds; only a net against a hung process


class ToolMissing(Exception):
    """A compiler or Wine is not installed; the message says which Debian package."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (just now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_until_eof(conn: socket.socket) -> bytes:
    data = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk


class ScriptedPeer:
    """A TCP server on 127.0.0.1 that runs ``script(conn)`` for each connection.

    ``received`` holds, per connection, every byte the client sent before it
    closed (or before the script closed the connection).
    """

    def __init__(self, script: Callable[[socket.socket], None], port: int = 0) -> None:
        self.script = script
        self.received: List[bytes] = []
        self.errors: List[BaseException] = []
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(16)
        self.host, self.port = self._listener.getsockname()
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(SAFETY_TIMEOUT)
        recorder = _Recorder(conn, self._stop)
        try:
            self.script(recorder)
        except OSError as exc:
            self.errors.append(exc)
        finally:
            self.received.append(recorder.data)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._acceptor.join(SAFETY_TIMEOUT)
        for thread in self._threads:
            thread.join(SAFETY_TIMEOUT)

    def __enter__(self) -> "ScriptedPeer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class _Recorder:
    """A socket wrapper that remembers what was received."""

    def __init__(self, conn: socket.socket, stop: threading.Event) -> None:
        self.conn = conn
        self.data = b""
        self._stop = stop

    def hold(self) -> None:
        """Keep the connection open, saying nothing, until the peer is closed."""
        self._stop.wait(SAFETY_TIMEOUT)

    def recv(self, size: int) -> bytes:
        chunk = self.conn.recv(size)
        self.data += chunk
        return chunk

    def read_until_eof(self) -> bytes:
        while self.recv(65536):
            pass
        return self.data

    def sendall(self, data: bytes) -> None:
        self.conn.sendall(data)

    def __getattr__(self, name):
        return getattr(self.conn, name)


def answer_after_eof(*lines: str) -> Callable:
    """Script: read to the client's half-close, answer ``lines`` (CRLF), close."""

    def script(conn) -> None:
        conn.read_until_eof()
        conn.sendall(b"".join(line.encode() + b"\r\n" for line in lines))

    return script


# The real server's words (smss/spooler/server.py): a record whose transaction
# failed, and a connection over max_connections (said at once, then closed).
STORAGE_UNAVAILABLE = "ERR 503 storage unavailable, not stored"
TOO_MANY_CONNECTIONS = "ERR 503 too many connections"


def units_of(data: bytes) -> list:
    """The units of ``data`` as the real server's parser sees them (one reply each)."""
    parser = RecordParser()
    return parser.feed(data) + parser.close()


def answer_each(decide: Callable[[int, object], Optional[str]]) -> Callable:
    """Script: read to the half-close, split the bytes into units with the server's
    parser, answer unit ``index`` with ``decide(index, unit)``; ``None`` closes the
    connection without answering that unit or any after it."""

    def script(conn) -> None:
        lines = []
        for index, unit in enumerate(units_of(conn.read_until_eof())):
            line = decide(index, unit)
            if line is None:
                break
            lines.append(line.encode() + b"\r\n")
        conn.sendall(b"".join(lines))

    return script


def store_all(first_id: int) -> Callable:
    """Script: a healthy server; its ids count up from ``first_id`` across connections."""
    counter = iter(range(first_id, first_id + 1_000_000))
    return answer_each(lambda index, unit: f"OK {next(counter)}")


def refuse(line: str) -> Callable:
    """Script: the server's refusal (SpoolServer._refuse): say ``line`` before reading,
    end the sending side, read what comes for a second, close."""

    def script(conn) -> None:
        conn.sendall(line.encode() + b"\r\n")
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(1)
        try:
            conn.recv(65536)
        except socket.timeout:
            pass

    return script


def silent(conn) -> None:
    """Script: read everything, answer nothing, keep the connection open."""
    conn.read_until_eof()
    conn.hold()


# --------------------------------------------------------------------------
# Runners


class Runner:
    """Runs one build of the client as a process; ``run`` returns CompletedProcess."""

    name = ""

    def command(self, args: Sequence[str]) -> List[str]:
        raise NotImplementedError

    def environ(self, extra: Optional[Dict[str, str]]) -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMSS_")}
        env.update({"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"})
        env.update(extra or {})
        return env

    def run(self, args: Sequence[str], stdin: Optional[bytes] = None,
            env: Optional[Dict[str, str]] = None) -> "Result":
        completed = subprocess.run(
            self.command(args), input=stdin if stdin is not None else b"",
            capture_output=True, env=self.environ(env), timeout=SAFETY_TIMEOUT,
        )
        return Result(completed.returncode, completed.stdout.decode("utf-8", "replace"),
                      completed.stderr.decode("utf-8", "replace"))

    def start(self, args: Sequence[str], env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
        return subprocess.Popen(self.command(args), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=self.environ(env))


class Result:
    def __init__(self, status: int, stdout: str, stderr: str) -> None:
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        self.lines = stdout.splitlines()  # Windows builds write CRLF

    def __repr__(self) -> str:
        return f"Result({self.status}, stdout={self.stdout!r}, stderr={self.stderr!r})"


class PythonRunner(Runner):
    """``python3 clients/smss_client.py`` (the copy-anywhere form)."""

    name = "python"

    def command(self, args: Sequence[str]) -> List[str]:
        return [sys.executable, CLIENT_PY, *args]


class NativeRunner(Runner):
    """The POSIX build of clients/windows/smssclient.c."""

    name = "native"

    def __init__(self, program: str) -> None:
        self.program = program

    def command(self, args: Sequence[str]) -> List[str]:
        return [self.program, *args]


class WineRunner(Runner):
    """SMSSClient.exe under Wine, in a private prefix kept warm by a persistent wineserver."""

    name = "wine"

    def __init__(self, exe: str, prefix: str) -> None:
        self.exe = exe
        self.prefix = prefix
        self.wine = find_wine()
        self.wineserver = _find_tool("wineserver", "/usr/lib/wine/wineserver")

    def environ(self, extra: Optional[Dict[str, str]]) -> Dict[str, str]:
        env = super().environ(extra)
        env.update({"WINEPREFIX": self.prefix, "WINEDEBUG": "-all",
                    "WINEDLLOVERRIDES": "mscoree,mshtml="})
        return env

    def command(self, args: Sequence[str]) -> List[str]:
        return [self.wine, self.exe, *args]

    def boot(self) -> None:
        """Create the prefix (slow, once) and keep a wineserver running for it."""
        env = self.environ(None)
        os.makedirs(self.prefix, exist_ok=True)
        # Persistent first: the server then outlives each client run (no cold starts).
        subprocess.run([self.wineserver, "-p"], env=env, check=True, timeout=SAFETY_TIMEOUT)
        subprocess.run([self.wine, "wineboot", "--init"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=SAFETY_TIMEOUT * 3)

    def shutdown(self) -> None:
        subprocess.run([self.wineserver, "-k"], env=self.environ(None), check=False,
                       timeout=SAFETY_TIMEOUT)


def _find_tool(name: str, fallback: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    if os.access(fallback, os.X_OK):
        return fallback
    raise ToolMissing(f"{name} not found (Debian: apt-get install wine wine64)")


def find_wine() -> str:
    # Debian's wine64 package alone installs /usr/lib/wine/wine64 but no `wine`.
    path = shutil.which("wine") or shutil.which("wine64")
    if path:
        return path
    return _find_tool("wine", "/usr/lib/wine/wine64")


def build(target: str, out_dir: str) -> str:
    """``make -C clients/windows OUT=out_dir <target>`` with -Werror; the program's path."""
    program = {"exe": "SMSSClient.exe", "native": "smssclient"}[target]
    if target == "exe" and not shutil.which("x86_64-w64-mingw32-gcc"):
        raise ToolMissing("x86_64-w64-mingw32-gcc not found"
                          " (Debian: apt-get install gcc-mingw-w64-x86-64)")
    if not shutil.which("make") or not shutil.which("cc"):
        raise ToolMissing("make or cc not found (Debian: apt-get install make gcc)")
    subprocess.run(
        ["make", "-s", "-C", WINDOWS_DIR, f"OUT={out_dir}",
         "CFLAGS=-O2 -Wall -Wextra -Werror", target],
        check=True, timeout=SAFETY_TIMEOUT,
    )
    return os.path.join(out_dir, program)
