"""Serving the web application with uvicorn, inside ``smss run`` or alone (``smss web``).

Inside ``smss run`` the web server shares the TCP server's event loop, its
``Committer`` (one group commit for both doors) and its dispatcher kicker.
Alone, ``smss web`` makes its own committer and kicker the same way
``smss.service`` does.  Either way the listening socket is bound before
serving (``bind``), so "address already in use" is reported at start, and
smss, not uvicorn, owns the signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from typing import Iterator, List, Optional, Sequence

import uvicorn

from smss import logs
from smss.config import Config
from smss.events.worker import DeliveryWorker
from smss.spooler.committer import Committer
from smss.spooler.kick import Kicker
from smss.spooler.listen import open_listener
from smss.web.app import create_app
from smss.web.db import Pool
from smss.web.sending import Sender
from smss.web.settings import WebSettings

log = logging.getLogger(__name__)


def bind(config: Config) -> List[socket.socket]:
    return [open_listener(config.get("web", "listen"), config.get("web", "port"), 128)]


class _Uvicorn(uvicorn.Server):
    """uvicorn without its signal handlers: the process's owner decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        pass


class WebServer:
    def __init__(self, config: Config, committer: Committer) -> None:
        self.settings = WebSettings.from_config(config)
        self.pool = Pool(self.settings.database)
        sender = Sender(committer, self.settings.rules, self.settings.max_record_bytes)
        self.app = create_app(self.settings, sender, self.pool)
        trusted = list(self.settings.trusted_proxies)
        self._config = uvicorn.Config(
            self.app,
            log_config=None,  # smss configured logging already
            access_log=False,
            proxy_headers=bool(trusted),
            forwarded_allow_ips=trusted or None,
            server_header=False,
            lifespan="off",
            timeout_keep_alive=30,
            timeout_graceful_shutdown=10,
        )
        self._server = _Uvicorn(self._config)
        self._task: Optional[asyncio.Task] = None

    async def start(self, sockets: Sequence[socket.socket]) -> None:
        self._task = asyncio.get_running_loop().create_task(self._server.serve(list(sockets)))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise RuntimeError("the web server stopped at start")
            await asyncio.sleep(0.02)
        for sock in sockets:
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            log.info("web interface on http://%s:%d/", shown, port)

    async def stop(self) -> None:
        """Stop accepting, let requests in progress finish (a send waits for its commit)."""
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        self.pool.close()


def run_alone(config: Config, sockets: List[socket.socket],
              log_handler: Optional[logging.Handler] = None) -> None:
    """``smss web``: the web interface and API without the TCP door."""
    asyncio.run(_serve_alone(config, sockets, log_handler))


async def _serve_alone(config: Config, sockets: List[socket.socket],
                       log_handler: Optional[logging.Handler]) -> None:
    loop = asyncio.get_running_loop()
    env = {"SMSS_CONFIG": config.path} if config.path else None
    kicker = Kicker(config.get("server", "kick_command"), env=env,
                    dispatcher_lock=config.get("dispatcher", "lockfile"))
    committer = Committer.from_config(
        config, on_commit=lambda count: loop.call_soon_threadsafe(kicker.kick))
    committer.start()
    web = WebServer(config, committer)
    await web.start(sockets)
    worker = DeliveryWorker(config)  # webhooks and dlr-urls (docs/integrations.md)
    worker.start()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, logs.reopen, log_handler)
    await stopping.wait()
    log.info("stopping the web interface")
    await web.stop()
    await loop.run_in_executor(None, worker.stop)
    await loop.run_in_executor(None, committer.stop)
    log.info("web interface stopped")


class ThreadedWebServer:
    """The web application on its own event loop in a thread, with its own committer
    (for ``smss.web.screenshots`` and tests that need the app in this process)::

        with ThreadedWebServer(config) as server:
            server.url   # http://127.0.0.1:PORT
    """

    def __init__(self, config: Config, committer: Optional[Committer] = None) -> None:
        self.config = config
        self.committer = committer or Committer.from_config(config)
        self.sockets = bind(config)
        host, port = self.sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        self._loop = asyncio.new_event_loop()
        self._web: Optional[WebServer] = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="web", daemon=True)

    def __enter__(self) -> "ThreadedWebServer":
        self.committer.start()
        self._thread.start()

        async def start() -> None:
            self._web = WebServer(self.config, self.committer)
            await self._web.start(self.sockets)

        asyncio.run_coroutine_threadsafe(start(), self._loop).result(30)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._web is not None:
            asyncio.run_coroutine_threadsafe(self._web.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()
        self.committer.stop()
