"""Who may see and do what: roles, CSRF, API tokens, throttling and HTTP headers.

- Pages: a login kept on the server (``smss.web.sessions``).  Every page
  checks the login before it looks at anything else the request carries, so
  a stranger gets the login form whatever the input; ``viewer``,
  ``operator`` and ``admin`` are FastAPI dependencies that also check the
  user's role (``smss.store.accounts.ROLES``).
- CSRF: a random token per login, in a hidden field of every form, compared
  in constant time on every POST (the login form included).
- API: ``Authorization: Bearer <token>``; only the token's SHA-256 is stored.
  The API never looks at the login cookie, so no page can be made to call it.
  Each token has a role too.
- Failed logins are counted per client address and per account name, before
  the password is checked (a try counts as a failure until it succeeds); past
  ``max_login_failures`` in 15 minutes that address or account must wait.
- Every response carries a strict Content-Security-Policy (no inline scripts,
  nothing from other origins) and is not cached unless it is a static file;
  one that came over HTTPS says Strict-Transport-Security.
"""

from __future__ import annotations

import collections
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Deque, Dict, Optional, Tuple

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smss.store import accounts
from smss.store.database import Connection, utcnow
from smss.web import passwords, sessions

FAILURE_WINDOW = 15 * 60.0
TOKEN_TOUCH_INTERVAL = 300.0  # write api_token.last_used_at at most this often
DRAIN_LIMIT = 4 * 1024 * 1024  # the most of a refused body read before closing
HSTS = "max-age=31536000"

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
       " form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


class LoginRequired(Exception):
    """The request needs a logged-in user and has none."""


class CsrfFailed(Exception):
    """A POST without the session's CSRF token."""


class Forbidden(Exception):
    """The user or token is known, but its role does not allow this."""

    def __init__(self, who: "Who", needed: str) -> None:
        super().__init__(f"{who.name} is {who.role}; this needs {needed}")
        self.who = who
        self.needed = needed


@dataclass(frozen=True)
class Who:
    """A logged-in user (door ``web``) or an API token (door ``api``) and its role."""

    name: str
    role: str
    door: str = "web"

    @property
    def actor(self) -> str:
        """How the audit trail names it: ``web:alice``, ``api:nagios``."""
        return f"{self.door}:{self.name}"

    def may(self, needed: str) -> bool:
        return accounts.role_allows(self.role, needed)


# -- pages: logins and roles (FastAPI dependencies)


def _logged_in(request: Request) -> Who:
    with request.app.state.pool.connection() as conn:
        login = sessions.current(request, conn)
    if login is None:
        raise LoginRequired()
    return Who(login.user, login.role)


def _needs(role: str):
    def dependency(request: Request) -> Who:
        who = _logged_in(request)
        if not who.may(role):
            raise Forbidden(who, role)
        return who

    dependency.__name__ = f"needs_{role}"
    return dependency


viewer = _needs(accounts.VIEWER)  # any logged-in user
operator = _needs(accounts.OPERATOR)
admin = _needs(accounts.ADMIN)


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, submitted: Optional[str]) -> None:
    expected = request.session.get("csrf")
    if not expected or not submitted or not secrets.compare_digest(
        str(expected).encode(), str(submitted).encode()
    ):
        raise CsrfFailed()


async def posted_form(request: Request) -> Dict[str, str]:
    """The form of a POST once its CSRF token checked out (call after the login check:
    a stranger's body is never parsed).  Repeated fields: ``posted_list``."""
    form = await request.form()
    check_csrf(request, form.get("csrf"))  # type: ignore[arg-type]
    request.state.form = form
    return {key: value for key, value in form.items() if isinstance(value, str)}


def posted_list(request: Request, name: str) -> list:
    return [value for value in request.state.form.getlist(name) if isinstance(value, str)]


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
        user = accounts.User(user.name, new_hash, user.created_at, user.updated_at, user.role)
    return user


class LoginThrottle:
    """Failed logins per client address and per account name in a sliding window.

    ``attempt`` counts a try as a failure before the password is checked, under a
    lock, so parallel tries cannot all pass the check of the count; ``succeeded``
    takes that one back.
    """

    MAX_KEYS = 10000

    def __init__(self, limit: int, window: float = FAILURE_WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._failures: Dict[str, Dict[str, Deque[float]]] = {"address": {}, "account": {}}
        self._lock = threading.Lock()

    def attempt(self, address: str, account: str) -> Tuple[float, Optional[float]]:
        """(seconds to wait, 0 when the try may go on; the try's mark for ``succeeded``)."""
        now = time.monotonic()
        keys = (("address", address), ("account", account))
        with self._lock:
            counted = [self._prune(kind, key, now) for kind, key in keys]
            full = [times for times in counted if len(times) >= self.limit]
            if full:
                return max(1.0, max(times[0] for times in full) + self.window - now), None
            for times in counted:
                times.append(now)
            for kind, _ in keys:
                self._forget_stalest(kind)
            return 0.0, now

    def succeeded(self, address: str, account: str, mark: Optional[float]) -> None:
        with self._lock:
            for kind, key in (("address", address), ("account", account)):
                times = self._failures[kind].get(key)
                if times is not None and mark in times:
                    times.remove(mark)

    def _prune(self, kind: str, key: str, now: float) -> Deque[float]:
        times = self._failures[kind].setdefault(key, collections.deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def _forget_stalest(self, kind: str) -> None:
        table = self._failures[kind]
        if len(table) > self.MAX_KEYS:
            for key in list(table)[: self.MAX_KEYS // 2]:
                del table[key]


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
        https = scope.get("scheme") == "https"  # uvicorn: from a trusted proxy's header

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
                if https:
                    headers.append((b"strict-transport-security", HSTS.encode()))
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
