"""SMPP benchmark: messages per second to node-smpp acting as the SMSC, window 1 and 10.

    python3 bench/smpp.py [--messages 2000] [--delays 0,20] [--windows 1,10] [--json FILE]
    python3 bench/smpp.py --quick
    python3 bench/smpp.py --throttled [--messages 20]   # an SMSC taking 5 submit_sm a second
    python3 bench/smpp.py --drops [--messages 20]       # an SMSC dropping every 8th PDU

Needs ``node`` and ``npm ci`` in tests/smsc (as the tests do).  Two measurements, each
for every window and every SMSC answer delay (``--delays``, in ms: 0 is the loopback
itself, 20 is closer to an operator's SMSC across the Internet, where a window pays):

1. ``send_many``: the transport alone, ``SmppTransport.send_many`` over N one-part
   messages (what the dispatcher reaches once it hands a batch over).
2. ``check_and_send``: one pass of the real dispatcher over a queue of N messages in
   SQLite (each message claimed, marked, sent and moved to ``sms`` in its own commits).

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

from support_dispatch import Site  # noqa: E402
from support_smsc import Smsc, node_available  # noqa: E402

from smss.smpp.settings import SmppSettings  # noqa: E402
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
            from smss.store import queue

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
    parser.add_argument("--messages", type=int, help="default 2000 (20 with --throttled, "
                        "--drops, 200 with --quick)")
    parser.add_argument("--delays", default="0,20", help="SMSC answer delays in ms")
    parser.add_argument("--windows", default="1,10")
    parser.add_argument("--quick", action="store_true", help="200 messages, delay 0 only")
    parser.add_argument("--throttled", action="store_true",
                        help="time an SMSC taking 5 submit_sm a second (default 20 messages)")
    parser.add_argument("--drops", action="store_true",
                        help="time an SMSC dropping every 8th PDU (default 20 messages)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.delays = args.messages or 200, "0"
    args.messages = args.messages or (20 if args.throttled or args.drops else 2000)
    problem = node_available()
    if problem:
        print(f"bench/smpp.py: {problem}", file=sys.stderr)
        return 2
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
    windows = [int(w) for w in args.windows.split(",")]
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
