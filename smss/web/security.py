"""Who may see and do what: logins, CSRF, API tokens, throttling and HTTP headers.

- Pages: a login cookie signed with the ``secret_file`` key (Starlette's
  ``SessionMiddleware``, SameSite=Lax, HttpOnly) holding the user's name and a
  stamp of their password hash; every request checks the user still exists
  with that hash, so deleting a user or changing a password ends their logins.
- CSRF: a random token per session, in a hidden field of every form, compared
  in constant time on every POST (the login form included).
- API: ``Authorization: Bearer <token>``; only the token's SHA-256 is stored.
  The API never looks at the login cookie, so no page can be made to call it.
- Failed logins are counted per client address; past ``max_login_failures``
  in 15 minutes that address must wait.
- Every response carries a strict Content-Security-Policy (no inline scripts,
  nothing from other origins) and is not cached unless it is a static file.
"""

from __future__ import annotations

import collections
import json
import secrets
import threading
import time
from typing import Deque, Dict, Optional

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smss.store import accounts
from smss.store.database import Connection, utcnow
from smss.web import passwords

FAILURE_WINDOW = 15 * 60.0
TOKEN_TOUCH_INTERVAL = 300.0  # write api_token.last_used_at at most this often
DRAIN_LIMIT = 4 * 1024 * 1024  # the most of a refused body read before closing

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
       " form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


class LoginRequired(Exception):
    """The request needs a logged-in user and has none."""


class CsrfFailed(Exception):
    """A POST without the session's CSRF token."""


# -- sessions


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, submitted: Optional[str]) -> None:
    expected = request.session.get("csrf")
    if not expected or not submitted or not secrets.compare_digest(
        expected.encode(), str(submitted).encode()
    ):
        raise CsrfFailed()


def log_in(request: Request, user: accounts.User) -> None:
    request.session.clear()  # nothing from before the login survives it
    request.session.update({
        "user": user.name,
        "stamp": passwords.password_stamp(user.password_hash),
        "csrf": secrets.token_urlsafe(32),
    })


def log_out(request: Request) -> None:
    request.session.clear()


def session_user(request: Request, conn: Connection) -> Optional[str]:
    """The logged-in user's name, or None (and the session is cleared)."""
    name = request.session.get("user")
    if not name:
        return None
    user = accounts.get_user(conn, name)
    if user is None or not secrets.compare_digest(
        passwords.password_stamp(user.password_hash), str(request.session.get("stamp", ""))
    ):
        request.session.clear()
        return None
    return user.name


def authenticate(conn: Connection, name: str, password: str) -> Optional[accounts.User]:
    """The user if the password is right; rehashes a hash made with older parameters."""
    user = accounts.get_user(conn, name) if name else None
    if user is None:
        passwords.burn_time(password)
        return None
    if not passwords.verify_password(user.password_hash, password):
        return None
    if passwords.needs_rehash(user.password_hash):
        new_hash = passwords.hash_password(password)
        accounts.update_hash(conn, user.name, user.password_hash, new_hash)
        user = accounts.User(user.name, new_hash, user.created_at, user.updated_at)
    return user


class LoginThrottle:
    """Failed logins per client address in a sliding window."""

    def __init__(self, limit: int, window: float = FAILURE_WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._failures: Dict[str, Deque[float]] = {}
        self._lock = threading.Lock()

    def wait(self, address: str) -> float:
        """Seconds this address must wait before trying again (0: it may try)."""
        now = time.monotonic()
        with self._lock:
            times = self._prune(address, now)
            if len(times) < self.limit:
                return 0.0
            return max(1.0, times[0] + self.window - now)

    def failed(self, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._prune(address, now).append(now)
            if len(self._failures) > 10000:  # forget the stalest addresses
                for key in list(self._failures)[:5000]:
                    del self._failures[key]

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)

    def _prune(self, address: str, now: float) -> Deque[float]:
        times = self._failures.setdefault(address, collections.deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times


# -- API tokens


class TokenChecker:
    def __init__(self) -> None:
        self._touched: Dict[int, float] = {}

    def check(self, conn: Connection, token: str) -> Optional[accounts.Token]:
        found = accounts.find_token(conn, passwords.token_hash(token)) if token else None
        if found is not None:
            now = time.monotonic()
            if now - self._touched.get(found.id, -TOKEN_TOUCH_INTERVAL) >= TOKEN_TOUCH_INTERVAL:
                self._touched[found.id] = now
                accounts.touch_token(conn, found.id, utcnow())
        return found


# -- ASGI middleware


class Hardening:
    """Security headers on every response; bodies over ``max_body`` get 413."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                ]
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message = dict(message, headers=headers)
            await send(message)

        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.max_body:
                # Read the body first (up to a point), so the client gets to read the
                # 413 instead of a connection reset for the data it is still sending.
                drained = await _drain(receive, DRAIN_LIMIT)
                await _too_large(send_with_headers, self.max_body, close=not drained)
                return
            await self.app(scope, receive, send_with_headers)  # the server enforces the length
            return
        if "chunked" not in headers.get("transfer-encoding", "").lower():
            await self.app(scope, receive, send_with_headers)
            return
        # A chunked body: read it here, up to the limit, then hand it on.
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > self.max_body:
                drained = not message.get("more_body", False) or await _drain(receive,
                                                                              DRAIN_LIMIT)
                await _too_large(send_with_headers, self.max_body, close=not drained)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send_with_headers)


async def _drain(receive: Receive, limit: int) -> bool:
    """Read and drop the request body; True when it ended within ``limit`` bytes."""
    drained = 0
    while drained <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return False
        if not message.get("more_body", False):
            return True
        drained += len(message.get("body", b""))
    return False


async def _too_large(send: Send, limit: int, close: bool) -> None:
    body = json.dumps({"error": f"request body larger than {limit} bytes"}).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
