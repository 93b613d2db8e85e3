"""The pages people use: status, queue, sent, received, one message, the send form,
login and logout.

Server-rendered (Jinja2); every page but the login form needs a logged-in user
and redirects a stranger to the login form without showing anything.  Lists
are filtered by number (a whole number in any notation finds that number; a
fragment of digits finds numbers containing it), by a fragment of the text,
by state and by date (days in the configured time zone), and paged with
``smss.store.paging`` cursors.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated, Any, Dict, List, Optional, Sequence
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from smss.spooler import phone as phones
from smss.store import outbox, paging, received, sent, transports
from smss.store import queue as msg_table
from smss.store.database import utcnow
from smss.web import security
from smss.web.api import client_address

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

_NUMBER_SPLIT = re.compile(r"[\n,;]+")


# -- rendering


def render(request: Request, name: str, context: Dict[str, Any], *, user: Optional[str],
           here: str = "", status: int = 200) -> HTMLResponse:
    flashes = request.session.pop("flash", []) if user else []
    context = dict(context, user=user, here=here, csrf=security.csrf_token(request),
                   flashes=flashes)
    return request.app.state.templates.TemplateResponse(request, name, context,
                                                       status_code=status)


def flash(request: Request, kind: str, text: str) -> None:
    request.session.setdefault("flash", [])
    request.session["flash"] = request.session["flash"][-4:] + [[kind, text]]


def logged_in(request: Request, conn) -> str:
    user = security.session_user(request, conn)
    if user is None:
        raise security.LoginRequired()
    return user


# -- filters


@dataclass
class FilterForm:
    number: str = ""
    text: str = ""
    status: str = ""
    delivery: str = ""
    date_from: str = ""
    date_to: str = ""
    problems: List[str] = field(default_factory=list)
    filters: paging.Filters = field(default_factory=paging.Filters)
    before: Optional[paging.Cursor] = None
    after: Optional[paging.Cursor] = None

    @property
    def active(self) -> bool:
        return any((self.number, self.text, self.status, self.delivery, self.date_from,
                    self.date_to))

    def base(self) -> str:
        """The query string for the pager's links, ending where a cursor is appended."""
        pairs = [(key, value) for key, value in (
            ("number", self.number), ("text", self.text), ("status", self.status),
            ("delivery", self.delivery), ("from", self.date_from), ("to", self.date_to),
        ) if value]
        return "?" + (urlencode(pairs) + "&" if pairs else "")


def parse_filters(request: Request, statuses: Sequence[str],
                  deliveries: Sequence[str] = ()) -> FilterForm:
    query = request.query_params
    settings = request.app.state.settings
    form = FilterForm(
        number=query.get("number", "").strip()[:64],
        text=query.get("text", "").strip()[:200],
        status=query.get("status", "").strip(),
        delivery=query.get("delivery", "").strip(),
        date_from=query.get("from", "").strip(),
        date_to=query.get("to", "").strip(),
    )
    phone = digits = None
    if form.number:
        rules = settings.rules
        try:
            phone = phones.normalise(form.number, rules.default_country_code,
                                     rules.short_numbers)
        except phones.PhoneError:
            digits = re.sub(r"\D", "", form.number)
            if not digits:
                form.problems.append(f"number {form.number!r} has no digits")
    if form.status and form.status not in statuses:
        form.problems.append(f"unknown state {form.status!r}")
        form.status = ""
    if form.delivery and form.delivery not in deliveries:
        form.problems.append(f"unknown delivery state {form.delivery!r}")
        form.delivery = ""
    since = _day(form, "date_from", settings.zone)
    until = _day(form, "date_to", settings.zone)
    if until is not None:
        until += timedelta(days=1)  # "to" includes that whole day
    form.filters = paging.Filters(phone=phone, digits=digits or None, text=form.text or None,
                                  since=since, until=until, status=form.status or None)
    for name in ("before", "after"):
        value = query.get(name)
        if value:
            try:
                setattr(form, name, paging.Cursor.decode(value))
            except ValueError:
                form.problems.append("that page link is broken; showing the newest")
    return form


