"""CSV of the queue, the sent and the received messages, with the filters of the page.

``/queue.csv``, ``/sent.csv`` and ``/received.csv`` take the same query as
their pages and stream every matching row, newest first, read from the
database a chunk at a time by keyset (``smss.store.paging.iterate``): a
million rows go out without being held in memory.  Times are ISO 8601 in
``[web] timezone`` with their offset.  A cell of a text column that a
spreadsheet would run as a formula (it starts with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return: a received SMS is anyone's text) is prefixed with
``'``; numbers are written as stored.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from typing import Annotated, Callable, Iterator, Optional, Sequence

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from smss.store import queue as msg_table
from smss.store import received, sent
from smss.store.database import utcnow
from smss.web import security
from smss.web.pages import parse_filters, queue_state, render
from smss.web.security import Who

router = APIRouter(include_in_schema=False)

Viewer = Annotated[Who, Depends(security.viewer)]

CHUNK = 1000  # rows per query
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
TEXT_COLUMNS = {"text", "error", "last_error", "client"}

QUEUE_COLUMNS = ("id", "created_at", "phone", "text", "parts", "state", "attempts",
                 "next_attempt_at", "last_error", "client")
SENT_COLUMNS = ("id", "sent_at", "phone", "text", "status", "parts", "transport", "delivery",
                "delivered_at", "error", "attempts", "created_at", "client", "retry_of",
                "retried_as")
RECEIVED_COLUMNS = ("id", "received_at", "phone", "text", "parts", "sent_at", "smsc",
                    "transport", "error")


def _cell(name: str, value, zone) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc).astimezone(zone).isoformat(timespec="seconds")
    text = str(value)
    if name in TEXT_COLUMNS and text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def csv_lines(rows: Iterator[dict], columns: Sequence[str], zone,
              extra: Optional[Callable[[dict], dict]] = None) -> Iterator[bytes]:
    """The header and one line per row, as UTF-8 (with a BOM, which spreadsheets need to
    read it as UTF-8), a few hundred rows per piece."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    yield ("\ufeff" + buffer.getvalue()).encode("utf-8")
    buffer.seek(0)
    buffer.truncate()
    for count, row in enumerate(rows, 1):
        if extra is not None:
            row = dict(row, **extra(row))
        writer.writerow([_cell(name, row.get(name), zone) for name in columns])
        if count % 200 == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def _stream(request: Request, every: Callable, columns: Sequence[str],
            extra: Optional[Callable[[dict], dict]] = None) -> Iterator[bytes]:
    pool, zone = request.app.state.pool, request.app.state.settings.zone
    with pool.connection() as conn:  # held while the rows stream, given back at the end
        yield from csv_lines(every(conn), columns, zone, extra)


def _export(request: Request, user: Who, name: str, statuses: Sequence[str],
            deliveries: Sequence[str], every_for, columns: Sequence[str],
            extra=None) -> Response:
    form = parse_filters(request, statuses, deliveries)
    if form.problems:
        return render(request, "error.html", {"title": "Bad request",
                                              "message": "; ".join(form.problems)},
                      user=user, status=400)
    stamp = f"{utcnow():%Y%m%d-%H%M}"
    return StreamingResponse(
        _stream(request, lambda conn: every_for(conn, form), columns, extra),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="smss-{name}-{stamp}.csv"'})


def _queue_extra(row: dict) -> dict:
    return {"state": queue_state(row)}


@router.get("/queue.csv")
def queue_csv(request: Request, user: Viewer) -> Response:
    return _export(request, user, "queue", msg_table.LISTING_STATES, (),
                   lambda conn, form: msg_table.every(conn, form.filters, CHUNK),
                   QUEUE_COLUMNS, _queue_extra)


@router.get("/sent.csv")
def sent_csv(request: Request, user: Viewer) -> Response:
    return _export(request, user, "sent", sent.LISTING_STATUSES, sent.LISTING_DELIVERIES,
                   lambda conn, form: sent.every(conn, form.filters,
                                                 delivery=form.delivery or None, chunk=CHUNK),
                   SENT_COLUMNS)


@router.get("/received.csv")
def received_csv(request: Request, user: Viewer) -> Response:
    return _export(request, user, "received", received.LISTING_STATES, (),
                   lambda conn, form: received.every(conn, form.filters, CHUNK),
                   RECEIVED_COLUMNS)

