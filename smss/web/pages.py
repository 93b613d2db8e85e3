"""The pages people read: status (with the history charts), queue, sent, received,
one message, one transport, the send form, login and logout.

Server-rendered (Jinja2).  Every page but the login form depends on
``security.viewer`` (or a stronger role), which FastAPI resolves before it
reads the path, the query or the body, so a stranger is sent to the login
form whatever the request carries.  Lists are filtered by number (a whole
number in any notation finds that number; a fragment of digits finds numbers
containing it), by a fragment of the text, by state and by date (days in the
configured time zone), and paged with ``smss.store.paging`` cursors; a filter
that makes no sense is a 400 that says why.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated, Any, Dict, List, Optional, Sequence
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from smss.spooler import phone as phones
from smss.store import outbox, paging, received, sent, transports
from smss.store import queue as msg_table
from smss.store.database import as_datetime, utcnow
from smss.web import charts, security, sessions, svg
from smss.web.security import Who

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

Viewer = Annotated[Who, Depends(security.viewer)]
Operator = Annotated[Who, Depends(security.operator)]

_NUMBER_SPLIT = re.compile(r"[\n,;]+")
MAX_ID = 2**63 - 1
RECENT_ERRORS = 12  # on a transport's page: link errors and failed messages, newest first


# -- rendering


def render(request: Request, name: str, context: Dict[str, Any], *, user: Optional[Who],
           here: str = "", status: int = 200) -> HTMLResponse:
    flashes = request.session.pop("flash", []) if user else []
    context = dict(context, user=user, here=here, csrf=security.csrf_token(request),
                   flashes=flashes)
    return request.app.state.templates.TemplateResponse(request, name, context,
                                                       status_code=status)


def flash(request: Request, kind: str, text: str) -> None:
    request.session.setdefault("flash", [])
    request.session["flash"] = request.session["flash"][-4:] + [[kind, text]]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "?"


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

    def pairs(self) -> List[tuple]:
        return [(key, value) for key, value in (
            ("number", self.number), ("text", self.text), ("status", self.status),
            ("delivery", self.delivery), ("from", self.date_from), ("to", self.date_to),
        ) if value]

    def base(self) -> str:
        """The query string for the pager's links, ending where a cursor is appended."""
        pairs = self.pairs()
        return "?" + (urlencode(pairs) + "&" if pairs else "")

    def query(self) -> str:
        """The filters alone, for the CSV export link."""
        pairs = self.pairs()
        return "?" + urlencode(pairs) if pairs else ""


