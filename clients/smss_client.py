#!/usr/bin/env python3
"""smss-client: hand SMS records to an smss spooler and wait until each is acknowledged.

This file owns the client side of the smss wire protocol: escaping message
text, counting the records of a request, sending them over TCP and reading one
``OK <id>`` / ``ERR <code> <reason>`` line per record.  It needs only the
Python standard library (3.8 or newer), so it can be copied to any machine and
run as ``python3 smss_client.py``; ``pip install smss`` also installs it as
the ``smss-client`` command.

Exit status: 0 when every record was acknowledged ``OK``; 1 when anything
else happened (no connection, refused, ``ERR``, timeout, connection closed
early); 2 for bad usage.  Connection attempts are retried with backoff, but
records are never sent twice: once bytes have gone out, a failure is final.
"""

from __future__ import annotations

import argparse
import configparser
import os
import socket
import sys
import time
from typing import Callable, List, NamedTuple, Optional, Sequence

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 2021
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
FIRST_BACKOFF = 0.5  # seconds before the first retry; doubles after each one
MAX_REPLY_LINE = 65536  # a longer reply line is not an smss server talking
MAX_SECONDS = 86400  # the longest -t
MAX_RETRIES = 1000

# Characters that must not appear in a phone number given with -n: they would
# end the record or start a new one.
_PHONE_FORBIDDEN = "#;\\\r\n"

_TEXT_ESCAPES = {"\\": "\\\\", "#": "\\#", ";": "\\;", "\n": "\\n", "\r": "\\r"}


class ClientError(Exception):
    """The exchange failed; the message is the reason printed on stderr."""


class ConnectError(ClientError):
    """No connection could be made (the only failure that is retried)."""


class Reply(NamedTuple):
    """One reply line: ``OK <id>`` (ok, ident) or ``ERR <code> <reason>``."""

    ok: bool
    ident: str  # the message id for OK, '' for ERR
    code: str  # '' for OK
    reason: str  # '' for OK
    line: str


# --------------------------------------------------------------------------
# The protocol, without I/O


def escape_text(text: str) -> str:
    """Escape message text so that it stays one record: ``\\ # ; LF CR``."""
    return "".join(_TEXT_ESCAPES.get(char, char) for char in text)


def check_phone(phone: str) -> str:
    """Return ``phone`` stripped; ValueError if it would break the record framing."""
    phone = phone.strip()
    if not phone:
        raise ValueError("empty phone number")
    bad = sorted({char for char in phone if char in _PHONE_FORBIDDEN})
    if bad:
        raise ValueError(f"phone number {phone!r} contains {''.join(bad)!r}")
    return phone


def make_record(phone: str, text: str) -> str:
    """One record ``#PHONE;TEXT`` with the text escaped."""
    return "#" + check_phone(phone) + ";" + escape_text(text)


# States of count_records, mirroring the server's parser.
_OUTSIDE, _JUNK, _PHONE, _TEXT = range(4)
_BLANK = b" \t\r\n\x00"  # NUL: telnet sends CR NUL for a bare CR
_SPACE = b" \t\r\n\x0b\x0c"


def count_records(payload: bytes) -> int:
    """How many replies the server owes for ``payload``, read as the server reads it.

    A record starts at ``#`` and ends at the next unescaped ``#``, at CR/LF or
    at the end of the stream; in TEXT a backslash escapes the next byte (but
    not a line end).  Each ``#PHONE;TEXT`` gets one reply, and so does a
    ``#PHONE`` without ``;`` (an error).  Blank lines and spaces between
    records and an empty ``#`` get none; other bytes outside a record get one
    error reply per run, up to the next ``#`` or line end.
    """
    count = 0
    state = _OUTSIDE
    phone_seen = False  # the current PHONE has a non-blank byte
    escaped = False
    for byte in payload:
        if state == _TEXT:
            if escaped:
                escaped = False
                if byte in b"\r\n":
                    state = _OUTSIDE
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x23:  # '#'
                state, phone_seen = _PHONE, False
            elif byte in b"\r\n":
                state = _OUTSIDE
        elif state == _PHONE:
            if byte == 0x3B:  # ';': a record, whatever the server thinks of it
                count += 1
                state, escaped = _TEXT, False
            elif byte == 0x23 or byte in b"\r\n":
                if phone_seen:  # "#PHONE" without ';' gets an error reply
                    count += 1
                state, phone_seen = (_PHONE if byte == 0x23 else _OUTSIDE), False
            elif byte not in _SPACE:
                phone_seen = True
        elif byte == 0x23:  # outside a record, or in junk
            state, phone_seen = _PHONE, False
        elif byte in b"\r\n":
            state = _OUTSIDE
        elif state == _OUTSIDE and byte not in _BLANK:
            count += 1  # junk before a record: one error reply
            state = _JUNK
    if state == _PHONE and phone_seen:
        count += 1
    return count


