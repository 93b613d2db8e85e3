#!/usr/bin/env python3
"""smss-client: hand SMS records to smss servers and wait until each is acknowledged.

This file owns the client side of the smss wire protocol: escaping message
text, splitting a request into the units the server answers (one reply per
record, one per run of junk), sending them over TCP, reading one
``OK <id>`` / ``ERR <code> <reason>`` line per unit, and failing over between
servers.  It needs only the Python standard library (3.8 or newer), so it can
be copied to any machine and run as ``python3 smss_client.py``; ``pip install
smss`` also installs it as the ``smss-client`` command.

Failover: the servers (``-a host1,host2:2022,[::1]``) are tried in the order
given.  A record answered ``OK`` is done, and so is one answered with any other
``ERR`` than ``ERR 503`` (final: the next server would say the same).  A record
answered ``ERR 503`` (storage unavailable, too many connections) or not
answered at all (no connection, no reply within ``-t``, connection lost, a
peer that is not an smss server) goes to the next server, alone with the other
such records.  After the last server, ``-r`` more rounds over the whole list
follow, with a backoff of 0.5 s doubling after each round.  A record sent but
not answered may have been committed before the connection broke: sending it
again can store it twice.  An alert stored twice is better than an alert lost;
a caller that needs exactly once uses the HTTP API with an Idempotency-Key.

Exit status: 0 when every record was acknowledged ``OK`` (by whichever
server); 1 when anything else happened; 2 for bad usage.
"""

from __future__ import annotations

import argparse
import configparser
import os
import socket
import sys
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 2021
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
FIRST_BACKOFF = 0.5  # seconds before the second round; doubles after each round
MAX_REPLY_LINE = 65536  # a longer reply line is not an smss server talking
MAX_SECONDS = 86400  # the longest -t
MAX_RETRIES = 1000
RETRY_CODE = "503"  # the one ERR code that sends a record to the next server

# Characters that must not appear in a phone number given with -n: they would
# end the record or start a new one.
_PHONE_FORBIDDEN = "#;\\\r\n"

_TEXT_ESCAPES = {"\\": "\\\\", "#": "\\#", ";": "\\;", "\n": "\\n", "\r": "\\r"}


class ClientError(Exception):
    """The exchange failed; the message is the reason printed on stderr."""


class ConnectError(ClientError):
    """No connection could be made to one server."""


class Reply(NamedTuple):
    """One reply line: ``OK <id>`` (ok, ident) or ``ERR <code> <reason>``."""

    ok: bool
    ident: str  # the message id for OK, '' for ERR
    code: str  # '' for OK
    reason: str  # '' for OK
    line: str

    @property
    def final(self) -> bool:
        """True unless the record should go to the next server (ERR 503)."""
        return self.ok or self.code != RETRY_CODE


