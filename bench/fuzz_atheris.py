"""Coverage-guided fuzzing with atheris (libFuzzer) of the three parsers, for a bounded time.

    python3 bench/fuzz_atheris.py [--seconds 30] [--targets protocol,atparse,pdu]

Each target runs in its own process for ``--seconds`` with the smss modules
instrumented.  The properties are the ones the hypothesis fuzz tests check
(``check_protocol``, ``check_atparse``, ``check_pdu`` in tests/test_fuzz_*.py):
an exception other than the documented ones, a broken property, or an input
that takes more than 10 s is a failure, and libFuzzer writes the input to
``--artifacts`` (``crash-*`` / ``timeout-*``) for replay:
``python3 bench/fuzz_atheris.py --run pdu --seconds 0 --artifacts DIR FILE``.
Exit status 0 when every target ran its time without a failure.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
TARGETS = ("protocol", "atparse", "pdu")


# --- inside one fuzzing process ------------------------------------------------------------

def load_target(name: str):
    """(test_one_input, seed inputs) for a target, with the smss code instrumented."""
    import atheris

    for folder in (REPO, os.path.join(REPO, "tests")):
        sys.path.insert(0, folder)
    with atheris.instrument_imports(include=["smss"]):
        import smss.gsm.pdu  # noqa: F401
        import smss.modem.atparse  # noqa: F401
        import smss.spooler.protocol  # noqa: F401
    if name == "protocol":
        from test_fuzz_protocol import check_protocol

        def one_input(data: bytes) -> None:
            fdp = atheris.FuzzedDataProvider(data)
            limit = 8192 if fdp.ConsumeBool() else fdp.ConsumeIntInRange(1, 64)
            cuts = fdp.ConsumeIntListInRange(fdp.ConsumeIntInRange(0, 8), 0, 1024)
            check_protocol(fdp.ConsumeBytes(fdp.remaining_bytes()), cuts, limit)

        seeds = [b"\x01\x00#420608337726;AHOJ#420777123456;Cau\r\n#bad\n\\#x;y\\",
                 b"\x00\x05\x02\x00\x03#1;" + b"x" * 80 + b"\\n#2;\xe8\xe1\n"]
        return one_input, seeds
    if name == "atparse":
        from test_fuzz_atparse import FRAGMENTS, check_atparse

        commands = ["AT", "AT+CSQ", "AT+CMGS=23", "ATD123;", 'AT+CUSD=1,"*100#"', "AT+CMGL=4"]

        def one_input(data: bytes) -> None:
            fdp = atheris.FuzzedDataProvider(data)
            max_line = 8192 if fdp.ConsumeBool() else fdp.ConsumeIntInRange(1, 48)
            ops = []
            while fdp.remaining_bytes() and len(ops) < 40:
                kind = fdp.ConsumeIntInRange(0, 9)
                if kind <= 3:
                    ops.append(("feed", fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 96))))
                elif kind == 4:
                    ops.append(("feed", fdp.PickValueInList(FRAGMENTS)))
                elif kind == 5:
                    command = (fdp.PickValueInList(commands) if fdp.ConsumeBool()
                               else fdp.ConsumeUnicode(24))
                    ops.append(("begin", command, fdp.PickValueInList([None, True, False])))
                elif kind == 6:
                    ops.append(("begin_pdu", fdp.ConsumeUnicode(40)))
                else:
                    ops.append((("abort",), ("reset",), ("flush",))[kind - 7])
            check_atparse(ops, max_line)

        seeds = [b"\x01" + b"\x05" + b"\x02" + b"\x00AT+CMGS=23\r\r\n> " + b"\x00\x0cOK\r\n"]
        return one_input, seeds
    if name == "pdu":
        from test_fuzz_pdu import VALID, check_pdu

        def one_input(data: bytes) -> None:
            if not data:
                return
            mode, rest = data[0], data[1:]
            length = None if mode & 2 else (mode >> 2)
            if mode & 1:
                check_pdu(rest.decode("latin-1"), length)  # any text
            else:
                check_pdu(rest.hex(), length)  # octets, as the hex a modem sends

        seeds = [b"\x02" + bytes.fromhex(pdu) for pdu in VALID]
        return one_input, seeds
    raise SystemExit(f"unknown target {name!r}; choose from {', '.join(TARGETS)}")


def run_one(name: str, seconds: int, artifacts: str, inputs) -> None:
    import atheris

    one_input, seeds = load_target(name)
    corpus = tempfile.mkdtemp(prefix=f"smss-fuzz-{name}-")
    for number, seed in enumerate(seeds):
        with open(os.path.join(corpus, f"seed{number}"), "wb") as handle:
            handle.write(seed)
    argv = [sys.argv[0], "-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1",
            f"-artifact_prefix={artifacts.rstrip('/')}/"]
    if inputs:
        argv += list(inputs)  # replay these files only
    else:
        argv += [f"-max_total_time={seconds}", corpus]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


# --- the driver ----------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="bounded atheris fuzzing of the smss parsers")
    parser.add_argument("--seconds", type=int, default=30, help="per target")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--artifacts", default="", help="where failing inputs go "
                        "(default: a new temporary folder)")
    parser.add_argument("--run", choices=TARGETS, help=argparse.SUPPRESS)
    parser.add_argument("inputs", nargs="*", help="with --run: replay these inputs")
    args = parser.parse_args(argv)
    artifacts = args.artifacts or tempfile.mkdtemp(prefix="smss-fuzz-artifacts-")
    os.makedirs(artifacts, exist_ok=True)
    if args.run:
        run_one(args.run, args.seconds, artifacts, args.inputs)
        return 0
    try:
        import atheris  # noqa: F401
    except ImportError as exc:
        print(f"atheris is not installed ({exc}); `pip install atheris`", file=sys.stderr)
        return 2
    failed = []
    for name in [t.strip() for t in args.targets.split(",") if t.strip()]:
        command = [sys.executable, os.path.abspath(__file__), "--run", name,
                   "--seconds", str(args.seconds), "--artifacts", artifacts]
        done = subprocess.run(command, capture_output=True, text=True,
                              timeout=args.seconds + 120)
        runs = re.findall(r"Done (\d+) runs in (\d+) second", done.stderr)
        cov = re.findall(r"cov: (\d+) ft: (\d+)", done.stderr)
        summary = (f"{int(runs[-1][0]):,} inputs in {runs[-1][1]} s" if runs else "no summary")
        if cov:
            summary += f", coverage {cov[-1][0]} edges / {cov[-1][1]} features"
        status = "ok" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
        print(f"{name:9} {status}: {summary}", flush=True)
        if done.returncode != 0:
            failed.append(name)
            print("\n".join(done.stderr.splitlines()[-40:]), file=sys.stderr)
    print(f"failing inputs (if any) are in {artifacts}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