def parse_reply(line: str) -> Reply:
    """Parse one reply line (no line end): ``OK <id>[ ...]`` or ``ERR <code>[ <reason>]``.

    ClientError for anything else: the peer is not an smss server.
    """
    words = line.split(" ", 2)
    if words[0] == "OK" and len(words) >= 2 and words[1]:
        return Reply(True, words[1], "", "", line)
    if words[0] == "ERR" and len(words) >= 2 and words[1]:
        return Reply(False, "", words[1], words[2] if len(words) > 2 else "", line)
    raise ClientError(f"unexpected reply from the server: {line[:200]!r}")


# --------------------------------------------------------------------------
# The exchange


def connect(
    host: str,
    port: int,
    timeout: float,
    retries: int,
    on_retry: Optional[Callable[[str, float], None]] = None,
    sleep: Callable[[float], None] = time.sleep,
) -> socket.socket:
    """Connect, retrying up to ``retries`` times with doubling backoff."""
    delay = FIRST_BACKOFF
    attempt = 0
    while True:
        try:
            return socket.create_connection((host, port), timeout=timeout)
        except socket.timeout:
            reason = f"cannot connect to {host}:{port}: timed out after {timeout:g} s"
        except OSError as exc:
            detail = exc.strerror or str(exc)
            reason = f"cannot connect to {host}:{port}: {detail}"
        if attempt >= retries:
            raise ConnectError(reason)
        attempt += 1
        if on_retry is not None:
            on_retry(reason, delay)
        sleep(delay)
        delay *= 2


class Outcome(NamedTuple):
    """What came back: the replies in record order, and why reading stopped early."""

    replies: List[Reply]
    expected: int
    problem: str  # '' when every expected reply arrived

    @property
    def ok(self) -> bool:
        return not self.problem and all(reply.ok for reply in self.replies)


def exchange(sock: socket.socket, payload: bytes, expected: int, timeout: float) -> Outcome:
    """Send ``payload``, half-close, and read replies until ``expected`` of them came.

    Returns what was read together with the reason reading stopped early
    (timeout, connection closed or lost, also while sending).  Only a send
    that times out raises ClientError.
    """
    deadline = time.monotonic() + timeout
    problem = ""
    try:
        sock.settimeout(timeout)
        sock.sendall(payload)
    except socket.timeout:
        raise ClientError(f"timed out after {timeout:g} s while sending") from None
    except OSError as exc:
        # A server that refuses (ERR 403, ERR 503) hangs up at once; read its reason.
        problem = f"connection lost while sending: {exc.strerror or exc}"
    try:
        sock.shutdown(socket.SHUT_WR)  # the end of the stream ends the last record (nc -N)
    except OSError:
        pass  # already hung up; what the server said may still be waiting to be read

    replies: List[Reply] = []
    try:
        read_problem = _read_replies(sock, replies, expected, deadline, timeout)
        problem = problem or read_problem
    except ClientError as exc:  # not an smss server talking: stop, keep what was read
        problem = str(exc)
    return Outcome(replies, expected, problem if len(replies) < expected else "")


