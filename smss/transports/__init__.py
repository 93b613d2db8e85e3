"""Transports: the interface (``base``) and one module per kind of hardware or link.

``from_config`` builds one transport by name: a ``[transport:NAME]`` section (its
``type`` says which kind, its keys are read as that kind's section), or, without such
sections, the kind ``[dispatcher] transport`` names (``modem``, ``smpp``, ``goip``,
``yeastar``), configured by the section of that name.
"""

from __future__ import annotations

from typing import Optional

from smss.transports.base import OPERATOR, SendFailed, Transport

KINDS = ("modem", "smpp", "goip", "yeastar")


def from_config(config, name: Optional[str] = None, *, receive: bool = True) -> Transport:
    """The transport ``name`` (default: the first configured; a type such as ``goip``: the
    first of that type).  ``receive=False`` opens it for sending and USSD only (gateways
    then take no incoming SMS off the device)."""
    names = config.transport_names()
    chosen = (name or names[0]).strip()
    if chosen not in names:
        of_kind = [n for n in names if config.transport_type(n).strip().lower() == chosen.lower()]
        if of_kind:
            chosen = of_kind[0]  # a type named: the first transport of that type
        elif chosen.lower() not in KINDS:
            raise SendFailed(OPERATOR, f"no transport {chosen!r}: configured are "
                             f"{', '.join(names)}")
    kind = config.transport_type(chosen).strip().lower()
    settings = config.for_transport(chosen)
    transport = _build(kind, settings, receive)
    if transport is None:
        raise SendFailed(OPERATOR, f"transport {chosen!r}: the type must be one of "
                         f"{', '.join(KINDS)}, not {kind!r}")
    transport.reopen_max_delay = config.get("dispatcher", "reopen_max_delay")
    transport.transliterate = settings.get("messages", "transliterate")
    return transport


def _build(kind: str, settings, receive: bool) -> Optional[Transport]:
    if kind == "modem":
        from smss.transports.modem import ModemTransport

        return ModemTransport.from_config(settings)
    if kind == "smpp":
        from smss.transports.smpp import SmppTransport

        return SmppTransport.from_config(settings)
    if kind == "goip":
        from smss.transports.goip import GoipTransport

        return GoipTransport.from_config(settings, receive=receive)
    if kind == "yeastar":
        from smss.transports.yeastar import YeastarTransport

        return YeastarTransport.from_config(settings, receive=receive)
    return None
