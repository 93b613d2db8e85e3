"""The HTTP API's actions: cancel and retry a message, reply to and delete a received
message, list transports and pause or resume one.

The same operations as the pages (``smss.web.operations``), recorded in the
audit trail as ``api:TOKEN``.  Messages need a token of role operator,
transports one of role admin.  A refusal is ``404`` (no such message or
transport) or ``409`` (the message is not in a state that allows it, e.g. it
is being sent), with the reason in ``error``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, List, Optional

from fastapi import APIRouter, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from smss.store import accounts, transports
from smss.web import operations
from smss.web.api import (
    AUTH_RESPONSES,
    MAX_ID,
    ApiError,
    ErrorBody,
    SendResult,
    Token,
    client_address,
    json_body,
    read_body,
    token_with,
)

router = APIRouter(prefix="/api/v1", tags=["actions"])

OperatorToken = Annotated[accounts.Token, Depends(token_with(accounts.OPERATOR))]
AdminToken = Annotated[accounts.Token, Depends(token_with(accounts.ADMIN))]
MessageId = Annotated[int, Path(ge=1, le=MAX_ID, description="the id from `OK <id>`")]
ReceivedId = Annotated[int, Path(ge=1, le=MAX_ID, description="the received message's id")]

_REFUSED = {404: {"model": ErrorBody, "description": "no such message"},
            409: {"model": ErrorBody, "description": "not possible in the message's state"}}


class Cancelled(BaseModel):
    id: int
    state: str = Field("cancelled", description="always `cancelled`")


class Retried(BaseModel):
    id: int = Field(description="the new message")
    retry_of: int = Field(description="the message it sends again")


class ReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(description="the reply, judged like any message", examples=["Beru"])


class Deleted(BaseModel):
    id: int
    deleted: bool = True


class TransportState(BaseModel):
    name: str
    state: str = Field(description="after the dispatcher's last pass: ok, down, operator, …")
    updated_at: Optional[datetime]
    signal_dbm: Optional[int] = None
    registration: Optional[str] = None
    operator: Optional[str] = None
    last_error: Optional[str] = None
    paused: bool = Field(description="an operator paused it: nothing is sent through it")
    paused_at: Optional[datetime] = None
    paused_by: Optional[str] = None


def _utc(value: Optional[datetime]) -> Optional[datetime]:
    return value.replace(tzinfo=timezone.utc) if value is not None else None


def _actor(token: accounts.Token) -> str:
    return f"api:{token.name}"


async def _run(request: Request, action, *args):
    def work():
        with request.app.state.pool.connection() as conn:
            return action(conn, *args)

    try:
        return await run_in_threadpool(work)
    except operations.Refused as refusal:
        raise ApiError(refusal.status, refusal.message) from None


@router.post("/messages/{message_id}/cancel", summary="Cancel a queued message",
             response_model=Cancelled, responses={**AUTH_RESPONSES, **_REFUSED})
async def cancel(request: Request, message_id: MessageId, token: OperatorToken) -> Cancelled:
    """A queued message that no dispatcher is sending moves to the sent messages as
    `cancelled` and is never sent.  409 when it is being sent or not queued any more."""
    await _run(request, operations.cancel, message_id, _actor(token),
               request.app.state.settings.events)
    return Cancelled(id=message_id)


@router.post("/messages/{message_id}/retry", summary="Send a failed message again",
             response_model=Retried, responses={**AUTH_RESPONSES, **_REFUSED})
async def retry(request: Request, message_id: MessageId, token: OperatorToken) -> Retried:
    """A failed, expired or cancelled message is queued again as a new message whose
    `retry_of` names the old one (once: 409 when it was retried already)."""
    new_id = await _run(request, operations.retry, message_id, _actor(token))
    request.app.state.sender.kick()
    return Retried(id=new_id, retry_of=message_id)


@router.post("/received/{rcv_id}/reply", summary="Reply to a received message",
             response_model=SendResult,
             responses={**AUTH_RESPONSES, 404: _REFUSED[404],
                        413: {"model": SendResult, "description": "longer than"
                              " `max_record_bytes`"},
                        422: {"model": SendResult, "description": "refused: empty or too"
                              " long text, or a sender number that cannot be answered"},
                        503: {"model": SendResult, "description": "the queue could not"
                              " commit: not stored"}},
             openapi_extra=json_body(ReplyIn))
async def reply(request: Request, rcv_id: ReceivedId, token: OperatorToken) -> JSONResponse:
    """Queue `text` to the number the message came from, judged like any message
    (`reply` is the line the TCP protocol would answer)."""
    body = await read_body(request, ReplyIn)
    assert isinstance(body, ReplyIn)
    found = await _run(request, operations.reply_target, rcv_id)
    result = await operations.reply(request.app.state.sender, found["phone"], body.text,
                                    f"api:{token.name}@{client_address(request)}")
    await _run(request, operations.record_reply, _actor(token), rcv_id, result)
    payload = SendResult(ok=result.ok, id=result.id, code=result.code, error=result.error,
                         reply=result.reply())
    return JSONResponse(payload.model_dump(mode="json"),
                        status_code=200 if result.ok else (result.code or 422))


@router.delete("/received/{rcv_id}", summary="Delete a received message",
               response_model=Deleted, responses={**AUTH_RESPONSES, 404: _REFUSED[404]})
async def delete_received(request: Request, rcv_id: ReceivedId,
                          token: OperatorToken) -> Deleted:
    deleted = await _run(request, operations.delete_received, [rcv_id], _actor(token))
    if not deleted:
        raise ApiError(404, f"no received message {rcv_id}")
    return Deleted(id=rcv_id)


def _state(link: transports.TransportStatus) -> TransportState:
    return TransportState(
        name=link.name, state=link.state, updated_at=_utc(link.updated_at),
        signal_dbm=link.signal_dbm, registration=link.registration, operator=link.operator,
        last_error=link.last_error, paused=link.paused, paused_at=_utc(link.paused_at),
        paused_by=link.paused_by)


@router.get("/transports", summary="The transports and their state",
            response_model=List[TransportState], responses=AUTH_RESPONSES)
async def list_transports(request: Request, token: Token) -> List[TransportState]:
    """Every transport that has reported, as the dispatcher saw it last."""
    links = await _run(request, transports.all_status)
    return [_state(link) for link in links]


_TRANSPORT = {**AUTH_RESPONSES, 404: {"model": ErrorBody, "description": "no transport of that name"
                                                                " has reported"}}


@router.post("/transports/{name:path}/pause", summary="Pause a transport",
             response_model=TransportState, responses=_TRANSPORT)
async def pause(request: Request, name: str, token: AdminToken) -> TransportState:
    """The dispatcher sends nothing through it (it still receives) until it is resumed;
    messages that only prefer it go through the other transports."""
    await _run(request, operations.pause, name, _actor(token))
    return _state(await _run(request, operations.known_transport, name))


@router.post("/transports/{name:path}/resume", summary="Resume a paused transport",
             response_model=TransportState, responses=_TRANSPORT)
async def resume(request: Request, name: str, token: AdminToken) -> TransportState:
    await _run(request, operations.resume, name, _actor(token))
    request.app.state.sender.kick()
    return _state(await _run(request, operations.known_transport, name))
