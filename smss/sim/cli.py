# PYTHON_ARGCOMPLETE_OK (shell completion: smss.completion)
"""``smss-modem-sim``: run the GSM modem simulator from the command line.

Owns: the command-line options, logging setup for the process, printing where
the simulator listens (one JSON line on stdout, for scripts and tests:
``{"url": "socket://127.0.0.1:PORT", "pty": PATH, "control": "127.0.0.1:PORT"}``),
and running until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from typing import List, Optional

from smss import completion
from smss.sim.runtime import Simulator
from smss.sim.settings import REALISTIC, SimConfig


def _latency(text: str):
    if text == REALISTIC:
        return REALISTIC
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("latency must not be negative")
    return value


def _listen(text: str):
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def _setting(item: str):
    """``KEY=VALUE`` with VALUE as JSON when it parses, else as a string."""
    key, sep, value = item.partition("=")
    if not sep:
        raise ValueError(f"--set takes KEY=VALUE, not {item!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smss-modem-sim",
        description="GSM modem simulator speaking AT commands over TCP and a pseudo-terminal.",
    )
    parser.add_argument("--listen", type=_listen, default=("127.0.0.1", 0), metavar="HOST:PORT",
                        help="TCP address of the modem (port 0: any free port)")
    parser.add_argument("--no-tcp", action="store_true", help="no TCP transport")
    parser.add_argument("--pty", metavar="PATH",
                        help="create a pseudo-terminal and a symlink PATH to it "
                        "(e.g. /tmp/sim/ttyUSB0)")
    parser.add_argument("--control", type=int, default=0, metavar="PORT",
                        help="control channel port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--pin", help="SIM PIN the modem asks for (default: none)")
    parser.add_argument("--capacity", type=int, default=30, help="SIM (SM) message slots")
    parser.add_argument("--latency", type=_latency, default=0.0,
                        help='seconds per AT+CMGS, or "realistic" (default 0)')
    parser.add_argument("--first-index", type=int, choices=(0, 1), default=1,
                        help="index of the first storage slot")
    parser.add_argument("--charset", default="IRA",
                        help="+CSCS after reset (GSM, IRA, UCS2, 8859-1)")
    parser.add_argument("--ussd-encoding", choices=("gsm7", "ucs2", "text"), default="gsm7")
    parser.add_argument("--seed", type=int, help="seed for random faults and latency")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                        help="any other setting, e.g. --set status_report_delay=2 "
                        "--set 'status_report_statuses=[48,0]' (repeatable)")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    completion.enable(parser)
    args = parser.parse_args(argv)
    level = logging.WARNING if not args.verbose else (logging.INFO if args.verbose == 1
                                                      else logging.DEBUG)
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        config = SimConfig(pin=args.pin, capacity=args.capacity, latency=args.latency,
                           first_index=args.first_index, charset=args.charset,
                           ussd_encoding=args.ussd_encoding, seed=args.seed)
        config.update(**dict(_setting(item) for item in args.set))
    except ValueError as exc:
        print(f"smss-modem-sim: {exc}", file=sys.stderr)
        return 2
    host, port = args.listen
    try:
        simulator = Simulator(config, host=host, tcp_port=None if args.no_tcp else port,
                              pty_path=args.pty, control_port=args.control)
    except OSError as exc:
        print(f"smss-modem-sim: {exc}", file=sys.stderr)
        return 1
    done = threading.Event()

    def stop(signum, frame) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    simulator.start()
    print(json.dumps({"url": simulator.url, "pty": simulator.pty_path,
                      "control": simulator.control_address}), flush=True)
    try:
        while not done.wait(1.0):
            pass
    finally:
        simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