def parse_filters(request: Request, statuses: Sequence[str],
                  deliveries: Sequence[str] = ()) -> FilterForm:
    query = request.query_params
    settings = request.app.state.settings
    form = FilterForm(
        number=query.get("number", "").strip()[:64],
        text=query.get("text", "").strip()[:200],
        status=query.get("status", "").strip()[:32],
        delivery=query.get("delivery", "").strip()[:32],
        date_from=query.get("from", "").strip()[:32],
        date_to=query.get("to", "").strip()[:32],
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
    since = _day(form, "date_from", settings.zone, 0)
    until = _day(form, "date_to", settings.zone, 1)  # "to" includes that whole day
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


def _day(form: FilterForm, attribute: str, zone, add_days: int) -> Optional[datetime]:
    text = getattr(form, attribute)
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        form.problems.append(f"not a date: {text!r} (use YYYY-MM-DD)")
        setattr(form, attribute, "")
        return None
    try:
        local = datetime.combine(day + timedelta(days=add_days), time(0), tzinfo=zone)
        return local.astimezone(timezone.utc).replace(tzinfo=None)
    except OverflowError:  # the day after 9999-12-31, or 0001-01-01 in a zone east of UTC
        form.problems.append(f"date out of range: {text!r}")
        setattr(form, attribute, "")
        return None


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
def login_form(request: Request) -> Response:
    target = _safe_next(request.query_params.get("next", "/"))
    with request.app.state.pool.connection() as conn:
        if sessions.current(request, conn):
            return RedirectResponse(target, status_code=303)
    return render(request, "login.html", {"title": "Log in", "next": target,
                                          "name": "", "error": ""}, user=None)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await security.posted_form(request)
    name, password = form.get("name", "").strip()[:64], form.get("password", "")[:1024]
    target = _safe_next(form.get("next", "/"))
    return await run_in_threadpool(_log_in, request, name, password, target)


def _log_in(request: Request, name: str, password: str, target: str) -> Response:
    state = request.app.state
    address = client_address(request)
    context = {"title": "Log in", "next": target, "name": name}
    wait, mark = state.throttle.attempt(address, name)
    if wait:
        log.warning("login refused for %r from %s: too many failures", name, address)
        return render(request, "login.html", dict(context, error=(
            f"Too many failed logins; try again in {int(wait // 60) + 1} min.")),
            user=None, status=429)
    with state.pool.connection() as conn:
        user = security.authenticate(conn, name, password)
        if user is None:
            log.warning("failed login for %r from %s", name, address)
            return render(request, "login.html", dict(context, error="Wrong user or password."),
                          user=None, status=401)
        state.throttle.succeeded(address, name, mark)
        sessions.start(request, conn, user.name, address)
    log.info("%s logged in from %s", user.name, address)
    return RedirectResponse(target, status_code=303)


@router.post("/logout")
async def logout(request: Request) -> Response:
    await security.posted_form(request)

    def end() -> None:
        with request.app.state.pool.connection() as conn:
            sessions.end(request, conn)

    await run_in_threadpool(end)
    return RedirectResponse("/login", status_code=303)


# -- pages


def _history(request: Request, conn, transport: Optional[str]):
    settings = request.app.state.settings
    history = charts.load(conn, utcnow(), settings.zone, transport,
                          request.app.state.history_cache)
    key = "t" if transport else "all"
    return history, {"hourly": svg.bars(history.hourly, f"chart-{key}-hourly"),
                     "daily": svg.bars(history.daily, f"chart-{key}-daily")}


@router.get("/")
def status_page(request: Request, user: Viewer) -> Response:
    with request.app.state.pool.connection() as conn:
        links = transports.all_status(conn)
        chosen = request.query_params.get("transport") or None
        if chosen is not None and chosen not in {t.name for t in links}:
            chosen = None
        history, pictures = _history(request, conn, chosen)
        context = {
            "title": "Status",
            "queue": msg_table.stats(conn),
            "last_accepted": msg_table.last_accepted(conn),
            "sent": sent.stats(conn),
            "received_count": received.count(conn),
            "last_received": received.last_received(conn),
            "transports": links,
            "events": outbox.summary(conn),
            "failed_events": outbox.failed_events(conn, 10),
            "chosen": chosen,
            "history": history,
            "pictures": pictures,
            "series": charts.SERIES,
            "now": utcnow(),
        }
    return render(request, "status.html", context, user=user, here="/")


@router.get("/transports/{name:path}")
def transport_page(request: Request, user: Viewer, name: str) -> Response:
    settings = request.app.state.settings
    now = utcnow()
    with request.app.state.pool.connection() as conn:
        link = transports.get(conn, name)
        if link is None:
            return render(request, "error.html", {"title": "No such transport", "message":
                          f"No transport named {name!r} has reported yet."}, user=user,
                          status=404)
        history, pictures = _history(request, conn, name)
        since = now - timedelta(hours=charts.HOURS)
        signal = transports.samples(conn, name, since)
        problems = [{"at": e.at, "state": e.state, "error": e.error}
                    for e in transports.recent_errors(conn, name, RECENT_ERRORS)]
        problems += [{"at": f["sent_at"], "message": f["id"], "phone": f["phone"],
                      "error": f["error"]}
                     for f in sent.recent_failures(conn, name, RECENT_ERRORS)]
        problems.sort(key=lambda item: item["at"], reverse=True)
        context = {
            "title": name, "t": link, "history": history, "pictures": pictures,
            "series": charts.SERIES, "samples": signal, "problems": problems[:RECENT_ERRORS],
        }
    context["signal"] = _signal_chart(signal, since, now, settings.zone)
    return render(request, "transport.html", context, user=user, here="/")


def _signal_chart(samples, start: datetime, end: datetime, zone):
    points = [(s.at, float(s.signal_dbm) if s.signal_dbm is not None else None)
              for s in samples]
    labels = []
    mark = start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    while mark <= end:
        local = mark.replace(tzinfo=timezone.utc).astimezone(zone)
        if local.hour % 3 == 0:
            labels.append((mark, f"{local:%H:%M}"))
        mark += timedelta(hours=1)
    return svg.line(points, start, end, low=-110, high=-50, unit="dBm", css_id="chart-signal",
                    title="Signal (dBm), last 24 hours", labels=labels)


def _listing(request: Request, user: Who, template: str, title: str, here: str, fetch,
             statuses: Sequence[str], deliveries: Sequence[str] = ()) -> Response:
    form = parse_filters(request, statuses, deliveries)
    limit = request.app.state.settings.page_size
    with request.app.state.pool.connection() as conn:
        if form.problems:
            form.before = form.after = None
        page = fetch(conn, form, limit)
    return render(request, template, {"title": title, "form": form, "page": page,
                                      "base": form.base(), "queue_state": queue_state},
                  user=user, here=here, status=400 if form.problems else 200)


@router.get("/queue")
def queue_page(request: Request, user: Viewer) -> Response:
    return _listing(
        request, user, "queue.html", "Queue", "/queue",
        lambda conn, form, limit: msg_table.page(conn, form.filters, before=form.before,
                                                 after=form.after, limit=limit),
        msg_table.LISTING_STATES)


@router.get("/sent")
def sent_page(request: Request, user: Viewer) -> Response:
    return _listing(
        request, user, "sent.html", "Sent", "/sent",
        lambda conn, form, limit: sent.page(conn, form.filters, delivery=form.delivery or None,
                                            before=form.before, after=form.after, limit=limit),
        sent.LISTING_STATUSES, sent.LISTING_DELIVERIES)


@router.get("/received")
def received_page(request: Request, user: Viewer) -> Response:
    return _listing(
        request, user, "received.html", "Received", "/received",
        lambda conn, form, limit: received.page(conn, form.filters, before=form.before,
                                                after=form.after, limit=limit),
        received.LISTING_STATES)


@router.get("/message/{message_id}")
def message_page(request: Request, user: Viewer, message_id: int) -> Response:
    with request.app.state.pool.connection() as conn:
        row = msg_table.get(conn, message_id) if 0 < message_id <= MAX_ID else None
        queued = row is not None
        parts: List[dict] = []
        if row is None and 0 < message_id <= MAX_ID:
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
                                            "queued": queued, "state": state, "parts": parts,
                                            "retryable": sent.RETRYABLE},
                  user=user, here=here)