class Server(NamedTuple):
    host: str
    port: int

    @property
    def label(self) -> str:
        """``host:port``, with an IPv6 address in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


Span = Tuple[int, int]  # [start, end) of one unit in the payload


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


# States of record_spans, mirroring the server's parser.
_OUTSIDE, _JUNK, _PHONE, _TEXT = range(4)
_BLANK = b" \t\r\n\x00"  # NUL: telnet sends CR NUL for a bare CR
_SPACE = b" \t\r\n\x0b\x0c"
_EOL = b"\r\n"


def record_spans(payload: bytes) -> List[Span]:
    """The units the server answers in ``payload``, as byte spans, read as the server reads it.

    A record starts at ``#`` and ends at the next unescaped ``#``, at CR/LF or
    at the end of the stream; in TEXT a backslash escapes the next byte (but
    not a line end).  Each ``#PHONE;TEXT`` gets one reply, and so does a
    ``#PHONE`` without ``;`` (an error).  Blank lines and spaces between
    records and an empty ``#`` get none; other bytes outside a record get one
    error reply per run, up to the next ``#`` or line end.  A span runs from
    the unit's first byte to its end, without the byte that ended it: sent
    alone, or joined to other spans by line ends (``resend_payload``), each
    span is the same unit again.
    """
    spans: List[Span] = []
    state = _OUTSIDE
    start = 0
    phone_seen = False  # the current PHONE has a non-blank byte
    escaped = False
    for index, byte in enumerate(payload):
        if state == _TEXT:
            if escaped:
                escaped = False
                if byte in _EOL:
                    spans.append((start, index))
                    state = _OUTSIDE
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x23 or byte in _EOL:  # '#' or a line end ends the record
                spans.append((start, index))
                state, start, phone_seen = (_PHONE if byte == 0x23 else _OUTSIDE), index, False
        elif state == _PHONE:
            if byte == 0x3B:  # ';': a record, whatever the server thinks of it
                state, escaped = _TEXT, False
            elif byte == 0x23 or byte in _EOL:
                if phone_seen:  # "#PHONE" without ';' gets an error reply
                    spans.append((start, index))
                state, start, phone_seen = (_PHONE if byte == 0x23 else _OUTSIDE), index, False
            elif byte not in _SPACE:
                phone_seen = True
        elif byte == 0x23 or byte in _EOL:  # outside a record, or in junk
            if state == _JUNK:
                spans.append((start, index))
            state, start, phone_seen = (_PHONE if byte == 0x23 else _OUTSIDE), index, False
        elif state == _OUTSIDE and byte not in _BLANK:
            state, start = _JUNK, index  # junk before a record: one error reply
    if state in (_TEXT, _JUNK) or (state == _PHONE and phone_seen):
        spans.append((start, len(payload)))
    return spans


def count_records(payload: bytes) -> int:
    """How many replies the server owes for ``payload``."""
    return len(record_spans(payload))


def resend_payload(payload: bytes, spans: Sequence[Span], indexes: Sequence[int]) -> bytes:
    """The bytes that carry the units ``indexes`` (in order) and nothing else.

    Every unit: the payload as it is.  Some: their spans joined by LF, which
    ends a record without changing it.
    """
    if len(indexes) == len(spans):
        return payload
    return b"\n".join(payload[spans[index][0] : spans[index][1]] for index in indexes)


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


def parse_servers(text: str, default_port: int) -> List[Server]:
    """``host1,host2:2022,[::1]:2021``: servers in order; ValueError for a bad list.

    An entry without a port gets ``default_port``; an IPv6 address takes a port
    only in brackets (a bare ``::1`` is an address without a port).
    """
    servers = []
    for entry in text.split(","):
        entry = entry.strip()
        port = default_port
        if entry.startswith("["):
            close = entry.find("]")
            if close < 0:
                raise ValueError(f"missing ']' in {entry!r}")
            host, rest = entry[1:close], entry[close + 1 :]
            if rest:
                if not rest.startswith(":"):
                    raise ValueError(f"{entry!r}: expected ':PORT' after ']'")
                port = _port_number(rest[1:])
        elif entry.count(":") == 1:
            host, port_text = entry.split(":")
            port = _port_number(port_text)
        else:  # a name, an IPv4 address, or an IPv6 address without a port
            host = entry
        if not host:
            raise ValueError(f"empty host name in {text.strip()!r}")
        if any(char.isspace() or char in "[]," for char in host):
            raise ValueError(f"not a host name: {host!r}")
        servers.append(Server(host, port))
    return servers


def _port_number(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"not a port number: {text!r}")
    value = int(text)
    if not 0 < value < 65536:
        raise ValueError(f"port out of range: {value}")
    return value


def describe(indexes: Sequence[int]) -> str:
    """Record numbers for people: ``record 2``, ``records 1-3, 5``."""
    numbers = [index + 1 for index in indexes]
    runs: List[List[int]] = []
    for number in numbers:
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    text = ", ".join(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)
    return ("record " if len(numbers) == 1 else "records ") + text


# --------------------------------------------------------------------------
# One exchange with one server


def connect(server: Server, timeout: float) -> socket.socket:
    """One connection attempt; ConnectError says why it failed."""
    try:
        return socket.create_connection((server.host, server.port), timeout=timeout)
    except socket.timeout:
        reason = f"timed out after {timeout:g} s"
    except OSError as exc:
        reason = exc.strerror or str(exc)
    raise ConnectError(f"cannot connect to {server.label}: {reason}")


class Outcome(NamedTuple):
    """What one server said: the replies in unit order, and why reading stopped early."""

    replies: List[Reply]
    expected: int
    problem: str  # '' when every expected reply arrived


def exchange(sock: socket.socket, payload: bytes, expected: int, timeout: float) -> Outcome:
    """Send ``payload``, half-close, and read replies until ``expected`` of them came.

    Returns what was read together with the reason reading stopped early
    (timeout, connection closed or lost, also while sending, a line that is
    not a reply).
    """
    deadline = time.monotonic() + timeout
    problem = ""
    try:
        sock.settimeout(timeout)
        sock.sendall(payload)
    except socket.timeout:
        return Outcome([], expected, f"timed out after {timeout:g} s while sending")
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


# --------------------------------------------------------------------------
# Failover: every unit to the servers in turn until it has a final reply


class Delivery(NamedTuple):
    """Where each unit ended: its last reply and the server that gave it."""

    replies: List[Optional[Reply]]  # None: no server answered the unit
    servers: List[Optional[Server]]  # who gave that reply
    sent: List[bool]  # the unit's bytes went out to some server
    tries: int  # servers contacted, failed connections included

    @property
    def ok(self) -> bool:
        return all(reply is not None and reply.ok for reply in self.replies)


def send_records(
    payload: bytes,
    servers: Sequence[Server],
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    report: Callable[[str], None] = lambda line: None,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """Hand every unit of ``payload`` to the first server that gives it a final reply.

    Each round tries ``servers`` in order with the units still open (never
    answered, or answered ``ERR 503``); a server that cannot be reached costs
    no wait.  After a round that left units open, ``retries`` more rounds
    follow, the first after ``FIRST_BACKOFF`` seconds, doubling.  ``report``
    gets one line for each thing that went wrong on the way.
    """
    spans = record_spans(payload)
    if not spans:
        raise ClientError("nothing to send: a record starts with '#'")
    count = len(spans)
    replies: List[Optional[Reply]] = [None] * count
    answered_by: List[Optional[Server]] = [None] * count
    sent = [False] * count
    open_units = list(range(count))
    tries = 0
    delay = FIRST_BACKOFF
    for round_number in range(retries + 1):
        if round_number:
            report(f"{describe(open_units)} not taken by any server; retrying in {delay:g} s")
            sleep(delay)
            delay *= 2
        for server in servers:
            tries += 1
            try:
                sock = connect(server, timeout)
            except ConnectError as exc:
                report(str(exc))
                continue
            with sock:
                outcome = exchange(sock, resend_payload(payload, spans, open_units),
                                   len(open_units), timeout)
            still_open = []
            for index, reply in zip(open_units, outcome.replies):
                replies[index], answered_by[index] = reply, server
                if not reply.final:
                    report(f"{server.label}: record {index + 1}: {reply.line}")
                    still_open.append(index)
            for index in open_units:
                sent[index] = True
            if outcome.problem:
                report(f"{server.label}: {outcome.problem} after {len(outcome.replies)} of"
                       f" {outcome.expected} replies")
                still_open += open_units[len(outcome.replies) :]
            open_units = still_open
            if not open_units:
                return Delivery(replies, answered_by, sent, tries)
    return Delivery(replies, answered_by, sent, tries)


# --------------------------------------------------------------------------
# Command line


def _port(text: str) -> int:
    try:
        return _port_number(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
            "  one line 'OK <id>' on stdout for each record stored, in record order\n"
            "  (-q: none); each failure is explained on stderr, and after a failover\n"
            "  which server stored which records.\n"
            "exit status:\n"
            "  0  every record was acknowledged OK (stored; sent by the dispatcher later)\n"
            "  1  anything else: no server took it, ERR, no reply\n"
            "  2  bad usage\n"
            "several servers:\n"
            "  -a host1,host2:2022,[::1]:2021 tries them in order. A record answered\n"
            "  ERR 503 or not answered (no connection, no reply within -t, connection\n"
            "  lost) goes to the next server; other ERR replies are final. After the\n"
            "  last server, -r more rounds follow, the first after 0.5 s, doubling the\n"
            "  wait each round. A record sent but not answered may have been stored: the next\n"
            "  server can store it a second time (the HTTP API's Idempotency-Key\n"
            "  avoids that).\n"
            "defaults:\n"
            "  host and port come from the options, else from --config FILE ([client]\n"
            "  host, port, timeout, retries), else from $SMSS_HOST and $SMSS_PORT, else\n"
            f"  {DEFAULT_HOST}:{DEFAULT_PORT}.\n"
            "environment:\n"
            "  SMSS_HOST  the servers, a list like -a, when neither -a nor --config names one\n"
            "  SMSS_PORT  the port, when neither -p nor --config gives one\n"
            "examples:\n"
            "  smss-client -a sms.example.net '#420608337726;AHOJ#420777123456;Cau'\n"
            "  backup.sh || smss-client -n +420608337726 -m \"backup failed on $(hostname)\"\n"
            "  tail -n 5 /var/log/syslog | smss-client -a sms1,sms2 -n +420608337726"
        ),
    )
    parser.add_argument("records", nargs="*", metavar="'#PHONE;TEXT...'",
                        help="records, sent as is (several arguments are joined by spaces)")
    parser.add_argument("-a", "--host", metavar="HOST[,HOST...]",
                        help="servers to try in order, each HOST or HOST:PORT or [IPv6]:PORT"
                        f" (default {DEFAULT_HOST})")
    parser.add_argument("-p", "--port", type=_port,
                        help=f"port of the servers given without one (default {DEFAULT_PORT})")
    parser.add_argument("-t", "--timeout", type=_seconds,
                        help="seconds to wait for each connection, and then for all its replies"
                        f" (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("-r", "--retries", type=_count,
                        help="rounds over the servers to repeat while records are not taken,"
                        f" with backoff {FIRST_BACKOFF:g} s, doubling (default {DEFAULT_RETRIES})")
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
    servers: Tuple[Server, ...]
    timeout: float
    retries: int


def resolve_settings(args: argparse.Namespace, parser: argparse.ArgumentParser,
                     environ=os.environ) -> Settings:
    """Options beat the --config file, which beats $SMSS_HOST/$SMSS_PORT, then defaults."""
    from_file: Dict[str, str] = {}
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

    port = pick(args.port, "port", "SMSS_PORT", _port, DEFAULT_PORT)

    def servers(text: str) -> Tuple[Server, ...]:
        try:
            return tuple(parse_servers(text, port))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    from_option = None
    if args.host is not None:
        try:
            from_option = servers(args.host)
        except argparse.ArgumentTypeError as exc:
            parser.error(f"-a {args.host}: {exc}")
    return Settings(
        servers=pick(from_option, "host", "SMSS_HOST", servers, (Server(DEFAULT_HOST, port),)),
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


def summary(delivery: Delivery) -> List[str]:
    """The stderr lines after the exchanges: who stored what (after a failover), what failed."""
    lines = []
    if delivery.tries > 1:
        stored: Dict[str, List[int]] = {}
        for index, (reply, server) in enumerate(zip(delivery.replies, delivery.servers)):
            if reply is not None and reply.ok and server is not None:
                stored.setdefault(server.label, []).append(index)
        lines += [f"{label} stored {describe(indexes)}" for label, indexes in stored.items()]
    unanswered = [index for index, reply in enumerate(delivery.replies) if reply is None]
    for index, reply in enumerate(delivery.replies):
        if reply is not None and not reply.ok:
            lines.append(f"record {index + 1}: {reply.line}")
    never_sent = [index for index in unanswered if not delivery.sent[index]]
    no_reply = [index for index in unanswered if delivery.sent[index]]
    if never_sent:
        lines.append(f"{describe(never_sent)} not sent: no server could be reached")
    if no_reply:
        lines.append(f"{describe(no_reply)}: no reply from any server; a record without"
                     " a reply may or may not be stored")
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_intermixed_args(argv)
    settings = resolve_settings(args, parser)
    payload = build_payload(args, parser)

    def report(line: str) -> None:
        print(f"smss-client: {line}", file=sys.stderr, flush=True)

    try:
        delivery = send_records(payload, settings.servers, settings.timeout, settings.retries,
                                report)
    except ClientError as exc:
        report(str(exc))
        return 1

    if not args.quiet:
        for reply in delivery.replies:
            if reply is not None and reply.ok:
                print(reply.line)
        sys.stdout.flush()
    for line in summary(delivery):
        report(line)
    return 0 if delivery.ok else 1


if __name__ == "__main__":
    sys.exit(main())