def _day(form: FilterForm, attribute: str, zone) -> Optional[datetime]:
    text = getattr(form, attribute)
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        form.problems.append(f"not a date: {text!r} (use YYYY-MM-DD)")
        setattr(form, attribute, "")
        return None
    local = datetime.combine(day, time(0), tzinfo=zone)
    return local.astimezone(timezone.utc).replace(tzinfo=None)


def queue_state(row: dict) -> str:
    if row.get("claimed_by"):
        return "sending"
    next_attempt = row.get("next_attempt_at")
    if row.get("attempts") and next_attempt is not None and next_attempt > utcnow():
        return "retry"
    return "due"


# -- login


def _safe_next(target: str) -> str:
    """Only a path of this site (no scheme, no host, no //evil.example)."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    with request.app.state.pool.connection() as conn:
        if security.session_user(request, conn):
            return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "login.html", {"title": "Log in", "next": _safe_next(next),
                                          "name": "", "error": ""}, user=None)


@router.post("/login")
def login(request: Request, name: Annotated[str, Form()] = "",
          password: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = "",
          next: Annotated[str, Form()] = "/") -> Response:
    security.check_csrf(request, csrf)
    state = request.app.state
    address = client_address(request)
    wait = state.throttle.wait(address)
    context = {"title": "Log in", "next": _safe_next(next), "name": name[:64]}
    if wait:
        log.warning("login refused for %s: too many failures", address)
        return render(request, "login.html", dict(context, error=(
            f"Too many failed logins; try again in {int(wait // 60) + 1} min.")),
            user=None, status=429)
    with state.pool.connection() as conn:
        user = security.authenticate(conn, name.strip()[:64], password[:1024])
    if user is None:
        state.throttle.failed(address)
        log.warning("failed login for %r from %s", name[:64], address)
        return render(request, "login.html", dict(context, error="Wrong user or password."),
                      user=None, status=401)
    state.throttle.succeeded(address)
    security.log_in(request, user)
    log.info("%s logged in from %s", user.name, address)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    security.check_csrf(request, csrf)
    security.log_out(request)
    return RedirectResponse("/login", status_code=303)


# -- pages


@router.get("/")
def status_page(request: Request) -> Response:
    with request.app.state.pool.connection() as conn:
        user = logged_in(request, conn)
        context = {
            "title": "Status",
            "queue": msg_table.stats(conn),
            "last_accepted": msg_table.last_accepted(conn),
            "sent": sent.stats(conn),
            "received_count": received.count(conn),
            "last_received": received.last_received(conn),
            "transports": transports.all_status(conn),
            "events": outbox.summary(conn),
            "failed_events": outbox.failed_events(conn, 10),
            "now": utcnow(),
        }
    return render(request, "status.html", context, user=user, here="/")


def _listing(request: Request, template: str, title: str, here: str, fetch,
             statuses: Sequence[str], deliveries: Sequence[str] = ()) -> Response:
    form = parse_filters(request, statuses, deliveries)
    limit = request.app.state.settings.page_size
    with request.app.state.pool.connection() as conn:
        user = logged_in(request, conn)
        page = fetch(conn, form, limit)
    return render(request, template, {"title": title, "form": form, "page": page,
                                      "base": form.base(), "queue_state": queue_state},
                  user=user, here=here)


@router.get("/queue")
def queue_page(request: Request) -> Response:
    return _listing(
        request, "queue.html", "Queue", "/queue",
        lambda conn, form, limit: msg_table.page(conn, form.filters, before=form.before,
                                                 after=form.after, limit=limit),
        msg_table.LISTING_STATES)


@router.get("/sent")
def sent_page(request: Request) -> Response:
    return _listing(
        request, "sent.html", "Sent", "/sent",
        lambda conn, form, limit: sent.page(conn, form.filters, delivery=form.delivery or None,
                                            before=form.before, after=form.after, limit=limit),
        sent.LISTING_STATUSES, sent.LISTING_DELIVERIES)


@router.get("/received")
def received_page(request: Request) -> Response:
    return _listing(
        request, "received.html", "Received", "/received",
        lambda conn, form, limit: received.page(conn, form.filters, before=form.before,
                                                after=form.after, limit=limit),
        ("error",))


@router.get("/message/{message_id}")
def message_page(request: Request, message_id: int) -> Response:
    with request.app.state.pool.connection() as conn:
        user = logged_in(request, conn)
        row = msg_table.get(conn, message_id) if 0 < message_id < 2**63 else None
        queued = row is not None
        parts: List[dict] = []
        if row is None and 0 < message_id < 2**63:
            row = sent.get(conn, message_id)
            if row is not None:
                parts = sent.parts(conn, message_id)
    if row is None:
        return render(request, "error.html", {"title": "No such message", "message":
                      f"There is no message {message_id} in the queue or among the sent."},
                      user=user, status=404)
    row = _with_times(row, ("created_at", "next_attempt_at", "sent_at", "delivered_at"))
    state = queue_state(row) if queued else row["status"]
    here = "/queue" if queued else "/sent"
    return render(request, "message.html", {"title": f"Message {message_id}", "m": row,
                                            "queued": queued, "state": state, "parts": parts},
                  user=user, here=here)


@router.get("/received/{rcv_id}")
def received_one(request: Request, rcv_id: int) -> Response:
    with request.app.state.pool.connection() as conn:
        user = logged_in(request, conn)
        row = received.get(conn, rcv_id) if 0 < rcv_id < 2**63 else None
    if row is None:
        return render(request, "error.html", {"title": "No such message", "message":
                      f"There is no received message {rcv_id}."}, user=user, status=404)
    row = _with_times(row, ("received_at", "sent_at"))
    return render(request, "received_one.html", {"title": f"Received {rcv_id}", "m": row},
                  user=user, here="/received")


def _with_times(row: dict, names: Sequence[str]) -> dict:
    from smss.store.database import as_datetime

    return {key: (as_datetime(value) if key in names else value) for key, value in row.items()}


# -- sending


def _send_context(request: Request, numbers: str = "", text: str = "",
                  results: Sequence[Any] = ()) -> Dict[str, Any]:
    rules = request.app.state.settings.rules
    return {"title": "Send", "numbers": numbers, "text": text, "results": results,
            "max_parts": rules.max_parts, "transliterate": rules.transliterate,
            "country_code": rules.default_country_code}


@router.get("/send")
def send_form(request: Request) -> Response:
    with request.app.state.pool.connection() as conn:
        user = logged_in(request, conn)
    return render(request, "send.html", _send_context(request), user=user, here="/send")


def split_numbers(numbers: str) -> List[str]:
    return [item.strip() for item in _NUMBER_SPLIT.split(numbers) if item.strip()]


@router.post("/send")
async def send(request: Request, numbers: Annotated[str, Form()] = "",
               text: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = "") -> Response:
    state = request.app.state
    user = await run_in_threadpool(_user_for_post, request)
    security.check_csrf(request, csrf)
    text = text.replace("\r\n", "\n")  # a browser sends a textarea's line ends as CRLF
    wanted = split_numbers(numbers)
    problem = ""
    if not wanted:
        problem = "Give at least one number."
    elif len(wanted) > state.settings.max_records:
        problem = f"At most {state.settings.max_records} numbers at once."
    if problem:
        flash(request, "bad", problem)
        return render(request, "send.html", _send_context(request, numbers, text), user=user,
                      here="/send", status=400)
    results = await state.sender.send([(number, text) for number in wanted],
                                      f"web:{user}@{client_address(request)}")
    stored = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok]
    if stored:
        ids = ", ".join(str(r.id) for r in stored)
        flash(request, "ok", f"Queued {len(stored)} message{'s' if len(stored) > 1 else ''}:"
                             f" {ids}.")
    if not failed:
        return RedirectResponse("/queue", status_code=303)
    flash(request, "bad", f"{len(failed)} not sent: fix the numbers left in the form.")
    return render(request, "send.html",
                  _send_context(request, "\n".join(r.phone for r in failed), text, results),
                  user=user, here="/send", status=failed[0].code or 422)


def _user_for_post(request: Request) -> str:
    with request.app.state.pool.connection() as conn:
        return logged_in(request, conn)
