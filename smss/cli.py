# PYTHON_ARGCOMPLETE_OK (shell completion: smss.completion)
"""The ``smss`` command: run, start, stop, restart, status, migrate, check, doctor, demo,
web, user, token, ussd; each a subcommand with its own options and ``--help``
(``build_parser``), and ``-c FILE`` taken before or after the subcommand.

``run`` stays in the foreground and logs to stderr (for systemd); ``start``
checks the configuration, the database and the port on the terminal, then
daemonises with python-daemon, keeping the listening socket and the log file
open across the fork.  Exit codes: 0 success, 1 failure, 2 bad usage;
``status`` answers 0 when the server runs and 3 when it does not (LSB).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from typing import Callable, List, Optional

from smss import __version__, completion, logs
from smss.config import Config, ConfigError, load
from smss.helpformat import HelpFormatter
from smss.pidlock import LockHeld, PidLock, pid_alive

ROLES = ("admin", "operator", "viewer")  # smss.store.accounts.ROLES (not imported at start)

log = logging.getLogger("smss")

DEFAULT_DAEMON_LOG = "/var/log/smss/smss.log"
STOP_WAIT = 30.0


EPILOG = """\
exit status:
  0  success
  1  failure (the reason is on stderr)
  2  bad usage
  3  status: the server is not running (LSB)

environment:
  SMSS_CONFIG  the configuration file when -c is not given

files:
  /etc/smss/smss.conf  the configuration, see smss.conf(5)
"""


CHECK_DESCRIPTION = """\
Check the site without sending anything, like `postfix check` or `nginx -t`.  First the
configuration file: its syntax, sections and keys given twice, unknown sections and keys,
bad values, and what each transport makes of its settings (URLs, a modem device that does
not exist, two transports with one name or device, routes to unknown transports); every
problem is reported, each with its section and key.  Then the database: it answers, its
schema is current, and no other site sharing it ([dispatcher] site) ran a transport of
one of this site's names in the last 10 minutes.  Then each transport, reached without
sending: a modem answers AT and tells its SIM, registration and storage; an SMPP account
binds as a transmitter and unbinds; a GoIP shows its status page; a Yeastar TG logs in
over AMI and shows its ports.
A modem that check_and_send has open is skipped.

Each line starts with ok, problem or skipped; the last line counts the problems.

exit status:
  0  no problems
  1  at least one problem
  2  bad usage
"""

DOCTOR_DESCRIPTION = """\
Open a device and print what it says about itself.  A modem: manufacturer, model,
revision, IMEI, SIM and PIN state, IMSI, registration, operator, signal, SMS centre and
storage use (what `gammu identify` and `gammu networkinfo` show).  An SMPP link: the
SMSC's answer to a transmitter bind.  A GoIP: its lines and their last jobs.  A Yeastar
TG: each port's module, IMEI, network, signal and SIM.  No PIN is entered and nothing is
sent.  A modem that check_and_send has open is not disturbed: doctor prints what that
dispatcher's last pass recorded instead.

exit status:
  0  every device asked answered
  1  a device could not be asked
  2  bad usage
