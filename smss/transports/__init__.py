"""Transports: the interface (``base``) and one module per kind of hardware or link.

``from_config`` builds the transport the configuration names.
"""

from __future__ import annotations

from smss.transports.base import Transport


def from_config(config) -> Transport:
    from smss.transports.modem import ModemTransport

    return ModemTransport.from_config(config)
