"""The HTTP API for applications: send, message status by id, received messages.
The actions (cancel, retry, reply, delete, pause) are in ``api_actions``.

Every endpoint needs ``Authorization: Bearer <token>`` (``smss token add``),
checked before the body is read; sending needs a token of role operator or
admin.
Sending means what a TCP record means: each message is judged with the same
rules and answered ``OK <id>`` once committed or ``ERR <code> <reason>`` with
the same codes; good messages are stored even when others in the request are
refused.  The HTTP status is 200 when every message was stored, otherwise the
code of the first refused one (so ``curl --fail`` fails like ``smss-client``).
A request the API cannot read at all is 400, too many messages in one request
429, a body over the size limit 413; nothing of such a request is stored.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, List, Literal, Optional, Tuple, Union

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from smss.spooler.protocol import TOO_MANY
from smss.store import accounts, received, sent
from smss.store import queue as msg_table
from smss.store.database import as_datetime
from smss.web import idempotent

MAX_ID = 2**63 - 1

router = APIRouter(prefix="/api/v1", tags=["messages"])
bearer = HTTPBearer(auto_error=False, description="an API token from `smss token add NAME`")


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: Optional[dict] = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


# -- models


class ErrorBody(BaseModel):
    error: str = Field(description="what was wrong")


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: str = Field(description="the recipient: E.164 (`+420608337726`), `00…`, or a"
                                   " national number of `default_country_code`",
                       examples=["+420608337726"])
    text: str = Field(description="the text, any Unicode; long texts go as several parts",
                      examples=["Backup failed on db1"])


class SendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    messages: List[MessageIn] = Field(min_length=1, description="one or more messages, judged"
                                      " one by one; at most `max_records_per_connection`")


class SendResult(BaseModel):
    ok: bool = Field(description="stored (committed in the queue)")
    id: Optional[int] = Field(None, description="the message id when stored")
    code: Optional[int] = Field(None, description="the TCP protocol's error code when not"
                                                  " stored: 413, 422, 503 or 504")
    error: Optional[str] = Field(None, description="why it was not stored")
    reply: str = Field(description="the line the TCP protocol would answer:"
                                   " `OK 17` or `ERR 422 …`", examples=["OK 17"])


class SendResponse(BaseModel):
    ok: bool = Field(description="every message was stored")
    results: List[SendResult] = Field(description="one per message, in the request's order")


class MessageStatus(BaseModel):
    id: int
    state: Literal["queued", "sending", "sent", "failed", "expired", "cancelled"] = Field(
        description="queued: waiting (a retry included); sending: a dispatcher has it;"
                    " sent; failed: given up (see error); expired: not sent in time;"
                    " cancelled: an operator cancelled it before it was sent")
    phone: str
    text: str
    parts: int
    created_at: datetime = Field(description="when it was accepted (UTC)")
    attempts: int
    next_attempt_at: Optional[datetime] = Field(None, description="queued: when it is tried"
                                                                  " next")
    last_error: Optional[str] = Field(None, description="queued: why the last attempt failed")
    sent_at: Optional[datetime] = Field(None, description="when it was sent or given up")
    transport: Optional[str] = None
    error: Optional[str] = Field(None, description="failed/expired: why")
    delivery: Optional[Literal["pending", "delivered", "failed"]] = Field(
        None, description="from delivery reports; null when none was asked for or it is not"
                          " sent yet")
    delivered_at: Optional[datetime] = None
    retry_of: Optional[int] = Field(None, description="the message this one sends again")
    retried_as: Optional[int] = Field(None, description="the message that sent this one"
                                                        " again")


class ReceivedMessage(BaseModel):
    id: int
    phone: str = Field(description="the sender")
    text: str
    received_at: datetime
    sent_at: Optional[datetime] = Field(None, description="the sender's SMSC time stamp")
    parts: int
    smsc: str
    transport: str
    error: Optional[str] = Field(None, description="set for an undecodable or incomplete"
                                                   " message")


class ReceivedPage(BaseModel):
    messages: List[ReceivedMessage]
    last_id: int = Field(description="pass as `since` next time (the request's `since` when"
                                     " nothing new came)")


# -- helpers


def _utc(value: Optional[datetime]) -> Optional[datetime]:
    return value.replace(tzinfo=timezone.utc) if value is not None else None


def client_address(request: Request) -> str:
    return request.client.host if request.client else "?"


async def read_body(request: Request, model: type) -> "BaseModel":
    """The JSON body as ``model``; called once the token checked out, so a stranger's
    body is never parsed.  400 when it cannot be read."""
    raw = await request.body()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            (".".join(str(p) for p in error.get("loc", ())) + ": " if error.get("loc") else "")
            + str(error.get("msg", "invalid")) for error in exc.errors()[:5])
        raise ApiError(400, f"cannot read the request: {problems}") from None


def json_body(model: type) -> dict:
    """``openapi_extra`` describing a JSON body of ``model`` read by ``read_body``."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