@router.get("/received/{rcv_id}")
def received_one(request: Request, user: Viewer, rcv_id: int) -> Response:
    with request.app.state.pool.connection() as conn:
        row = received.get(conn, rcv_id) if 0 < rcv_id <= MAX_ID else None
    if row is None:
        return render(request, "error.html", {"title": "No such message", "message":
                      f"There is no received message {rcv_id}."}, user=user, status=404)
    row = _with_times(row, ("received_at", "sent_at"))
    return render(request, "received_one.html", {"title": f"Received {rcv_id}", "m": row,
                                                 **_send_limits(request)},
                  user=user, here="/received")


def _with_times(row: dict, names: Sequence[str]) -> dict:
    return {key: (as_datetime(value) if key in names else value) for key, value in row.items()}


# -- sending


def _send_limits(request: Request) -> Dict[str, Any]:
    rules = request.app.state.settings.rules
    return {"max_parts": rules.max_parts, "transliterate": rules.transliterate}


def _send_context(request: Request, numbers: str = "", text: str = "",
                  results: Sequence[Any] = ()) -> Dict[str, Any]:
    rules = request.app.state.settings.rules
    return {"title": "Send", "numbers": numbers, "text": text, "results": results,
            "country_code": rules.default_country_code, **_send_limits(request)}


@router.get("/send")
def send_form(request: Request, user: Operator) -> Response:
    numbers = request.query_params.get("to", "")[:64]
    return render(request, "send.html", _send_context(request, numbers), user=user,
                  here="/send")


def split_numbers(numbers: str) -> List[str]:
    return [item.strip() for item in _NUMBER_SPLIT.split(numbers) if item.strip()]


@router.post("/send")
async def send(request: Request, user: Operator) -> Response:
    form = await security.posted_form(request)
    numbers, text = form.get("numbers", ""), form.get("text", "")
    state = request.app.state
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
                                      f"web:{user.name}@{client_address(request)}")
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
