"""SMPP benchmark: messages per second to node-smpp acting as the SMSC.

    python3 bench/smpp.py --drain [--messages 10000] [--windows 1,10,100]
                          [--backends sqlite,mariadb] [--binds 1] [--repeat 3] [--delay 0]
    python3 bench/smpp.py [--messages 2000] [--delays 0,20] [--windows 1,10] [--json FILE]
    python3 bench/smpp.py --quick
    python3 bench/smpp.py --throttled [--messages 20]   # an SMSC taking 5 submit_sm a second
    python3 bench/smpp.py --drops [--messages 20]       # an SMSC dropping every 8th PDU

Needs ``node`` and ``npm ci`` in tests/smsc (as the tests do); ``--drain`` on MariaDB
needs Debian's ``mariadb-server`` (a private server is started, as for the tests).

``--drain``: the durable queue to the SMSC.  ``check_and_send --loop`` runs bound to
the SMSC (which answers every submit_sm at once and reports none of them, so it spends
its time on SMPP alone); N one-part messages are put in the queue in one transaction,
the dispatcher is kicked (SIGUSR1), and the time runs from the kick to the commit of the
last ``sms`` row (its ``sent_at``).  In the same run, before each cell, the ceiling:
node-smpp's own client (``tests/smsc/client.js``) sending N submit_sm with the same
window and binds to the same SMSC.  Each cell runs ``--repeat`` times, ceiling and
smss alternating; the medians and their ratio are printed, with the CPU time the
dispatcher process used per message (``--delay``: an SMSC that answers after so many
ms, where a window and several binds pay).  Every message must be in
``sms`` as sent and the SMSC must have taken exactly N submit_sm.

Without ``--drain``, two measurements, each for every window and every SMSC answer
delay (``--delays``, in ms: 0 is the loopback itself, 20 is closer to an operator's
SMSC across the Internet, where a window pays):

1. ``send_many``: the transport alone, ``SmppTransport.send_many`` over N one-part
   messages (what the dispatcher reaches once it hands a batch over).
2. ``check_and_send``: one pass of the real dispatcher over a queue of N messages in
   SQLite, process start included.

Every outcome is checked: the SMSC must have seen exactly N submit_sm, each answered.

``--throttled`` and ``--drops`` time a misbehaving SMSC instead (the tests check the
behaviour; the time is only printed here): ``check_and_send --loop`` (window 10,
``retry_delay = 0``) from the kick to the last of N messages in ``sms``, against an SMSC
that takes 5 submit_sm a second and throttles the rest, with and without a fifth of what
it takes answered ESME_RSYSERR (the dispatcher retries those); and against one that
closes the connection instead of processing every 8th PDU.  Printed with each: what the
SMSC allows (the submit_sm it takes, at its rate), the throttle pauses, the drops and the
longest drop-to-bind gap; every message must be taken exactly once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for folder in (REPO, os.path.join(REPO, "tests")):
    if folder not in sys.path:
        sys.path.insert(0, folder)

import collections  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

import harness  # noqa: E402
from support_dispatch import Site  # noqa: E402
from support_smsc import Smsc, node_available  # noqa: E402

from smss.smpp.settings import SmppSettings  # noqa: E402
from smss.store import queue  # noqa: E402
from smss.store.database import as_datetime  # noqa: E402
from smss.transports.base import Sent  # noqa: E402
from smss.transports.smpp import SmppTransport  # noqa: E402

PHONE = "+420608337726"


class _Path(str):
    """Enough of pathlib for Site (``folder / name``)."""

    def __truediv__(self, name: str) -> str:
        return os.path.join(self, name)


def transport_alone(smsc: Smsc, messages: int, window: int) -> dict:
    folder = tempfile.mkdtemp(prefix="smss-bench-smpp-")
    transport = SmppTransport(SmppSettings(
        host=smsc.host, port=smsc.port, system_id="smss", password="secret", window=window,
        spool=os.path.join(folder, "inbox"), response_timeout=30))
    transport.open()
    try:
        items = [(n, PHONE, f"Benchmark message {n}") for n in range(messages)]
        started = time.monotonic()
        outcomes = list(transport.send_many(items))
        seconds = time.monotonic() - started
    finally:
        transport.close()
    sent = sum(1 for _, outcome in outcomes if isinstance(outcome, Sent))
    if sent != messages:
        raise RuntimeError(f"{messages - sent} of {messages} not sent: {outcomes[:3]}")
    return {"seconds": seconds, "per_second": messages / seconds}


def through_a_pass(smsc: Smsc, messages: int, window: int) -> dict:
    folder = _Path(tempfile.mkdtemp(prefix="smss-bench-smpp-pass-"))
    site = Site(folder, f"sqlite://{folder}/smss.db", None, {
        "dispatcher": {"transport": "smpp", "batch_size": "100", "loglevel": "WARNING"},
        "smpp": {"url": smsc.url, "window": str(window), "spool": f"{folder}/inbox",
                 "registered_delivery": "no"}})
    for start in range(0, messages, 500):
        conn = site.connect()
        try:
            with conn.transaction():
                queue.insert(conn, [queue.NewMessage(PHONE, f"Benchmark message {n}")
                                    for n in range(start, min(messages, start + 500))])
        finally:
            conn.close()
    started = time.monotonic()
    result = site.run(timeout=3600)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"pass failed: {site.log()[-2000:]}")
    rows = site.rows("sms", "COUNT(*)", "WHERE status = 'sent'")[0][0]
    if rows != messages:
        raise RuntimeError(f"{rows} of {messages} in sms")
    return {"seconds": seconds, "per_second": messages / seconds}


def ceiling(smsc: Smsc, messages: int, window: int, binds: int, delay: int = 0) -> dict:
    """node-smpp's own client to the same SMSC: N submit_sm, ``window`` unanswered per
    bind, from the first submit_sm to the last submit_sm_resp."""
    smsc.reset()
    smsc.set(quiet=True, respDelayMs=delay)
    done = subprocess.run(["node", "client.js", str(smsc.port), str(messages), str(window),
                           str(binds)], cwd=os.path.join(REPO, "tests", "smsc"),
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"node-smpp client failed: {done.stderr[-2000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    if figures["ok"] != messages or smsc.stats()["submits"] != messages:
        raise RuntimeError(f"node-smpp client: {figures}")
    return {"seconds": figures["seconds"], "per_second": figures["per_second"]}


def drain(smsc: Smsc, backend: "harness.Backend", messages: int, window: int,
          binds: int, folder: str, profile: str = "", delay: int = 0) -> dict:
    """``check_and_send --loop`` bound to the SMSC; N messages queued in one
    transaction, a kick; seconds from the kick to the last ``sms`` row's commit.
    ``profile``: a file for py-spy's samples of the dispatcher's threads (raw)."""
    smsc.reset()
    smsc.set(quiet=True, respDelayMs=delay)
    url = backend.new_database(f"w{window}b{binds}")
    place = _Path(tempfile.mkdtemp(prefix="smss-bench-drain-", dir=folder))
    site = Site(place, url, None, {
        "dispatcher": {"transport": "smpp", "poll_interval": "600", "loglevel": "WARNING",
                       "pass_timeout": "600"},
        "smpp": {"url": smsc.url, "window": str(window), "binds": str(binds),
                 "spool": f"{place}/inbox", "registered_delivery": "no",
                 "enquire_link_interval": "0"}})
    loop = site.start("--loop")
    spy = None
    try:
        deadline = time.monotonic() + 60
        while len(smsc.stats()["sessions"]) < binds:
            if time.monotonic() > deadline or loop.poll() is not None:
                raise RuntimeError(f"no bind: {site.log()[-2000:]}")
            time.sleep(0.05)
        if profile:  # py-spy samples every thread of the dispatcher (collapsed stacks)
            spy = subprocess.Popen(["py-spy", "record", "--pid", str(loop.pid), "--threads",
                                    "--idle", "-r", "250", "-f", "raw", "-o", profile],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
        conn = site.connect()
        try:
            with conn.transaction():
                queue.insert(conn, [queue.NewMessage(PHONE, f"Benchmark message {n}")
                                    for n in range(messages)])
        finally:
            conn.close()
        server = backend.pid  # MariaDB's process (SQLite works inside the dispatcher)
        cpu = (_cpu_seconds(loop.pid), _cpu_seconds(smsc.process.pid),
               _cpu_seconds(server) if server else 0.0)
        kicked = datetime.now(timezone.utc).replace(tzinfo=None)
        os.kill(loop.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 600
        while True:
            time.sleep(0.25)
            count, last = site.rows("sms", "COUNT(*), MAX(sent_at)", "WHERE status = 'sent'")[0]
            if count >= messages:
                cpu = (_cpu_seconds(loop.pid) - cpu[0], _cpu_seconds(smsc.process.pid) - cpu[1],
                       (_cpu_seconds(server) - cpu[2]) if server else 0.0)
                break
            if time.monotonic() > deadline or loop.poll() is not None:
                raise RuntimeError(f"{count} of {messages} sent: {site.log()[-2000:]}")
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        loop.send_signal(signal.SIGTERM)
        loop.wait(60)
    submits = smsc.stats()["submits"]
    if count != messages or submits != messages:
        raise RuntimeError(f"{count} in sms, {submits} submit_sm for {messages} messages")
    backend.drop(url)
    seconds = (as_datetime(last) - kicked).total_seconds()
    return {"seconds": seconds, "per_second": messages / seconds,
            "dispatcher_cpu_us": cpu[0] / messages * 1e6, "smsc_cpu_us": cpu[1] / messages * 1e6,
            "database_cpu_us": cpu[2] / messages * 1e6}


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time a process used so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_drain(args) -> list:
    """Every backend x window x binds cell: the ceiling and smss, ``--repeat`` times."""
    folder = tempfile.mkdtemp(prefix="smss-bench-smpp-drain-")
    windows = [int(w) for w in (args.windows or "1,10,100").split(",")]
    binds_list = [int(b) for b in args.binds.split(",")]
    rows = []
    smsc = Smsc()
    try:
        for name in args.backends.split(","):
            if name == "mariadb" and not harness.mariadb_available():
                print("mariadb: skipped, MariaDB is not installed (Debian package "
                      "mariadb-server)")
                continue
            os.makedirs(os.path.join(folder, name))
            backend = harness.Backend(name, os.path.join(folder, name)).start()
            try:
                for binds in binds_list:
                    for window in windows:
                        ceilings, ours = [], []
                        for _ in range(args.repeat):
                            ceilings.append(ceiling(smsc, args.messages, window, binds,
                                                    args.delay))
                            ours.append(drain(smsc, backend, args.messages, window, binds,
                                              folder, delay=args.delay))
                        if args.profile:  # one more run under py-spy, not counted
                            os.makedirs(args.profile, exist_ok=True)
                            name = (f"{backend.name}-w{window}-b{binds}-d{args.delay}.txt")
                            drain(smsc, backend, args.messages, window, binds, folder,
                                  profile=os.path.join(args.profile, name), delay=args.delay)
                        top = statistics.median(c["per_second"] for c in ceilings)
                        rate = statistics.median(o["per_second"] for o in ours)
                        cpu = statistics.median(o["dispatcher_cpu_us"] for o in ours)
                        node = statistics.median(o["smsc_cpu_us"] for o in ours)
                        server = statistics.median(o["database_cpu_us"] for o in ours)
                        rows.append(dict(backend=backend.version, window=window, binds=binds,
                                         delay_ms=args.delay,
                                         messages=args.messages, per_second=rate,
                                         ceiling=top, ratio=rate / top,
                                         dispatcher_cpu_us=cpu, smsc_cpu_us=node,
                                         database_cpu_us=server,
                                         runs=[o["per_second"] for o in ours],
                                         ceilings=[c["per_second"] for c in ceilings]))
                        print(f"  {backend.version}: window {window}, binds {binds}: "
                              f"{rate:,.0f} msg/s, ceiling {top:,.0f} ({rate / top:.2f}); "
                              f"CPU per message: dispatcher {cpu:.0f} µs, SMSC {node:.0f} µs, "
                              f"MariaDB {server:.0f} µs",
                              flush=True)
            finally:
                backend.stop()
    finally:
        smsc.close()
    print(f"{'database':<40} {'delay':>5} {'window':>6} {'binds':>5} {'messages':>8} "
          f"{'smss msg/s':>10} {'node-smpp client':>16} {'ratio':>5} {'CPU µs/msg':>10}")
    for row in rows:
        print(f"{row['backend'][:40]:<40} {row['delay_ms']:>5} {row['window']:>6} "
              f"{row['binds']:>5} {row['messages']:>8} {row['per_second']:>10,.0f} "
              f"{row['ceiling']:>16,.0f} {row['ratio']:>5.2f} "
              f"{row['dispatcher_cpu_us']:>10.0f}")
    return rows


def misbehaving(smsc: Smsc, messages: int, behaviour: dict, timeout: float = 600) -> dict:
    """``check_and_send --loop`` against the SMSC set to ``behaviour``: seconds from the
    kick until every message is in ``sms``, and what the SMSC saw."""
    folder = _Path(tempfile.mkdtemp(prefix="smss-bench-smpp-misbehaving-"))
    site = Site(folder, f"sqlite://{folder}/smss.db", None, {
        "dispatcher": {"transport": "smpp", "poll_interval": "60", "loglevel": "INFO",
                       "max_attempts": "10"},
        "smpp": {"url": smsc.url, "window": "10", "spool": f"{folder}/inbox",
                 "registered_delivery": "no", "reconnect_delay": "0.5",
                 "reconnect_max_delay": "2"}})
    smsc.reset()
    smsc.set(**behaviour)
    loop = site.start("--loop")
    try:
        deadline = time.monotonic() + 60
        while "bound (SMSC nodesmsc)" not in site.log():
            if time.monotonic() > deadline or loop.poll() is not None:
                raise RuntimeError(f"no bind: {site.log()[-2000:]}")
            time.sleep(0.05)
        for n in range(messages):
            site.enqueue(PHONE, f"Benchmark message {n}")
        started = time.monotonic()
        os.kill(loop.pid, signal.SIGUSR1)
        while len(site.rows("sms", "id", "WHERE status = 'sent'")) < messages:
            if time.monotonic() - started > timeout or loop.poll() is not None:
                raise RuntimeError(f"not all sent: {site.log()[-2000:]}")
            time.sleep(0.02)
        seconds = time.monotonic() - started
    finally:
        loop.send_signal(signal.SIGTERM)
        loop.wait(60)
    smsc.wait_event("submit_sm", lambda e: e["status"] == 0, count=messages)
    submits = smsc.events("submit_sm")
    taken = collections.Counter(e["text"] for e in submits if e["status"] == 0)
    if sorted(taken.values()) != [1] * messages:
        raise RuntimeError(f"not every message taken once: {taken}")
    binds = [e["t"] for e in smsc.events("bind")]
    gaps = [min([b for b in binds if b >= drop["t"]], default=drop["t"]) - drop["t"]
            for drop in smsc.events("drop")]
    pauses = re.findall(r"throttled by the SMSC; pausing ([\d.]+)s", site.log())
    return {"seconds": seconds, "submits": len(submits),
            "throttled": sum(1 for e in submits if e["status"] == 0x58),
            "errors": sum(1 for e in submits if e["status"] not in (0, 0x58)),
            "pauses": [float(p) for p in pauses], "drops": len(gaps),
            "longest_gap": max(gaps, default=0) / 1000}


def run_misbehaving(args, smsc: Smsc) -> list:
    rows = []
    if args.throttled:
        for share in (0.0, 0.2):
            figures = misbehaving(smsc, args.messages, {"rate": 5, "errorShare": share})
            taken = figures["submits"] - figures["throttled"]  # what the SMSC took, errors too
            rows.append(dict(smsc="5 submit_sm/s" + (f", {share:.0%} ESME_RSYSERR" if share
                                                      else ""),
                             allows=taken / 5.0, **figures))
    if args.drops:
        figures = misbehaving(smsc, args.messages, {"dropEvery": 8})
        rows.append(dict(smsc="drops every 8th PDU", allows=None, **figures))
    print(f"{'SMSC':<32} {'messages':>8} {'seconds':>8} {'it allows':>9} {'submits':>7} "
          f"{'pauses (s)':<24} {'drops':>5} {'longest gap':>11}")
    for row in rows:
        allows = f"{row['allows']:.1f}" if row["allows"] is not None else "-"
        pauses = ",".join(f"{p:g}" for p in row["pauses"]) or "-"
        print(f"{row['smsc']:<32} {args.messages:>8} {row['seconds']:>8.2f} {allows:>9} "
              f"{row['submits']:>7} {pauses:<24} {row['drops']:>5} "
              f"{row['longest_gap']:>10.2f}s")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, help="default 2000 (10000 with --drain, 20 "
                        "with --throttled, --drops, 200 with --quick)")
    parser.add_argument("--delays", default="0,20", help="SMSC answer delays in ms")
    parser.add_argument("--windows", help="default 1,10 (1,10,100 with --drain)")
    parser.add_argument("--drain", action="store_true",
                        help="the durable queue drained to the SMSC, with the ceiling")
    parser.add_argument("--backends", default="sqlite,mariadb", help="--drain: databases")
    parser.add_argument("--binds", default="1", help="--drain: SMPP binds (list)")
    parser.add_argument("--repeat", type=int, default=3, help="--drain: runs per cell")
    parser.add_argument("--profile", metavar="DIR",
                        help="--drain: one more run per cell under py-spy (every thread, "
                        "idle time too), its samples as collapsed stacks in DIR")
    parser.add_argument("--delay", type=int, default=0,
                        help="--drain: the SMSC answers each submit_sm after this many ms")
    parser.add_argument("--quick", action="store_true", help="200 messages, delay 0 only")
    parser.add_argument("--throttled", action="store_true",
                        help="time an SMSC taking 5 submit_sm a second (default 20 messages)")
    parser.add_argument("--drops", action="store_true",
                        help="time an SMSC dropping every 8th PDU (default 20 messages)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.delays = args.messages or 200, "0"
    args.messages = args.messages or (20 if args.throttled or args.drops else
                                      10000 if args.drain else 2000)
    problem = node_available()
    if problem:
        print(f"bench/smpp.py: {problem}", file=sys.stderr)
        return 2
    if args.drain:
        rows = run_drain(args)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump({"rows": rows}, handle, indent=2)
        return 0
    if args.throttled or args.drops:
        smsc = Smsc()
        try:
            rows = run_misbehaving(args, smsc)
        finally:
            smsc.close()
        if args.json:
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump({"rows": rows}, handle, indent=2)
        return 0
    delays = [int(d) for d in args.delays.split(",")]
    windows = [int(w) for w in (args.windows or "1,10").split(",")]
    smsc = Smsc()
    rows = []
    try:
        for delay in delays:
            for how, measure in (("send_many", transport_alone),
                                 ("check_and_send", through_a_pass)):
                for window in windows:
                    smsc.reset()
                    smsc.set(respDelayMs=delay)
                    figures = measure(smsc, args.messages, window)
                    submits = smsc.stats()["submits"]
                    if submits != args.messages:
                        raise RuntimeError(f"the SMSC saw {submits} submit_sm, "
                                           f"not {args.messages}")
                    rows.append(dict(how=how, delay_ms=delay, window=window,
                                     messages=args.messages, **figures))
    finally:
        smsc.close()
    print(f"{'measured':<16} {'SMSC delay':>10} {'window':>6} {'messages':>8} "
          f"{'seconds':>8} {'msg/s':>8}")
    for row in rows:
        print(f"{row['how']:<16} {row['delay_ms']:>8} ms {row['window']:>6} "
              f"{row['messages']:>8} {row['seconds']:>8.2f} {row['per_second']:>8.0f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"rows": rows}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