def api_token(request: Request,
              credentials: Annotated[Optional[HTTPAuthorizationCredentials], Depends(bearer)]
              ) -> accounts.Token:
    state = request.app.state
    token = credentials.credentials if credentials else ""
    with state.pool.connection() as conn:
        found = state.tokens.check(conn, token)
    if found is None:
        raise ApiError(401, "a valid API token is needed: Authorization: Bearer <token>",
                       {"WWW-Authenticate": "Bearer"})
    return found


Token = Annotated[accounts.Token, Depends(api_token)]


def token_with(role: str):
    """A dependency: a valid token whose role allows ``role`` (403 otherwise)."""
    def dependency(token: Token) -> accounts.Token:
        if not accounts.role_allows(token.role, role):
            raise ApiError(403, f"the token {token.name} is {token.role}; this needs {role}")
        return token

    dependency.__name__ = f"token_{role}"
    return dependency


OperatorToken = Annotated[accounts.Token, Depends(token_with(accounts.OPERATOR))]

AUTH_RESPONSES = {401: {"model": ErrorBody, "description": "no token, or not a valid one"},
         403: {"model": ErrorBody, "description": "the token's role does not allow this"},
         400: {"model": ErrorBody, "description": "the request could not be read"},
         503: {"model": ErrorBody, "description": "the database is unavailable"}}


# -- endpoints


@router.post(
    "/messages",
    summary="Queue messages",
    response_model=SendResponse,
    responses={
        400: {"model": ErrorBody, "description": "the request could not be read"},
        401: AUTH_RESPONSES[401],
        403: AUTH_RESPONSES[403],
        413: {"model": Union[SendResponse, ErrorBody],
              "description": "a message longer than `max_record_bytes` (the others were"
                             " judged on their own), or a body over the size limit"
                             " (nothing stored)"},
        422: {"model": Union[SendResponse, ErrorBody],
              "description": "a message was refused (bad number, empty or too long text);"
                             " the others were judged on their own; or the Idempotency-Key"
                             " was used for a different request (nothing stored)"},
        429: {"model": ErrorBody, "description": "more messages than"
                                                 " `max_records_per_connection`;"
                                                 " nothing stored"},
        503: {"model": SendResponse, "description": "the queue could not commit: not stored,"
                                                    " send those again"},
        504: {"model": SendResponse, "description": "the database did not confirm the commit"
                                                    " and could not be asked: those messages"
                                                    " may be stored, look before sending them"
                                                    " again"},
    },
    openapi_extra=json_body(SendRequest),
)
async def send_messages(
    request: Request, token: OperatorToken,
    idempotency_key: Annotated[Optional[str], Header(
        alias=idempotent.HEADER, min_length=1, max_length=255, pattern=idempotent.PATTERN,
        description="any printable ASCII text you choose per request: sent again with the"
                    " same body within 24 hours, the request gets the first answer (the same"
                    " ids, `Idempotent-Replayed: true`) and stores nothing")] = None,
) -> JSONResponse:
    """Each message is answered like a TCP record: `OK <id>` once it is committed in
    the queue (the dispatcher is kicked at once), `ERR <code> <reason>` otherwise.
    Status 200 when every message was stored, else the code of the first refused
    one; the messages whose result is `ok` were stored all the same, so send only
    the others again (or send the same request with the same `Idempotency-Key`)."""
    body = await read_body(request, SendRequest)
    assert isinstance(body, SendRequest)
    state = request.app.state
    if len(body.messages) > state.settings.max_records:
        raise ApiError(TOO_MANY, f"too many messages in one request: at most"
                                 f" {state.settings.max_records}")
    client = f"api:{token.name}@{client_address(request)}"
    messages = [(m.phone, m.text) for m in body.messages]
    if idempotency_key is not None:
        return await idempotent.send_once(request, token.id, idempotency_key, messages, client,
                                          _answer)
    payload, status = _answer(await state.sender.send(messages, client))
    return JSONResponse(payload, status_code=status)


