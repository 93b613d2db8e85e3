"""Listening sockets, opened before daemonising so "address already in use" reaches the
terminal, and handed to asyncio (the spooler) or uvicorn (the web interface)."""

from __future__ import annotations

import socket


def open_listener(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A non-blocking listening TCP socket; "::" takes IPv4 connections too."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock
