"""``/cgi-bin/sendsms`` as Kannel's smsbox answers it, so applications written for Kannel
switch to smss without a change.

The subset (docs/integrations.md) follows Kannel's user guide ("Using the HTTP
interface to send SMS messages", "SMS Push reply codes", the X-Kannel headers
table) and its smsbox (gw/smsbox.c ``smsbox_req_sendsms``,
``smsbox_sendsms_post``, ``smsbox_req_handle``, ``charset_processing``):

- GET with the parameters in the query; POST with them in a form body
  (``application/x-www-form-urlencoded``), or, as Kannel does it, a
  ``text/plain`` body as the text and the rest in ``X-Kannel-*`` headers.
- ``username``/``user`` and ``password``/``pass`` are an API token's name and
  the token (``smss token add NAME``); otherwise 403 ``Authorization failed
  for sendsms``.
- ``to``: one number or several separated by spaces (``+`` in a URL).
- ``text`` in ``charset``: UTF-8 by default, UTF-16BE when ``coding=2``;
  smss itself chooses GSM-7 or UCS-2 for the SMS.  ``coding=1`` (8-bit binary)
  and ``udh`` are refused: smss sends text.
- ``smsc`` pins the message to that transport (like ``#phone@NAME``).
- ``dlr-mask`` and ``dlr-url``: the URL is fetched for each report the mask
  asks for, with Kannel's escapes (``smss.events.kannel``).
- ``from`` is kept only for the dlr-url's ``%P``: the transport decides the
  sender, as Kannel's ``faked-sender`` does.  Other Kannel parameters
  (``mclass``, ``validity``, ``priority`` ...) are accepted and ignored.

Every recipient is judged as a TCP record would be; if one is refused, nothing
is stored and the answer is 400 with the reason (Kannel's "field_error").
Stored: 202 ``0: Accepted for delivery``.  The database unavailable: 503
``Temporal failure, try again later.``
"""

from __future__ import annotations

import hmac
import logging
from typing import Dict, List, Optional, Tuple
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from smss.events import kannel as escapes
from smss.spooler.committer import StorageUnavailable
from smss.spooler.protocol import RecordError
from smss.store import accounts, dlr_requests
from smss.store.database import UNAVAILABLE_ERRORS
from smss.web.api import client_address

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

ACCEPTED = "0: Accepted for delivery"
AUTH_FAILED = "Authorization failed for sendsms"
TEMPORARY = "Temporal failure, try again later."

# The X-Kannel headers of a POST and the parameters they stand for (user guide, "X-Kannel
# Headers"; gw/smsbox.c get_x_kannel_from_headers).
_HEADERS = {"x-kannel-username": "username", "x-kannel-password": "password",
            "x-kannel-from": "from", "x-kannel-to": "to", "x-kannel-coding": "coding",
            "x-kannel-dlr-mask": "dlr-mask", "x-kannel-dlr-url": "dlr-url",
            "x-kannel-smsc": "smsc", "x-kannel-udh": "udh"}
_SYNONYMS = {"user": "username", "pass": "password", "dlrmask": "dlr-mask",
             "dlrurl": "dlr-url"}


class Refused(Exception):
    def __init__(self, status: int, answer: str) -> None:
        super().__init__(answer)
        self.status = status
        self.answer = answer


def _answer(status: int, text: str, headers: Optional[Dict[str, str]] = None) -> Response:
    # Kannel answers text/html (gw/smsbox.c sendsms_reply_hdrs), the body a bare line.
    return Response(text, status_code=status, media_type="text/html", headers=headers)


def _pairs(raw: bytes) -> Dict[str, bytes]:
    """URL-encoded parameters as bytes: the text's charset is only known afterwards.
    Kannel's own names win over their deprecated synonyms; the first value counts."""
    found: Dict[str, bytes] = {}
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True,
                                 encoding="latin-1"):
        key = name.lower()
        key = _SYNONYMS.get(key, key)
        if key not in found or name.lower() == key:
            found.setdefault(key, value.encode("latin-1"))
    return found


async def _parameters(request: Request) -> Dict[str, bytes]:
    params = _pairs(request.scope.get("query_string", b""))
    if request.method != "POST":
        return params
    body = await request.body()
    kind, _, rest = request.headers.get("content-type", "").partition(";")
    kind = kind.strip().lower()
    if kind == "application/x-www-form-urlencoded":
        params.update(_pairs(body))
        return params
    if kind in ("text/plain", "application/octet-stream") or (not kind and body):
        for header, name in _HEADERS.items():
            if header in request.headers:
                params[name] = request.headers[header].encode("latin-1", "replace")
        params["text"] = body
        for item in rest.split(";"):
            key, _, value = item.strip().partition("=")
            if key.lower() == "charset" and value:
                params.setdefault("charset", value.strip().strip('"').encode("latin-1"))
        if kind == "application/octet-stream":
            params.setdefault("coding", b"1")  # Kannel: an octet-stream body is 8-bit data
        return params
    if not kind and not body:
        return params
    raise Refused(415, "Unsupported content-type, rejected")


