"""``Idempotency-Key`` on ``POST /api/v1/messages``: a retried request sends nothing twice.

The first request with a key stores its messages and its answer in one
transaction (``smss.store.idempotency``); the same key with the same body
within 24 hours gets that answer again, with the same ids, and stores
nothing (``Idempotent-Replayed: true``); the same key with another body is
refused with 422.  Keys are per API token.  Two requests with one key at the
same moment cannot both store: the second one's transaction fails on the
key's primary key, rolls its messages back, and it answers with the first
one's answer.  A request that stored nothing (503) leaves no key behind, so
its retry is a first request again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Callable, List, Optional, Tuple

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from smss.spooler.committer import StorageUnavailable
from smss.spooler.protocol import UNAVAILABLE, RecordError
from smss.store import idempotency
from smss.web.sending import Result

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
PATTERN = r"^[ -~]+$"  # printable ASCII
_TRIES = 3

Render = Callable[[List[Result]], Tuple[dict, int]]


def request_hash(messages: List[Tuple[str, str]]) -> str:
    """The fingerprint of a request's content: its messages, in order (not the JSON's
    spelling, so a client may re-serialise its retry)."""
    canonical = json.dumps(messages, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


async def send_once(request: Request, token_id: int, key: str,
                    messages: List[Tuple[str, str]], client: str,
                    render: Render) -> JSONResponse:
    state = request.app.state
    fingerprint = request_hash(messages)
    judged = [(phone, state.sender.judge(phone, text)) for phone, text in messages]

    stored: List[Tuple[int, str]] = []

    def remember(conn, results: List[Result]) -> None:
        """In the transaction that stores the messages."""
        payload, status = render(results)
        answer = json.dumps(payload, ensure_ascii=False)
        idempotency.remember(conn, token_id, key, fingerprint, status, answer)
        stored.append((status, answer))

    def attempt() -> Tuple[Optional[idempotency.Stored], bool]:
        """(the answer, whether it is a replay); (None, False): nothing could be stored."""
        for _ in range(_TRIES):
            with state.pool.connection() as conn:
                with conn.transaction():
                    found = idempotency.find(conn, token_id, key)
                if found is not None:
                    return found, True
                try:
                    state.sender.store_together(conn, judged, client, remember)
                except StorageUnavailable:
                    with conn.transaction():  # did a concurrent request take the key?
                        if idempotency.find(conn, token_id, key) is None:
                            return None, False
                    log.info("%s: Idempotency-Key %r was stored by a concurrent request",
                             client, key)
                    continue
                status, answer = stored[-1]
                return idempotency.Stored(fingerprint, status, answer, None), False
        return None, False

    found, replayed = await run_in_threadpool(attempt)
    if found is None:  # not stored, and no key left behind: a retry is a first request
        payload, status = render([
            Result(code=v.code, error=v.reason, phone=phone) if isinstance(v, RecordError)
            else Result(code=UNAVAILABLE, error="storage unavailable, not stored", phone=phone)
            for phone, v in judged])
        return JSONResponse(payload, status_code=status)
    if found.request_hash != fingerprint:
        return JSONResponse({"error": f"{HEADER} {key!r} was used for a different request in"
                                      " the last 24 hours; use a new key for a new request"},
                            status_code=422)
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    if replayed:
        log.info("%s: Idempotency-Key %r answered again (nothing stored)", client, key)
    return JSONResponse(json.loads(found.answer), status_code=found.status, headers=headers)