def _answer(results) -> Tuple[dict, int]:
    """The response body and status of a send, from each message's result."""
    payload = SendResponse(
        ok=all(r.ok for r in results),
        results=[SendResult(ok=r.ok, id=r.id, code=r.code, error=r.error, reply=r.reply())
                 for r in results],
    )
    return payload.model_dump(mode="json"), next((r.code for r in results if not r.ok), 200)


@router.get(
    "/messages/{message_id}",
    summary="A message's state",
    response_model=MessageStatus,
    responses={**AUTH_RESPONSES,
               404: {"model": ErrorBody, "description": "no message with this id"}},
)
def message_status(
    request: Request,
    message_id: Annotated[int, Path(ge=1, le=MAX_ID, description="the id from `OK <id>`")],
    token: Token,
) -> MessageStatus:
    """Where a message is: still queued (or being sent), sent, failed or expired,
    and what the delivery reports said."""
    with request.app.state.pool.connection() as conn:
        found = find_message(conn, message_id)
    if found is None:
        raise ApiError(404, f"no message {message_id}")
    return found


def find_message(conn, message_id: int) -> Optional[MessageStatus]:
    # The queue first: a message leaves msg and enters sms in one transaction, so
    # looking in this order cannot miss one that moves in between.
    row = msg_table.get(conn, message_id)
    if row is not None:
        return MessageStatus(
            id=int(row["id"]), state="sending" if row["claimed_by"] else "queued",
            phone=row["phone"], text=row["text"], parts=int(row["parts"]),
            created_at=_utc(as_datetime(row["created_at"])), attempts=int(row["attempts"]),
            next_attempt_at=_utc(as_datetime(row["next_attempt_at"])), last_error=row["last_error"],
            retry_of=row["retry_of"],
        )
    row = sent.get(conn, message_id)
    if row is None:
        return None
    return MessageStatus(
        id=int(row["id"]), state=row["status"], phone=row["phone"], text=row["text"],
        parts=int(row["parts"]), created_at=_utc(as_datetime(row["created_at"])),
        attempts=int(row["attempts"]), sent_at=_utc(as_datetime(row["sent_at"])),
        transport=row["transport"] or None, error=row["error"], delivery=row["delivery"],
        delivered_at=_utc(as_datetime(row["delivered_at"])), retry_of=row["retry_of"],
        retried_as=row["retried_as"],
    )


@router.get(
    "/received",
    summary="Received messages after an id",
    response_model=ReceivedPage,
    responses=AUTH_RESPONSES,
)
def received_since(
    request: Request,
    token: Token,
    since: Annotated[int, Query(ge=0, le=MAX_ID,
                                description="the last id you have; 0 for the oldest")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many")] = 100,
) -> ReceivedPage:
    """Messages received after `since`, oldest first.  Poll with the `last_id` of the
    previous answer."""
    with request.app.state.pool.connection() as conn:
        rows = received.since(conn, since, limit)
    messages = [ReceivedMessage(
        id=r["id"], phone=r["phone"], text=r["text"], received_at=_utc(r["received_at"]),
        sent_at=_utc(r["sent_at"]), parts=int(r["parts"]), smsc=r["smsc"] or "",
        transport=r["transport"] or "", error=r["error"]) for r in rows]
    return ReceivedPage(messages=messages, last_id=messages[-1].id if messages else since)
