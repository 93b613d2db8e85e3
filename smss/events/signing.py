"""The X-Smss-Signature of a webhook request: HMAC-SHA256 over the timestamp and the body.

The signed bytes are the decimal Unix time of the attempt (the
``X-Smss-Timestamp`` header), a dot, and the request body exactly as sent.
Putting the time under the signature lets a receiver refuse a request
recorded and replayed later (older than a few minutes) without a list of
every id it has seen.  The header reads ``sha256=<hex>``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Optional

PREFIX = "sha256="
DEFAULT_TOLERANCE = 300.0  # seconds a receiver should accept between signing and checking


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body,
                      hashlib.sha256).hexdigest()
    return PREFIX + digest


def verify(secret: str, timestamp: str, body: bytes, signature: str,
           tolerance: float = DEFAULT_TOLERANCE, now: Optional[float] = None) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    if age > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)