"""


def _config_option(parser: argparse.ArgumentParser, default=None) -> None:
    parser.add_argument("-c", "--config", metavar="FILE", default=default,
                        help="configuration file (default: $SMSS_CONFIG or /etc/smss/smss.conf)")


def _command(commands, name: str, run: Callable[..., int], help: str,
             description: str = "") -> argparse.ArgumentParser:
    """A subcommand that also takes -c after its name (``smss status -c FILE``)."""
    parser = commands.add_parser(name, help=help, description=description or help,
                                 formatter_class=HelpFormatter)
    _config_option(parser, default=argparse.SUPPRESS)  # never hides a -c given before it
    parser.set_defaults(run=run)
    return parser


def _plain(command: Callable[[Config], int]) -> Callable[..., int]:
    return lambda config, args: command(config)


def build_parser() -> argparse.ArgumentParser:
    """The ``smss`` command line: one subcommand each with its own options and help."""
    parser = argparse.ArgumentParser(
        prog="smss", description="smss, the SMS gateway: the spooler server on TCP port 2021, "
        "its web interface, and the commands that look after them.", epilog=EPILOG,
        formatter_class=HelpFormatter)
    _config_option(parser)
    parser.add_argument("--version", action="version", version=f"smss {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command, help in (
        ("run", cmd_run, "the server in the foreground, logging to stderr (for systemd)"),
        ("start", cmd_start, "check the configuration, the database and the port, then run "
         "the server as a daemon with a PID file"),
        ("stop", cmd_stop, "stop the daemon: it stops accepting, answers every record already "
         "received, and exits"),
        ("restart", cmd_restart, "stop, then start"),
        ("status", cmd_status, "whether the server runs (exit 0, else 3), the queue, what was "
         "sent, received and failed, and each transport's last state"),
        ("migrate", cmd_migrate, "apply the database schema migrations"),
    ):
        _command(commands, name, _plain(command), help)
    _command(commands, "check", _check, "check the configuration (every problem at once, "
             "with its section and key), the database, and each transport without sending; "
             "exit 1 on any problem", CHECK_DESCRIPTION)
    doctor = _command(commands, "doctor", _doctor, "open a device and print what it says: "
                      "model, SIM and PIN state, registration, signal, SMSC, storage use",
                      DOCTOR_DESCRIPTION)
    doctor.add_argument("--via", metavar="NAME", help="only this transport: a "
                        "[transport:NAME] name or a type (default: every transport)")
    demo = _command(commands, "demo", _demo, "the whole gateway with the modem simulator, "
                    "in the foreground (Ctrl-C stops it)")
    demo.add_argument("--dir", default="smss-demo",
                      help="folder for its configuration, queue and logs (default smss-demo)")
    demo.add_argument("--port", type=int, default=2021,
                      help="TCP port of the server (default 2021)")
    demo.add_argument("--control-port", type=int, default=2022, metavar="PORT",
                      help="control channel of the modem simulator (default 2022)")
    _command(commands, "web", _plain(cmd_web), "the web interface and HTTP API alone, in "
             "the foreground ([web] settings)")
    users = _accounts(commands, "user", "web interface users", {
        "add": "create a user; the password is asked twice (or read from the first line "
               "of stdin when it is not a terminal)",
        "passwd": "set a new password (ends that user's logins)",
        "role": "change the user's role",
        "delete": "delete the user (ends that user's logins)",
    })
    users["add"].add_argument("--role", choices=ROLES, help="admin: users, tokens, "
                              "transports; operator: send and act on messages; viewer: "
                              "read only (default: admin when there is no admin yet, else "
                              "operator)")
    users["role"].add_argument("role", choices=ROLES, metavar="ROLE",
                               help="admin, operator or viewer")
    tokens = _accounts(commands, "token", "API tokens", {
        "add": "make a token and print it (shown only this once)",
        "delete": "revoke the token at once",
    })
    tokens["add"].add_argument("--role", choices=ROLES, default="operator",
                               help="viewer: read only; operator: send and act on messages "
                               "(default); admin: also pause and resume transports")
    ussd = _command(commands, "ussd", _ussd, "send a USSD code (*100#) through a modem, GoIP "
                    "or Yeastar and print the network's answer")
    ussd.add_argument("code", nargs="?", metavar="CODE", help="the USSD code, e.g. '*100#'")
    ussd.add_argument("--via", metavar="NAME",
                      help="the transport to ask through: a [transport:NAME] name or a type "
                      "(default: the first transport)")
    ussd.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                      help="seconds to wait for the answer (default 60)")
    return parser


def _accounts(commands, kind: str, what: str, actions: dict) -> dict:
    """``smss user|token ACTION [NAME]``; returns the parser of each action."""
    parser = _command(commands, kind, _account, f"{what}: "
                      f"{', '.join(actions)} NAME, or list", what)
    each = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    parsers = {}
    for action, help in actions.items():
        parsers[action] = _command(each, action, _account, help)
        parsers[action].add_argument("name", metavar="NAME",
                                     help="letters, digits, . _ @ -; at most 64")
    parsers["list"] = _command(each, "list", _account, f"list the {what}")
    return parsers


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    completion.enable(parser)
    args = parser.parse_args(argv)
    if args.command == "ussd" and not args.code:
        parser.error("ussd takes one CODE, e.g. smss ussd '*100#'")
    if args.command in ("demo", "check"):  # (check reads the file itself, every problem)
        return args.run(None, args)
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"smss: {exc}", file=sys.stderr)
        return 1
    if config.path:
        os.environ["SMSS_CONFIG"] = os.path.abspath(config.path)
        config.path = os.environ["SMSS_CONFIG"]
    return args.run(config, args)


def _demo(config: None, args: argparse.Namespace) -> int:
    from smss import demo

    return demo.main(args.dir, args.port, args.control_port)


def _check(config: None, args: argparse.Namespace) -> int:
    from smss import check

    logs.setup("", "CRITICAL")  # the findings are the output, not the transports' logs
    return check.main(args.config)


def _doctor(config: Config, args: argparse.Namespace) -> int:
    from smss import doctor

    logs.setup("", "CRITICAL")
    return doctor.main(config, args.via)


def _account(config: Config, args: argparse.Namespace) -> int:
    from smss.web import accounts

    name = getattr(args, "name", None)
    words = [args.action] + ([name] if name else [])
    if args.action == "role":
        return accounts.main(args.command, words + [args.role], config)
    return accounts.main(args.command, words, config, role=getattr(args, "role", None))


def _ussd(config: Config, args: argparse.Namespace) -> int:
    return cmd_ussd(config, args.code, args.via, args.timeout)


def _pidlock(config: Config) -> PidLock:
    return PidLock(config.get("server", "pidfile"), marker="smss")


def _prepare(config: Config) -> tuple:
    """Everything that can fail before serving: database and ports (raises).
    Returns the server's sockets and the web interface's (none unless enabled)."""
    from smss import service

    service.check_database(config)
    sockets = service.bind(config)
    try:
        return sockets, service.bind_web(config)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise


def cmd_run(config: Config) -> int:
    from smss import service

    handler = logs.setup(config.get("server", "logfile"), config.get("server", "loglevel"))
    lock = _pidlock(config)
    try:
        lock.acquire()
    except LockHeld as exc:
        log.error("another smss is running (pid %s)", exc.pid)
        return 1
    except OSError as exc:
        log.warning("no PID file (%s); `smss status` and `smss stop` will not find this server",
                    exc)
        lock = None
    try:
        sockets, web_sockets = _prepare(config)
    except Exception as exc:  # noqa: BLE001 - any start-up failure ends here with its reason
        log.error("cannot start: %s", exc)
        if lock is not None:
            lock.release()
        return 1
    try:
        service.run(config, sockets, handler, web_sockets)
    finally:
        if lock is not None:
            lock.release()
    return 0


def cmd_start(config: Config) -> int:
    import daemon

    from smss import service

    lock = _pidlock(config)
    pid = lock.holder()
    if pid is not None:
        print(f"smss is already running (pid {pid})")
        return 0
    try:
        os.makedirs(os.path.dirname(os.path.abspath(lock.path)), exist_ok=True)
        sockets, web_sockets = _prepare(config)
    except Exception as exc:  # noqa: BLE001 - reported on the terminal before the fork
        print(f"smss: cannot start: {exc}", file=sys.stderr)
        return 1
    logfile = config.get("server", "logfile") or DEFAULT_DAEMON_LOG
    try:
        handler = logs.setup(logfile, config.get("server", "loglevel"))
    except OSError as exc:
        print(f"smss: cannot open log file {logfile}: {exc}", file=sys.stderr)
        return 1
    keep = [sock.fileno() for sock in sockets + web_sockets]
    stream = getattr(handler, "stream", None)
    if stream is not None:
        keep.append(stream.fileno())  # python-daemon closes every other descriptor
    context = daemon.DaemonContext(
        pidfile=lock,
        files_preserve=keep,
        working_directory="/",
        umask=0o022,
        signal_map={},  # asyncio installs the handlers it needs
    )
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child:  # the command: wait until the daemon holds its PID file, then report
        for sock in sockets + web_sockets:
            sock.close()
        return _await_daemon(lock, child, logfile)
    try:
        with context:
            log.info("smss %s daemon started (pid %d)", __version__, os.getpid())
            service.run(config, sockets, handler, web_sockets)
    except LockHeld as exc:
        log.error("another smss is running (pid %s)", exc.pid)
        os._exit(1)
    except BaseException:  # noqa: BLE001 - the daemon's last word goes to its log
        log.exception("smss daemon failed")
        os._exit(1)
    os._exit(0)


def _await_daemon(lock: PidLock, child: int, logfile: str) -> int:
    deadline = time.monotonic() + STOP_WAIT
    child_status = None
    while time.monotonic() < deadline:
        pid = lock.holder()
        if pid is not None:
            print(f"smss started (pid {pid}), logging to {logfile}")
            return 0
        if child_status is None:
            done, status = os.waitpid(child, os.WNOHANG)
            if done:
                child_status = os.waitstatus_to_exitcode(status)
                if child_status != 0:
                    break
        time.sleep(0.05)
    print(f"smss: the daemon did not start; see {logfile}", file=sys.stderr)
    return 1


def cmd_stop(config: Config) -> int:
    lock = _pidlock(config)
    pid = lock.holder()
    if pid is None:
        print("smss is not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT
    while time.monotonic() < deadline:
        if not pid_alive(pid, lock.marker):
            print(f"smss stopped (pid {pid})")
            return 0
        time.sleep(0.1)
    print(f"smss: pid {pid} did not stop within {STOP_WAIT:.0f}s", file=sys.stderr)
    return 1


def cmd_restart(config: Config) -> int:
    status = cmd_stop(config)
    return status if status else cmd_start(config)


def cmd_status(config: Config) -> int:
    from smss import status

    pid = _pidlock(config).holder()
    print(f"smss: running (pid {pid})" if pid else "smss: not running")
    try:
        for line in status.report(config):
            print(line)
    except Exception as exc:  # noqa: BLE001 - status reports what it cannot reach
        print(f"database: unavailable ({exc})")
    return 0 if pid else 3


def cmd_web(config: Config) -> int:
    """The web interface and HTTP API alone, in the foreground (``[web]`` settings)."""
    from smss import service
    from smss.web import server as web

    handler = logs.setup(config.get("server", "logfile"), config.get("server", "loglevel"))
    try:
        service.check_database(config)
        sockets = service.bind_web(config, always=True)
    except Exception as exc:  # noqa: BLE001 - any start-up failure ends here with its reason
        log.error("cannot start: %s", exc)
        return 1
    web.run_alone(config, sockets, handler)
    return 0


def cmd_ussd(config: Config, code: str, via: Optional[str], timeout: float) -> int:
    """Print the network's answer to a USSD code; 0 when there was one, 1 otherwise."""
    from smss import ussd
    from smss.transports.base import SendFailed

    logs.setup("", "WARNING")
    try:
        print(ussd.run(config, code, via=via, timeout=timeout))
    except SendFailed as exc:
        print(f"smss ussd: {exc.reason}", file=sys.stderr)
        return 1
    return 0


def cmd_migrate(config: Config) -> int:
    from smss.store import migrations
    from smss.store.database import DatabaseError, connect_config

    try:
        conn = connect_config(config, statement_timeouts=False)  # an ALTER may take long
    except DatabaseError as exc:
        print(f"smss: {exc}", file=sys.stderr)
        return 1
    try:
        applied = migrations.migrate(conn)
        version = migrations.current_version(conn)
    finally:
        conn.close()
    for name in applied:
        print(f"applied {name}")
    print(f"schema is at version {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
