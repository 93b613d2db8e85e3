"""Dispatch benchmark: messages per minute, AT commands per part, kick-to-send latency.

    python3 bench/dispatch.py [--messages 20] [--ceiling 300] [--kicks 10]
    python3 bench/dispatch.py --modems 1,2,4 [--per-modem 20] [--latency realistic|SECONDS]

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

With ``--modems``, only this: one `check_and_send` pass over a full queue with
N modems (`[transport:gsm1]` ... `[transport:gsmN]`, one simulator each), for
each N given; messages per minute and the ratio to one modem (target: four
modems send at least 3.6 times what one sends).  The queue holds
``--per-modem`` messages per modem, so every run lasts about as long.
"""

from __future__ import annotations

import argparse
import contextlib
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


def through_modems(count: int, per_modem: int, latency) -> dict:
    """One pass over ``count * per_modem`` messages with ``count`` modems."""
    folder = tempfile.mkdtemp(prefix=f"smss-bench-modems{count}-")
    messages = count * per_modem
    with contextlib.ExitStack() as stack:
        sims = [stack.enter_context(running_simulator(latency=latency, pty=False, seed=7 + n))
                for n in range(count)]
        site = Site(_Path(folder), f"sqlite://{folder}/smss.db", None, {})  # the database
        config = os.path.join(folder, "modems.conf")
        with open(config, "w", encoding="utf-8") as handle:
            handle.write(f"[database]\nurl = sqlite://{folder}/smss.db\n"
                         f"[dispatcher]\nlockfile = {folder}/cas.lock\nstate_dir = {folder}\n"
                         f"logfile = {folder}/cas.log\n")
            for n, sim in enumerate(sims, 1):
                handle.write(f"[transport:gsm{n}]\ntype = modem\ndevice = {sim.url}\n"
                             f"pin_guard_file = {folder}/pins{n}\n"
                             "send_timeout = 30\ncommand_timeout = 10\n")
        for i in range(messages):
            site.enqueue("+420608337726", f"Zaloha serveru {i}")
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "check_and_send.cli", "-c", config],
                                capture_output=True, text=True, timeout=3600)
        seconds = time.monotonic() - started
        if result.returncode != 0:
            raise RuntimeError(f"pass failed ({result.returncode}): {result.stderr[-2000:]}")
        per_sim = [sim.control.sent() for sim in sims]
    sent = [record for records in per_sim for record in records]
    if len(sent) != messages:
        raise RuntimeError(f"{len(sent)} of {messages} messages reached the simulators")
    sending = max(r["answered"] for r in sent) - min(r["timestamp"] for r in sent)
    network = sum(r["answered"] - r["timestamp"] for r in sent) / len(sent)
    return {"modems": count, "messages": messages, "seconds": seconds,
            "per_minute": messages / seconds * 60, "sending_seconds": sending,
            "network_seconds": network, "by_modem": [len(records) for records in per_sim]}


def modem_scaling(counts, per_modem: int, latency) -> int:
    rows = [through_modems(count, per_modem, latency) for count in counts]
    base = next((row for row in rows if row["modems"] == 1), None)
    label = "realistic latency (2-4 s)" if latency == "realistic" else f"{latency} s"
    print(f"one check_and_send pass, N modems ([transport:gsm1..N]), simulator AT+CMGS: {label}")
    print(f"{'modems':>6}{'messages':>9}{'seconds':>9}{'msg/min':>9}{'ratio':>7}"
          f"{'sending s':>11}{'AT+CMGS s':>11}  per modem")
    for row in rows:
        ratio = row["per_minute"] / base["per_minute"] if base else float("nan")
        print(f"{row['modems']:>6}{row['messages']:>9}{row['seconds']:>9.1f}"
              f"{row['per_minute']:>9.1f}{ratio:>6.2f}x{row['sending_seconds']:>11.1f}"
              f"{row['network_seconds']:>11.2f}  {'/'.join(map(str, row['by_modem']))}")
    print("(sending s: first AT+CMGS to the last answer; AT+CMGS s: the simulator's mean"
          " time to answer one, its random latency)")
    four = next((row for row in rows if row["modems"] == 4), None)
    if base and four:
        ratio = four["per_minute"] / base["per_minute"]
        print(f"four modems / one: {ratio:.2f}x (target >= 3.6x)  {mark(ratio >= 3.6)}")
    return 0


def mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20, help="realistic-latency messages")
    parser.add_argument("--ceiling", type=int, default=300, help="latency-0 messages")
    parser.add_argument("--kicks", type=int, default=10, help="kick latency trials per mode")
    parser.add_argument("--modems", metavar="N,N,...",
                        help="only measure one pass with each of these numbers of modems")
    parser.add_argument("--per-modem", type=int, default=20,
                        help="--modems: messages queued per modem")
    parser.add_argument("--latency", default="realistic",
                        help="--modems: the simulator's latency, 'realistic' or seconds per"
                             " AT+CMGS")
    args = parser.parse_args()
    if args.modems:
        counts = [int(count) for count in args.modems.split(",")]
        latency = args.latency if args.latency == "realistic" else float(args.latency)
        return modem_scaling(counts, args.per_modem, latency)

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
