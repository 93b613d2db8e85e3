"""Assembling and running the spooler: sockets, database check, committer, server, kicker,
the outbox's delivery worker (``smss.events.worker``), and the web interface
(``smss.web``) when ``[web] enabled``.

``bind`` opens the listening sockets (done before daemonising, so "address
already in use" reaches the terminal); ``run`` serves until SIGTERM or SIGINT,
then stops accepting, finishes the records already received, and returns.
SIGHUP reopens the log file.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import socket
from typing import List, Optional, Sequence

from smss import logs
from smss.config import Config
from smss.events.worker import DeliveryWorker
from smss.spooler import validate
from smss.spooler.committer import Committer
from smss.spooler.kick import Kicker
from smss.spooler.listen import open_listener
from smss.spooler.server import Limits, SpoolServer
from smss.store import migrations
from smss.store.database import DatabaseUrl, connect_config

log = logging.getLogger(__name__)


def bind(config: Config) -> List[socket.socket]:
    return [open_listener(config.get("server", "listen"), config.get("server", "port"))]


def bind_web(config: Config, always: bool = False) -> List[socket.socket]:
    """The web interface's socket when ``[web] enabled`` (or ``always``); checks its
    settings first, so a bad one is reported at start."""
    if not (always or config.get("web", "enabled")):
        return []
    from smss.web import server as web
    from smss.web.settings import WebSettings

    WebSettings.from_config(config)
    return web.bind(config)


def check_database(config: Config) -> None:
    """Create an empty database's schema, refuse an outdated one (raises)."""
    conn = connect_config(config)
    try:
        migrations.prepare(conn)
    finally:
        conn.close()


def raise_file_limit() -> None:
    """Many idle clients need many descriptors: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else 65536
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass


def run(config: Config, sockets: List[socket.socket],
        log_handler: Optional[logging.Handler] = None,
        web_sockets: Sequence[socket.socket] = ()) -> None:
    raise_file_limit()
    asyncio.run(_serve(config, sockets, log_handler, web_sockets))


async def _serve(config: Config, sockets: List[socket.socket],
                 log_handler: Optional[logging.Handler],
                 web_sockets: Sequence[socket.socket] = ()) -> None:
    loop = asyncio.get_running_loop()
    env = {"SMSS_CONFIG": config.path} if config.path else None
    kicker = Kicker(config.get("server", "kick_command"), env=env,
                    dispatcher_lock=config.get("dispatcher", "lockfile"))
    committer = Committer.from_config(
        config, on_commit=lambda count: loop.call_soon_threadsafe(kicker.kick))
    committer.start()
    server = SpoolServer(
        committer,
        validate.Rules.from_config(config),
        Limits.from_config(config),
        config.get("messages", "legacy_encoding"),
        kicker,
    )
    await server.start(sockets)
    worker = DeliveryWorker(config)  # webhooks and dlr-urls, beside the doors
    worker.start()
    web = None
    if web_sockets:
        from smss.web.server import WebServer

        web = WebServer(config, committer)  # the same group commit and kicker as TCP
        await web.start(web_sockets)
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, logs.reopen, log_handler)
    names = ", ".join("{}:{}".format(*sock.getsockname()[:2]) for sock in sockets)
    log.info("smss listening on %s, queue %s", names,
             DatabaseUrl.parse(config.get("database", "url")).describe())
    await stopping.wait()
    log.info("stopping: no new connections, finishing received records")
    if web is not None:
        await web.stop()
    await server.stop()
    await loop.run_in_executor(None, worker.stop)
    await loop.run_in_executor(None, committer.stop)
    log.info("stopped; %d record(s) accepted since start", server.accepted)

