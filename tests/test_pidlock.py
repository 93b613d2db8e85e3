"""smss.pidlock: mutual exclusion from the kernel, the PID in the file for the others.

Real processes contend for one lock file: each records when it entered and left,
and no two of those intervals may ever overlap.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from smss.pidlock import LockHeld, PidLock

# One contender: for each round it is told "go" on stdin, tries to take the lock for
# ``window`` seconds, holds it a moment each time it gets it, and answers one line of
# enter/leave times (CLOCK_MONOTONIC: the same clock in every process).
CONTENDER = r'''
import sys, time
from smss.pidlock import LockHeld, PidLock
path, window = sys.argv[1], float(sys.argv[2])
lock = PidLock(path, marker="")
for line in sys.stdin:
    held = []
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        try:
            lock.acquire()
        except LockHeld:
            time.sleep(0.001)
            continue
        entered = time.monotonic_ns()
        time.sleep(0.003)
        left = time.monotonic_ns()
        lock.release()
        held.append(f"{entered}-{left}")
    print(" ".join(held) or "-", flush=True)
'''


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_sixteen_contenders_never_hold_the_lock_at_once(tmp_path):
    """A stale PID file (its process is dead) at the start of every round, 16 processes
    taking and releasing the lock as fast as they can: never two holders at once."""
    path = str(tmp_path / "check_and_send.lock")
    script = tmp_path / "contender.py"
    script.write_text(CONTENDER, encoding="utf-8")
    contenders = [subprocess.Popen([sys.executable, str(script), path, "0.15"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                  for _ in range(16)]
    stale = dead_pid()
    overlaps = []
    acquisitions = 0
    try:
        for round_number in range(50):
            with open(path, "w", encoding="ascii") as handle:  # a crashed holder's file
                handle.write(f"{stale}\n")
            for process in contenders:
                process.stdin.write("go\n")
                process.stdin.flush()
            intervals = []
            for process in contenders:
                line = process.stdout.readline().strip()
                assert line, "a contender died"
                if line != "-":
                    intervals += [tuple(map(int, item.split("-"))) for item in line.split()]
            acquisitions += len(intervals)
            intervals.sort()
            for (_, left), (entered, _) in zip(intervals, intervals[1:]):
                if entered < left:
                    overlaps.append(round_number)
                    break
    finally:
        for process in contenders:
            process.stdin.close()
        for process in contenders:
            process.wait(timeout=30)
    assert acquisitions >= 50  # the rounds did contend
    assert overlaps == [], f"two holders at once in rounds {overlaps}"


def test_holder_pid_is_in_the_file_and_a_second_taker_is_refused(tmp_path):
    path = str(tmp_path / "lock")
    lock = PidLock(path)
    lock.acquire()
    try:
        with open(path, encoding="ascii") as handle:
            assert handle.read().strip() == str(os.getpid())
        assert lock.holder() == os.getpid()
        other = subprocess.run(
            [sys.executable, "-c", "import sys\nfrom smss.pidlock import LockHeld, PidLock\n"
             "try:\n    PidLock(sys.argv[1]).acquire()\nexcept LockHeld as exc:\n"
             "    print(exc.pid)\n    sys.exit(3)\n", path],
            capture_output=True, text=True, timeout=30)
        assert other.returncode == 3, other.stderr
        assert other.stdout.strip() == str(os.getpid())
        with pytest.raises(LockHeld):
            PidLock(path).acquire()  # a second object in the same process is refused too
    finally:
        lock.release()
    assert not os.path.exists(path)
    assert PidLock(path).holder() is None


def test_a_killed_holder_leaves_the_lock_free(tmp_path):
    """The kernel releases the lock of a process that dies (kill -9): the next one takes
    it at once, though the dead PID is still written in the file."""
    path = str(tmp_path / "lock")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom smss.pidlock import PidLock\n"
         "PidLock(sys.argv[1]).acquire()\nprint('held', flush=True)\ntime.sleep(600)\n", path],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert PidLock(path).holder() == holder.pid
        with pytest.raises(LockHeld) as refused:
            PidLock(path).acquire()
        assert refused.value.pid == holder.pid
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    with open(path, encoding="ascii") as handle:
        assert handle.read().strip() == str(holder.pid)  # left behind by the dead holder
    assert PidLock(path).holder() is None
    lock = PidLock(path)
    lock.acquire()
    try:
        with open(path, encoding="ascii") as handle:
            assert handle.read().strip() == str(os.getpid())
    finally:
        lock.release()


def test_a_lock_file_is_not_inherited_by_programs_the_holder_starts(tmp_path):
    """A program the holder started (on_receive, a kicked pass) must not keep the lock
    after the holder is gone."""
    path = str(tmp_path / "lock")
    ready = tmp_path / "child.pid"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys, time\nfrom smss.pidlock import PidLock\n"
         "PidLock(sys.argv[1]).acquire()\n"
         "child = subprocess.Popen(['sleep', '600'], close_fds=False)\n"
         "open(sys.argv[2], 'w').write(str(child.pid))\ntime.sleep(600)\n", path, str(ready)])
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() or not ready.read_text():
            assert time.monotonic() < deadline and holder.poll() is None
            time.sleep(0.05)
        child = int(ready.read_text())
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        lock = PidLock(path)
        lock.acquire()  # the sleeping child does not hold it
        lock.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if ready.exists() and ready.read_text():
            try:
                os.kill(int(ready.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert child > 0