def _read_replies(sock: socket.socket, replies: List[Reply], expected: int, deadline: float,
                  timeout: float) -> str:
    """Append replies until ``expected``; '' or the reason reading stopped early."""
    problem = ""
    buffer = b""
    while len(replies) < expected:
        newline = buffer.find(b"\n")
        if newline >= 0:
            raw, buffer = buffer[:newline], buffer[newline + 1 :]
            replies.append(parse_reply(raw.rstrip(b"\r").decode("utf-8", "replace")))
            continue
        if len(buffer) > MAX_REPLY_LINE:
            raise ClientError("reply line too long: this is not an smss server")
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise socket.timeout
            sock.settimeout(remaining)
            chunk = sock.recv(4096)
        except socket.timeout:
            problem = f"timed out after {timeout:g} s waiting for the server"
            break
        except OSError as exc:
            problem = f"connection lost: {exc.strerror or exc}"
            break
        if not chunk:
            if buffer.strip():
                replies.append(parse_reply(buffer.rstrip(b"\r").decode("utf-8", "replace")))
            problem = "the server closed the connection"
            break
        buffer += chunk
    return problem


def send_records(
    payload: bytes,
    host: str,
    port: int,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    on_retry: Optional[Callable[[str, float], None]] = None,
) -> Outcome:
    """Connect (with retries), send the records, return the replies in order."""
    expected = count_records(payload)
    if expected == 0:
        raise ClientError("nothing to send: a record starts with '#'")
    sock = connect(host, port, timeout, retries, on_retry)
    with sock:
        return exchange(sock, payload, expected, timeout)


# --------------------------------------------------------------------------
# Command line


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"port out of range: {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {MAX_SECONDS}: {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= value <= MAX_RETRIES:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_RETRIES}: {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smss-client",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Hand SMS messages to an smss server (TCP, port 2021) and wait until each\n"
            "one is stored. Either give records as one argument, '#PHONE;TEXT#PHONE;TEXT'\n"
            "(sent as is: escape '#', ';' and '\\' in the text yourself as \\#, \\; and \\\\),\n"
            "or give -n PHONE (repeatable) with -m TEXT, or -n PHONE and pipe the text\n"
            "on stdin (UTF-8); then the text is escaped for you."
        ),
        epilog=(
            "output:\n"
            "  one line 'OK <id>' on stdout for each record the server stored, in order\n"
            "  (-q: none); each failure is explained on stderr.\n"
            "exit status:\n"
            "  0  every record was acknowledged OK (stored; sent by the dispatcher later)\n"
            "  1  anything else: no connection, refused, ERR, timeout, closed early\n"
            "  2  bad usage\n"
            "defaults:\n"
            "  host and port come from the options, else from --config FILE ([client]\n"
            "  host, port, timeout, retries), else from $SMSS_HOST and $SMSS_PORT, else\n"
            f"  {DEFAULT_HOST}:{DEFAULT_PORT}. Only connecting is retried; records are never\n"
            "  sent twice.\n"
            "examples:\n"
            "  smss-client -a sms.example.net '#420608337726;AHOJ#420777123456;Cau'\n"
            "  backup.sh || smss-client -n +420608337726 -m \"backup failed on $(hostname)\"\n"
            "  tail -n 5 /var/log/syslog | smss-client -n +420608337726 -n +420777123456"
        ),
    )
    parser.add_argument("records", nargs="*", metavar="'#PHONE;TEXT...'",
                        help="records, sent as is (several arguments are joined by spaces)")
    parser.add_argument("-a", "--host", help=f"server host (default {DEFAULT_HOST})")
    parser.add_argument("-p", "--port", type=_port, help=f"server port (default {DEFAULT_PORT})")
    parser.add_argument("-t", "--timeout", type=_seconds,
                        help="seconds to wait for the connection, and then for all replies"
                        f" (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("-r", "--retries", type=_count,
                        help="connection attempts to repeat on failure, with backoff"
                        f" {FIRST_BACKOFF:g} s, doubling (default {DEFAULT_RETRIES})")
    parser.add_argument("-n", "--number", action="append", default=[], metavar="PHONE",
                        help="recipient; repeat for several recipients of the same text")
    parser.add_argument("-m", "--message", metavar="TEXT",
                        help="message text for -n; '-' reads it from stdin")
    parser.add_argument("-c", "--config", metavar="FILE",
                        help="INI file with a [client] section: host, port, timeout, retries")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print nothing on success (errors still go to stderr)")
    return parser


class Settings(NamedTuple):
    host: str
    port: int
    timeout: float
    retries: int