def _text(params: Dict[str, bytes], name: str) -> str:
    return params.get(name, b"").decode("utf-8", "replace").strip()


def _number(params: Dict[str, bytes], name: str, low: int, high: int, label: str
            ) -> Optional[int]:
    raw = _text(params, name)
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise Refused(400, f"{label} field misformed, rejected") from None
    if not low <= value <= high:
        raise Refused(400, f"{label} field misformed, rejected")
    return value


def _message_text(params: Dict[str, bytes]) -> str:
    coding = _number(params, "coding", 0, 2, "Coding") or 0
    if coding == 1:
        raise Refused(400, "8-bit (binary) messages are not supported, rejected")
    if params.get("udh"):
        raise Refused(400, "UDH is not supported (smss sends text), rejected")
    charset = _text(params, "charset") or ("UTF-16BE" if coding == 2 else "UTF-8")
    try:
        return params.get("text", b"").decode(charset)
    except (LookupError, UnicodeDecodeError):
        raise Refused(400, "Charset or body misformed, rejected") from None


def _dlr(params: Dict[str, bytes]) -> Tuple[int, str]:
    mask = _number(params, "dlr-mask", 0, escapes.MAX_MASK, "DLR-Mask") or 0
    url = _text(params, "dlr-url")
    if url and not url.lower().startswith(("http://", "https://")):
        raise Refused(400, "DLR-URL field misformed, rejected")
    return mask, url


def _authorise(request: Request, params: Dict[str, bytes]) -> Optional[accounts.Token]:
    name, token = _text(params, "username"), _text(params, "password")
    if not name or not token:
        return None
    with request.app.state.pool.connection() as conn:
        found = request.app.state.tokens.check(conn, token)
    if found is None or not hmac.compare_digest(found.name.encode(), name.encode()):
        return None
    if not accounts.role_allows(found.role, accounts.OPERATOR):
        return None  # a viewer token reads; it does not send
    return found


@router.api_route("/cgi-bin/sendsms", methods=["GET", "POST"])
async def sendsms(request: Request) -> Response:
    try:
        return await _sendsms(request)
    except Refused as exc:
        log.info("sendsms from %s: %d %s", client_address(request), exc.status, exc.answer)
        return _answer(exc.status, exc.answer)


async def _sendsms(request: Request) -> Response:
    state = request.app.state
    params = await _parameters(request)
    token = await run_in_threadpool(_authorise, request, params)
    if token is None:
        raise Refused(403, AUTH_FAILED)
    if "to" not in params:
        raise Refused(400, "Missing receiver number, rejected")
    receivers = _text(params, "to").split()
    if not receivers:
        raise Refused(400, "Empty receiver number not allowed, rejected")
    if len(receivers) > state.settings.max_records:
        raise Refused(400, f"More than {state.settings.max_records} receivers, rejected")
    text = _message_text(params)
    mask, url = _dlr(params)
    smsc = _text(params, "smsc")
    judged = []
    for number in receivers:
        if "@" in number:
            raise Refused(400, f"Illegal characters in 'to' ({number}), rejected")
        verdict = state.sender.judge(f"{number}@{smsc}" if smsc else number, text)
        if isinstance(verdict, RecordError):
            raise Refused(400, f"{number}: {verdict.reason}, rejected")
        judged.append((number, verdict))
    client = f"kannel:{token.name}@{client_address(request)}"
    sender = _text(params, "from")

    def remember_dlr(conn, results) -> None:
        if url and mask:
            for result in results:
                dlr_requests.add(conn, dlr_requests.DlrRequest(result.id, url, mask, sender,
                                                               token.name))

    def store() -> List:
        with state.pool.connection() as conn:
            return state.sender.store_together(conn, judged, client, remember_dlr)

    try:
        results = await run_in_threadpool(store)
    except (StorageUnavailable, *UNAVAILABLE_ERRORS):  # (the latter: no connection at all)
        return _answer(503, TEMPORARY)
    ids = ",".join(str(result.id) for result in results)
    return _answer(202, ACCEPTED, {"X-Smss-Id": ids})

