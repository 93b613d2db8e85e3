"""The forms that act: cancel and retry a message, reply to a received message,
delete received messages (after a confirmation page), pause and resume a
transport.

Each is a POST checked in this order: logged in, role (operator; admin for
transports), CSRF token, then the action itself (``smss.web.operations``,
which records it in the audit trail).  Success flashes a message on the page
it redirects to; a refusal is a page with its status (404, 409) and the reason.
"""

from __future__ import annotations

from typing import Annotated, List
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from smss.store import received
from smss.store.database import as_datetime
from smss.web import operations, security
from smss.web.pages import client_address, flash, render
from smss.web.security import Who

router = APIRouter(include_in_schema=False)

Operator = Annotated[Who, Depends(security.operator)]
Admin = Annotated[Who, Depends(security.admin)]

MAX_DELETE = 500  # received messages deleted by one form


def _refused(request: Request, user: Who, refusal: operations.Refused, back: str) -> Response:
    return render(request, "error.html", {"title": "Not done", "message": refusal.message,
                                          "back": back}, user=user, status=refusal.status)


def _run(request: Request, action, *args):
    def work():
        with request.app.state.pool.connection() as conn:
            return action(conn, *args)

    return run_in_threadpool(work)


@router.post("/message/{message_id}/cancel")
async def cancel(request: Request, user: Operator, message_id: int) -> Response:
    await security.posted_form(request)
    try:
        await _run(request, operations.cancel, message_id, user.actor,
                   request.app.state.settings.events)
    except operations.Refused as refusal:
        return _refused(request, user, refusal, f"/message/{message_id}")
    flash(request, "ok", f"Message {message_id} cancelled: it will not be sent.")
    return RedirectResponse(f"/message/{message_id}", status_code=303)


@router.post("/message/{message_id}/retry")
async def retry(request: Request, user: Operator, message_id: int) -> Response:
    await security.posted_form(request)
    try:
        new_id = await _run(request, operations.retry, message_id, user.actor)
    except operations.Refused as refusal:
        return _refused(request, user, refusal, f"/message/{message_id}")
    request.app.state.sender.kick()
    flash(request, "ok", f"Message {message_id} queued again as {new_id}.")
    return RedirectResponse(f"/message/{new_id}", status_code=303)


@router.post("/received/{rcv_id}/reply")
async def reply(request: Request, user: Operator, rcv_id: int) -> Response:
    form = await security.posted_form(request)
    text = form.get("text", "").replace("\r\n", "\n")
    try:
        found = await _run(request, operations.reply_target, rcv_id)
    except operations.Refused as refusal:
        return _refused(request, user, refusal, "/received")
    result = await operations.reply(request.app.state.sender, found["phone"], text,
                                    f"web:{user.name}@{client_address(request)}")
    await _run(request, operations.record_reply, user.actor, rcv_id, result)
    if not result.ok:
        flash(request, "bad", f"Reply not sent: {result.reply()}")
        return RedirectResponse(f"/received/{rcv_id}", status_code=303)
    flash(request, "ok", f"Reply to {found['phone']} queued as {result.id}.")
    return RedirectResponse(f"/message/{result.id}", status_code=303)


@router.post("/received/delete")
async def delete_received(request: Request, user: Operator) -> Response:
    form = await security.posted_form(request)
    ids: List[int] = []
    for value in security.posted_list(request, "id"):
        if value.isdigit() and 0 < int(value) <= operations.MAX_ID:
            ids.append(int(value))
    ids = sorted(set(ids))
    back = form.get("back", "")  # the listing the form was on, with its filters
    back = back.rstrip("?&") if back.startswith("/received?") and "//" not in back else "/received"
    if not ids:
        flash(request, "bad", "Tick the messages to delete first.")
        return RedirectResponse(back, status_code=303)
    if len(ids) > MAX_DELETE:
        flash(request, "bad", f"At most {MAX_DELETE} messages at once.")
        return RedirectResponse(back, status_code=303)
    if form.get("confirm") != "yes":
        def rows():
            with request.app.state.pool.connection() as conn:
                found = [row for row in (received.get(conn, i) for i in ids) if row]
            return [dict(row, received_at=as_datetime(row["received_at"])) for row in found]

        return render(request, "confirm_delete.html", {
            "title": "Delete received messages", "rows": await run_in_threadpool(rows),
            "back": back}, user=user, here="/received")
    deleted = await _run(request, operations.delete_received, ids, user.actor)
    flash(request, "ok", f"Deleted {len(deleted)} received message"
                         f"{'' if len(deleted) == 1 else 's'}.")
    return RedirectResponse(back, status_code=303)


@router.post("/transports/{name:path}/pause")
async def pause(request: Request, user: Admin, name: str) -> Response:
    return await _pause_or_resume(request, user, name, pausing=True)


@router.post("/transports/{name:path}/resume")
async def resume(request: Request, user: Admin, name: str) -> Response:
    return await _pause_or_resume(request, user, name, pausing=False)


async def _pause_or_resume(request: Request, user: Who, name: str, pausing: bool) -> Response:
    await security.posted_form(request)
    page = "/transports/" + quote(name, safe=":/")
    try:
        await _run(request, operations.pause if pausing else operations.resume, name,
                   user.actor)
    except operations.Refused as refusal:
        return _refused(request, user, refusal, "/")
    if pausing:
        flash(request, "ok", f"{name} paused: the dispatcher sends nothing through it"
                             " (it still receives).")
    else:
        request.app.state.sender.kick()
        flash(request, "ok", f"{name} resumed.")
    return RedirectResponse(page, status_code=303)
