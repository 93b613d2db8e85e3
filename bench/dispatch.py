"""Dispatch benchmark: messages per minute, AT commands per part, kick-to-send latency.

    python3 bench/dispatch.py [--messages 20] [--ceiling 300] [--kicks 10]

1. Messages per minute through the simulator in realistic-latency mode (2-4 s
   per AT+CMGS, 20-150 ms per other command, as a GSM network answers), one
   `check_and_send` pass over a full queue.
2. The software ceiling: the same with latency 0.
3. AT commands per sent part: all commands of the pass, those of the modem's
   initialisation, and the steady state after it (target: exactly one
   AT+CMGS per part, nothing else).
4. Kick latency: time from the server's `OK` to the first AT+CMGS of that
   message, with one-shot passes started by the kick and with
   `check_and_send --loop` (target under 200 ms; cron alone: up to 60 s).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from support_dispatch import Site  # noqa: E402
from support_sim import running_simulator  # noqa: E402


def through_a_pass(messages: int, latency, parts_text: str = "Záloha serveru selhala") -> dict:
    folder = tempfile.mkdtemp(prefix="smss-bench-dispatch-")
    with running_simulator(latency=latency, pty=False, seed=7) as sim:
        site = Site(_Path(folder), f"sqlite://{folder}/smss.db", sim,
                    {"modem": {"send_timeout": "30", "command_timeout": "10"}})
        for i in range(messages):
            site.enqueue("+420608337726", f"{parts_text} {i}")
        sim.control.reset_counts()
        started = time.monotonic()
        result = site.run(timeout=3600)
        seconds = time.monotonic() - started
        if result.returncode != 0:
            raise RuntimeError(f"pass failed: {site.log()[-2000:]}")
        lines = [entry["line"] for entry in sim.control.lines(100000)
                 if entry.get("line", "").upper().startswith("AT")]
        sent = sim.control.sent()
    cmgs = [i for i, line in enumerate(lines) if line.upper().startswith("AT+CMGS")]
    sending = lines[cmgs[0]: cmgs[-1] + 1]  # from the first AT+CMGS to the last one
    return {
        "messages": messages,
        "parts": len(sent),
        "seconds": seconds,
        "per_minute": messages / seconds * 60,
        "commands": len(lines),
        "cmgs": len(cmgs),
        "init_commands": cmgs[0],
        "sending_other": sorted({line.split("=")[0] for line in sending
                                 if not line.upper().startswith("AT+CMGS")}),
        "after": sorted({line.split("=")[0] for line in lines[cmgs[-1] + 1:]}),
    }


class _Path(str):
    """Enough of pathlib for Site (``folder / name``)."""

    def __truediv__(self, name: str) -> str:
        return os.path.join(self, name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kick_latency(trials: int, loop: bool) -> list:
    folder = tempfile.mkdtemp(prefix="smss-bench-kick-")
    port = free_port()
    with running_simulator(pty=False) as sim:
        config = os.path.join(folder, "smss.conf")
        with open(config, "w", encoding="utf-8") as handle:
            handle.write(
                f"[server]\nlisten = 127.0.0.1\nport = {port}\npidfile = {folder}/smss.pid\n"
                f"kick_command = {sys.executable} -m check_and_send.cli\n"
                f"logfile = {folder}/server.log\n"
                f"[database]\nurl = sqlite://{folder}/smss.db\n"
                f"[modem]\ndevice = {sim.url}\npin_guard_file = {folder}/pins\n"
                f"[dispatcher]\nlockfile = {folder}/cas.lock\nstate_dir = {folder}\n"
                f"logfile = {folder}/cas.log\n"
                "poll_interval = 60\n")
        env = dict(os.environ, SMSS_CONFIG=config)
        server = subprocess.Popen([sys.executable, "-m", "smss.cli", "-c", config, "run"],
                                  env=env)
        dispatcher = None
        try:
            _wait_listening(port)
            if loop:
                dispatcher = subprocess.Popen(
                    [sys.executable, "-m", "check_and_send.cli", "-c", config, "--loop"], env=env)
                time.sleep(3)  # the loop has opened the modem
            results = []
            for trial in range(trials + 1):
                before = len(sim.control.sent())
                with socket.create_connection(("127.0.0.1", port)) as sock:
                    sock.sendall(f"#420608337726;kick {trial}\n".encode())
                    reply = sock.recv(100)
                    acked = time.time()
                assert reply.startswith(b"OK"), reply
                deadline = time.monotonic() + 30
                while len(sim.control.sent()) == before and time.monotonic() < deadline:
                    time.sleep(0.005)
                sent = sim.control.sent()[before]
                if trial:  # the first one also pays for imports being cold
                    results.append(sent["timestamp"] - acked)
                time.sleep(1.5)  # let the pass finish: each trial starts from an idle system
            return results
        finally:
            for process in (dispatcher, server):
                if process is not None:
                    process.terminate()
                    process.wait(30)


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20, help="realistic-latency messages")
    parser.add_argument("--ceiling", type=int, default=300, help="latency-0 messages")
    parser.add_argument("--kicks", type=int, default=10, help="kick latency trials per mode")
    args = parser.parse_args()

    realistic = through_a_pass(args.messages, "realistic")
    ceiling = through_a_pass(args.ceiling, 0)
    print("dispatch through the modem simulator (one check_and_send pass over a full queue)")
    print(f"{'mode':<28}{'messages':>9}{'seconds':>9}{'msg/min':>9}")
    for name, figures in (("realistic latency (2-4 s)", realistic),
                          ("latency 0 (ceiling)", ceiling)):
        print(f"{name:<28}{figures['messages']:>9}{figures['seconds']:>9.1f}"
              f"{figures['per_minute']:>9.1f}")
    for name, figures in (("realistic", realistic), ("ceiling", ceiling)):
        steady = figures["cmgs"] == figures["parts"] and not figures["sending_other"]
        print(f"AT commands ({name}): {figures['cmgs']} AT+CMGS for {figures['parts']} parts,"
              f" nothing else between the first and the last"
              f"{'' if steady else ' (but: ' + ', '.join(figures['sending_other']) + ')'};"
              f" per pass: {figures['init_commands']} to open the modem, then"
              f" {', '.join(figures['after'])} to read the SIM and the signal"
              f"  {mark(steady)}")
    for loop in (False, True):
        latencies = kick_latency(args.kicks, loop)
        name = "check_and_send --loop" if loop else "one-shot pass per kick"
        p50 = statistics.median(latencies) * 1000
        worst = max(latencies) * 1000
        print(f"kick to first AT+CMGS, {name}: p50 {p50:.0f} ms, max {worst:.0f} ms"
              f" ({len(latencies)} trials)  {mark(worst < 200)}")
    print("cron alone (no kick): up to 60 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
