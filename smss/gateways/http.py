"""The HTTP client of the gateway transports: one request, its status and body.

Small on purpose (``http.client``): what matters to a sender is *where* a request
failed.  ``HttpDown.reached`` is False when the device cannot have seen the request
(no connection), True when it may have (the connection broke or timed out after the
request was written), so a send is reported "maybe sent" only when it may have been.
"""

from __future__ import annotations

import base64
import http.client
import socket
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import urlencode, urlsplit

MAX_BODY = 1 << 20

Params = Union[Mapping[str, str], Sequence[Tuple[str, str]]]


class HttpDown(Exception):
    def __init__(self, reason: str, reached: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reached = reached


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass(frozen=True)
class Base:
    """Where a device's web server is: ``http://host[:port][/prefix]``."""

    host: str
    port: int
    prefix: str = ""
    https: bool = False

    @classmethod
    def parse(cls, url: str) -> "Base":
        text = url.strip()
        if "://" not in text:
            text = "http://" + text
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http:// address: {url!r}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ValueError(f"bad port in {url!r}") from None
        return cls(parts.hostname, port, parts.path.rstrip("/"), parts.scheme == "https")


def request(base: Base, method: str, path: str, *, query: str = "", form: Optional[Params] = None,
            basic_auth: Optional[Tuple[str, str]] = None, timeout: float = 10.0) -> Answer:
    """``method base.prefix+path?query`` with an optional url-encoded form; HttpDown when
    there is no answer.  ``query`` is sent as given (callers encode it)."""
    target = base.prefix + path + (("?" + query) if query else "")
    headers = {"Accept": "*/*", "Connection": "close"}
    body: Optional[bytes] = None
    if form is not None:
        body = urlencode(form).encode("ascii")
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if basic_auth is not None:
        token = base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
    factory = http.client.HTTPSConnection if base.https else http.client.HTTPConnection
    connection = factory(base.host, base.port, timeout=timeout)
    where = f"{base.host}:{base.port}"
    try:
        try:
            connection.connect()
        except OSError as exc:
            raise HttpDown(f"cannot connect to {where}: {_why(exc)}", reached=False) from None
        try:
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read(MAX_BODY + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise HttpDown(f"{where} did not answer: {_why(exc)}", reached=True) from None
        if len(data) > MAX_BODY:
            raise HttpDown(f"{where} answered more than {MAX_BODY} bytes", reached=True)
        return Answer(response.status, data)
    finally:
        connection.close()


def _why(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    return str(exc) or type(exc).__name__
