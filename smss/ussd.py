"""USSD for people and programs: ``run(config, "*100#", via=None)`` -> the network's answer.

The request goes through one configured transport (``via``: a ``[transport:NAME]``
name or a type such as ``modem``, ``goip``, ``yeastar``; default: the first transport)
and comes back as text.  The transport is opened for this request only and does not
receive SMS meanwhile, so it never takes messages a running ``check_and_send`` owns.  A
modem on a local serial port is opened exclusively: while ``check_and_send --loop``
holds it, the request fails with a clear error rather than disturbing it.

Decoding the answers (a modem's ``+CUSD``, a gateway's hex or text) is a codec of its
own: ``smss.gsm.ussd``.
"""

from __future__ import annotations

import re
from typing import Optional

from smss.transports.base import PERMANENT, SendFailed, Transport

USSD_CODE = re.compile(r"^[0-9*#+]{1,64}$")


def check_code(code: str) -> str:
    value = code.strip()
    if not USSD_CODE.match(value):
        raise SendFailed(PERMANENT, f"not a USSD code: {code!r} (digits, * and #, e.g. *100#)")
    return value


def run(config, code: str, via: Optional[str] = None, timeout: float = 60.0) -> str:
    """Send the USSD ``code`` through the transport ``via`` and return the answer text.
    Raises SendFailed (its ``kind`` and ``reason`` say what went wrong)."""
    from smss import transports

    value = check_code(code)
    transport = transports.from_config(config, via, receive=False)
    if type(transport).ussd is Transport.ussd:
        transport.ussd(value, timeout)  # says it cannot, without opening a link for nothing
    transport.open()
    try:
        return transport.ussd(value, timeout)
    finally:
        transport.close()