def resolve_settings(args: argparse.Namespace, parser: argparse.ArgumentParser,
                     environ=os.environ) -> Settings:
    """Options beat the --config file, which beats $SMSS_HOST/$SMSS_PORT, then defaults."""
    from_file = {}
    if args.config:
        ini = configparser.ConfigParser(interpolation=None)
        try:
            with open(args.config, encoding="utf-8") as handle:
                ini.read_file(handle)
        except (OSError, configparser.Error) as exc:
            parser.error(f"--config {args.config}: {exc}")
        if ini.has_section("client"):
            from_file = dict(ini.items("client"))
        unknown = set(from_file) - {"host", "port", "timeout", "retries"}
        if unknown:
            parser.error(f"--config {args.config}: [client] unknown key {sorted(unknown)[0]!r}")

    def pick(option, key, env, convert, default):
        if option is not None:
            return option
        for source, text in ((f"{args.config}: [client] {key}", from_file.get(key)),
                             (f"${env}", environ.get(env) if env else None)):
            if text is not None and text.strip():
                try:
                    return convert(text.strip())
                except argparse.ArgumentTypeError as exc:
                    parser.error(f"{source}: {exc}")
        return default

    return Settings(
        host=pick(args.host, "host", "SMSS_HOST", str, DEFAULT_HOST),
        port=pick(args.port, "port", "SMSS_PORT", _port, DEFAULT_PORT),
        timeout=pick(args.timeout, "timeout", None, _seconds, DEFAULT_TIMEOUT),
        retries=pick(args.retries, "retries", None, _count, DEFAULT_RETRIES),
    )


def read_stdin_text(stream=None) -> str:
    """The whole of stdin as text: UTF-8, bad bytes replaced, trailing line ends dropped."""
    stream = stream if stream is not None else sys.stdin.buffer
    text = stream.read().decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.rstrip("\r\n")


def build_payload(args: argparse.Namespace, parser: argparse.ArgumentParser,
                  stdin=None) -> bytes:
    """The bytes to send, from the positional records or from -n/-m/stdin."""
    stdin = stdin if stdin is not None else sys.stdin
    if args.records and (args.number or args.message is not None):
        parser.error("give either records '#PHONE;TEXT' or -n PHONE -m TEXT, not both")
    if args.records:
        # Passed as is; surrogateescape gives back the exact bytes of argv.
        return " ".join(args.records).encode("utf-8", "surrogateescape")
    if args.message is not None and not args.number:
        parser.error("-m needs at least one -n PHONE")
    if not args.number:
        parser.error("nothing to send: give '#PHONE;TEXT' or -n PHONE -m TEXT")
    if args.message == "-" or (args.message is None and not _isatty(stdin)):
        text = read_stdin_text(getattr(stdin, "buffer", stdin)) if stdin is not None else ""
        if not text:
            parser.error("no message text on stdin")
    elif args.message is None:
        parser.error("no message: give -m TEXT, or pipe the text on stdin")
    else:
        text = args.message
    try:
        records = [make_record(phone, text) for phone in args.number]
    except ValueError as exc:
        parser.error(str(exc))
    return "".join(records).encode("utf-8", "surrogateescape")


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_intermixed_args(argv)
    settings = resolve_settings(args, parser)
    payload = build_payload(args, parser)

    def on_retry(reason: str, delay: float) -> None:
        print(f"smss-client: {reason}; retrying in {delay:g} s", file=sys.stderr, flush=True)

    try:
        outcome = send_records(payload, settings.host, settings.port, settings.timeout,
                               settings.retries, on_retry)
    except ClientError as exc:
        print(f"smss-client: {exc}", file=sys.stderr)
        return 1

    for number, reply in enumerate(outcome.replies, 1):
        if reply.ok:
            if not args.quiet:
                print(reply.line)
        else:
            print(f"smss-client: record {number}: {reply.line}", file=sys.stderr)
    if outcome.problem:
        print(f"smss-client: {outcome.problem} after {len(outcome.replies)} of"
              f" {outcome.expected} replies; a record without a reply may or may not"
              " be stored", file=sys.stderr)
    sys.stdout.flush()
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
