"""Logins of the web interface: the browser's cookie and the session kept on the server.

- ``BrowserState`` (ASGI middleware) keeps a small signed cookie,
  ``smss_session``, with what the browser must carry: the random session id of
  a login, the CSRF token of its forms and the one-time messages of the next
  page.  It is HttpOnly and SameSite=Lax, and Secure when the request came
  over HTTPS (directly, or through a proxy in ``trusted_proxies`` that says
  ``X-Forwarded-Proto: https``) or ``secure_cookies`` is set.  Its Max-Age is
  renewed whenever the login is used, so an active browser keeps it.
- The login itself is a ``web_session`` row (``smss.store.sessions``) holding
  the SHA-256 of the id: it ends when its user logs out, when the password
  changes or the user is deleted, and when it was not used for
  ``session_hours``.  A cookie copied before any of that is worth nothing.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from datetime import timedelta
from typing import Optional

from itsdangerous import BadSignature, URLSafeSerializer
from starlette.datastructures import MutableHeaders
from starlette.middleware.sessions import Session
from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smss.store import sessions
from smss.store.database import Connection, utcnow

COOKIE = "smss_session"
TOUCH_EVERY = 60.0  # seconds between two writes of a login's last use (at most)


class BrowserState:
    """``request.session``: a dict signed into the ``smss_session`` cookie."""

    def __init__(self, app: ASGIApp, secret: str, max_age: int, secure_always: bool) -> None:
        self.app = app
        self.serializer = URLSafeSerializer(secret, salt="smss-browser-state")
        self.max_age = max_age
        self.secure_always = secure_always

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = HTTPConnection(scope).cookies.get(COOKIE)
        data: dict = {}
        if raw:
            try:
                loaded = self.serializer.loads(raw)
                data = loaded if isinstance(loaded, dict) else {}
            except (BadSignature, ValueError, json.JSONDecodeError):
                data = {}
        session = scope["session"] = Session(data)
        secure = self.secure_always or scope.get("scheme") == "https"

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and session.modified:
                flags = "; path=/; httponly; samesite=lax" + ("; secure" if secure else "")
                if session:
                    value = self.serializer.dumps(dict(session))
                    cookie = f"{COOKIE}={value}; Max-Age={self.max_age}{flags}"
                else:
                    cookie = f"{COOKIE}=; Max-Age=0{flags}"
                MutableHeaders(scope=message).append("set-cookie", cookie)
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _id_hash(session_id: str) -> str:
    return hashlib.sha256(str(session_id).encode("utf-8", "surrogatepass")).hexdigest()


def start(request: Request, conn: Connection, user: str, address: str) -> None:
    """A new login for ``user``: nothing of the browser's state before it survives."""
    session_id = secrets.token_urlsafe(32)
    sessions.create(conn, _id_hash(session_id), user, address)
    idle = request.app.state.settings.session_seconds
    sessions.prune(conn, utcnow() - timedelta(seconds=idle))
    request.session.clear()
    request.session.update({"sid": session_id, "csrf": secrets.token_urlsafe(32)})


def end(request: Request, conn: Connection) -> None:
    session_id = request.session.get("sid")
    if session_id:
        sessions.end(conn, _id_hash(session_id))
    request.session.clear()


def current(request: Request, conn: Connection) -> Optional[sessions.Login]:
    """The login this browser holds, or None (and the browser's state is cleared)."""
    session_id = request.session.get("sid")
    if not session_id:
        return None
    id_hash = _id_hash(session_id)
    login = sessions.find(conn, id_hash)
    idle = request.app.state.settings.session_seconds
    now = utcnow()
    if login is None or (now - login.last_seen_at).total_seconds() > idle:
        if login is not None:
            sessions.end(conn, id_hash)
        request.session.clear()
        return None
    if (now - login.last_seen_at).total_seconds() >= min(TOUCH_EVERY, idle / 20):
        sessions.touch(conn, id_hash, now)
        request.session["seen"] = int(time.time())  # the cookie goes out again, Max-Age renewed
    return login
