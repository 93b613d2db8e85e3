"""SMPP benchmark: messages per second to node-smpp acting as the SMSC, window 1 and 10.

    python3 bench/smpp.py [--messages 2000] [--delays 0,20] [--windows 1,10] [--json FILE]
    python3 bench/smpp.py --quick

Needs ``node`` and ``npm ci`` in tests/smsc (as the tests do).  Two measurements, each
for every window and every SMSC answer delay (``--delays``, in ms: 0 is the loopback
itself, 20 is closer to an operator's SMSC across the Internet, where a window pays):

1. ``send_many``: the transport alone, ``SmppTransport.send_many`` over N one-part
   messages (what the dispatcher reaches once it hands a batch over).
2. ``check_and_send``: one pass of the real dispatcher over a queue of N messages in
   SQLite (each message claimed, marked, sent and moved to ``sms`` in its own commits).

Every outcome is checked: the SMSC must have seen exactly N submit_sm, each answered.
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--delays", default="0,20", help="SMSC answer delays in ms")
    parser.add_argument("--windows", default="1,10")
    parser.add_argument("--quick", action="store_true", help="200 messages, delay 0 only")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.delays = 200, "0"
    problem = node_available()
    if problem:
        print(f"bench/smpp.py: {problem}", file=sys.stderr)
        return 2
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
