"""Transports: the interface (``base``) and one module per kind of hardware or link.

``from_config`` builds the transport ``[dispatcher] transport`` names: ``modem`` (the
default) or ``smpp``.
"""

from __future__ import annotations

from smss.transports.base import OPERATOR, SendFailed, Transport

KINDS = ("modem", "smpp")


def from_config(config) -> Transport:
    kind = config.get("dispatcher", "transport").strip().lower()
    if kind == "smpp":
        from smss.transports.smpp import SmppTransport

        return SmppTransport.from_config(config)
    if kind == "modem":
        from smss.transports.modem import ModemTransport

        return ModemTransport.from_config(config)
    raise SendFailed(OPERATOR, f"[dispatcher] transport must be one of {', '.join(KINDS)}, "
                     f"not {kind!r}")
