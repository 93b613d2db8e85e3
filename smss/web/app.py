"""The FastAPI application: pages, API, static files, error handling, OpenAPI.

``create_app(settings, sender)`` wires the parts; the server module runs it.
The OpenAPI description is served at ``/api/v1/openapi.json`` and only
describes what the API does (FastAPI's generic 422 validation answer is
replaced by our 400, which is what a request the API cannot read gets).
There is no Swagger UI: it would load scripts from a CDN.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from typing import Any, Dict, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from smss import __version__
from smss.store.database import UNAVAILABLE_ERRORS, utcnow
from smss.web import (
    actions,
    admin,
    api,
    api_actions,
    charts,
    export,
    kannel,
    metrics,
    pages,
    security,
    sessions,
)
from smss.web.counter import transliteration_table
from smss.web.db import Pool
from smss.web.sending import Sender
from smss.web.settings import WebSettings

log = logging.getLogger(__name__)

HERE = os.path.dirname(os.path.abspath(__file__))
OPENAPI_URL = "/api/v1/openapi.json"

# Every router of the application, in the order their routes are matched.
ROUTERS = (
    api.router,  # /api/v1: send, status, received
    api_actions.router,  # /api/v1: cancel, retry, reply, delete, transports
    pages.router,  # the pages people read, login, send
    actions.router,  # the forms that act on messages and transports
    admin.router,  # users, tokens, audit trail
    export.router,  # CSV
    metrics.router,  # /metrics (Prometheus)
    kannel.router,  # /cgi-bin/sendsms (Kannel-compatible)
)
# Models read by ``api.read_body`` (after the token check) rather than by FastAPI.
BODY_MODELS = (api.SendRequest, api_actions.ReplyIn)

DESCRIPTION = """\
HTTP API of the smss SMS gateway, beside the TCP protocol on port 2021.

Authenticate with `Authorization: Bearer <token>`; make a token with
`smss token add NAME [--role ROLE]` or on the Tokens page (it is shown once;
only its hash is stored).  Sending and acting on messages need a token of role
operator or admin; pausing a transport needs admin.

Sending judges each message exactly like a TCP record `#PHONE;TEXT`: the same
number rules, text limits and error codes.  A message is `OK` only once it is
committed in the queue; the dispatcher is kicked at once.  Times are UTC.
"""


def create_app(settings: WebSettings, sender: Sender, pool: Optional[Pool] = None) -> FastAPI:
    app = FastAPI(
        title="smss",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_url=OPENAPI_URL,
    )
    app.state.settings = settings
    app.state.sender = sender
    app.state.pool = pool or Pool(settings.database)
    app.state.throttle = security.LoginThrottle(settings.max_login_failures)
    app.state.tokens = security.TokenChecker()
    app.state.history_cache = charts.HourCache()
    app.state.templates = _templates(settings)

    for router in ROUTERS:
        app.include_router(router)

    @app.get("/static/translit.json", include_in_schema=False)
    def translit() -> Response:
        return Response(transliteration_table(), media_type="application/json",
                        headers={"cache-control": "public, max-age=86400"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return RedirectResponse("/static/icon.svg", status_code=301)

    app.mount("/static", StaticFiles(directory=os.path.join(HERE, "static")), name="static")

    _error_handlers(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.add_middleware(sessions.BrowserState, secret=settings.secret,
                       max_age=int(settings.session_seconds),
                       secure_always=settings.secure_cookies)
    app.add_middleware(security.Hardening, max_body=settings.max_body_bytes)
    return app


def _templates(settings: WebSettings) -> Jinja2Templates:
    templates = Jinja2Templates(directory=os.path.join(HERE, "templates"))
    zone = settings.zone
    env = templates.env
    env.globals["static"] = lambda name: f"/static/{name}?v={__version__}"
    env.globals["zone_name"] = getattr(zone, "key", None) or str(zone)

    def when(value: Optional[datetime]) -> str:
        if value is None:
            return "—"
        return value.replace(tzinfo=timezone.utc).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")

    def ago(value: Optional[datetime]) -> str:
        if value is None:
            return ""
        seconds = int((utcnow() - value).total_seconds())
        if seconds < 0:
            return "in the future"
        for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
            if seconds >= 2 * size:
                count = seconds // size
                return f"{count} {unit}{'s' if unit == 'day' and count > 1 else ''} ago"
        return f"{seconds} s ago"

    env.globals["when"] = when
    env.globals["ago"] = ago
    return templates


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(security.LoginRequired)
    async def login_required(request: Request, exc: Exception) -> Response:
        target = request.url.path
        if request.url.query and request.method == "GET":
            target += "?" + request.url.query
        query = "" if target == "/" else "?" + _urlencode({"next": target})
        return RedirectResponse("/login" + query, status_code=303)

    @app.exception_handler(security.CsrfFailed)
    async def csrf_failed(request: Request, exc: Exception) -> Response:
        log.warning("%s %s: CSRF token missing or wrong", request.method, request.url.path)
        return _page_error(request, 403, "Form expired",
                           "This form was not sent from this page or your login changed."
                           " Go back, reload the page and try again.")

    @app.exception_handler(security.Forbidden)
    async def forbidden(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, security.Forbidden)
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return _page_error(request, 403, "Not allowed",
                           f"You are logged in as {exc.who.name} ({exc.who.role}); this needs"
                           f" the role {exc.needed}.", user=exc.who)

    @app.exception_handler(api.ApiError)
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, api.ApiError)
        return JSONResponse({"error": exc.message}, status_code=exc.status,
                            headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def unreadable(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(_describe(error) for error in exc.errors()[:5])
        if _is_api(request):
            return JSONResponse({"error": f"cannot read the request: {problems}"},
                                status_code=400)
        return _page_error(request, 400, "Bad request", problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if _is_api(request):
            return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code,
                                headers=getattr(exc, "headers", None))
        return _page_error(request, exc.status_code, str(exc.detail), "")

    async def unavailable(request: Request, exc: Exception) -> Response:
        log.error("%s %s: database unavailable: %s", request.method, request.url.path, exc)
        if _is_api(request):
            return JSONResponse({"error": "storage unavailable"}, status_code=503,
                                headers={"Retry-After": "10"})
        return _page_error(request, 503, "Database unavailable",
                           "The queue database cannot be reached right now. Try again soon.")

    for error in UNAVAILABLE_ERRORS:
        app.add_exception_handler(error, unavailable)


def _page_error(request: Request, status: int, title: str, message: str,
                user: Optional[security.Who] = None) -> Response:
    # No user name in an error page unless the login was checked: it may be shown to anyone.
    return request.app.state.templates.TemplateResponse(
        request, "error.html", {"title": title, "message": message, "user": user,
                                "flashes": [], "csrf": security.csrf_token(request) if user
                                else ""}, status_code=status)


def _describe(error: Dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    return f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg"))


def _urlencode(values: Dict[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode(values)


def _openapi(app: FastAPI) -> Dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description,
                         routes=app.routes)
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            responses = operation.get("responses", {})
            answer = responses.get("422", {})
            ref = str(answer.get("content", {}).get("application/json", {}).get("schema", {}))
            if "HTTPValidationError" in ref:
                del responses["422"]
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for model in BODY_MODELS:
        described = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(described.pop("$defs", {}))
        components[model.__name__] = described
    app.openapi_schema = schema
    return schema
