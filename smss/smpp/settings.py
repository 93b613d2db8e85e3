"""The [smpp] configuration, checked and resolved: where to bind, as whom, and how to send.

Owns reading ``url = smpp://system_id:password@host:2775`` (the separate keys win over
the URL's parts), the bind mode, the interface version (``3.4``, ``0x34``, ``52``), the
source address and its TON/NPI (``auto``: alphanumeric names get 5/0, ``+`` numbers
1/1), and every limit.  A value that cannot work is a ``ValueError`` naming the key.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional, Tuple
from urllib.parse import unquote, urlsplit

from smss.smpp.text import DEFAULT_ALPHABETS, LONG_MESSAGE_MODES
from smss.statefiles import DEFAULT_STATE_DIR, legacy

BIND_MODES = ("transceiver", "transmitter+receiver", "transmitter")
RECEIPT_ID_FORMATS = ("auto", "as-sent", "decimal", "hex")
TON_ALPHANUMERIC = 5


def parse_version(text: str) -> int:
    value = text.strip().lower()
    if re.fullmatch(r"\d\.\d", value):
        return int(value[0]) << 4 | int(value[2])
    number = int(value, 0)
    if number == 34 or number == 33 or number == 50:  # written as "34"
        number = int(str(number), 16)
    if not 0 <= number <= 0xFF:
        raise ValueError(f"interface_version {text!r} is not 3.3, 3.4 or 5.0")
    return number


def _octet(text: str, key: str) -> Optional[int]:
    """``auto`` (None) or a number 0..255."""
    value = text.strip().lower()
    if value in ("", "auto"):
        return None
    number = int(value, 0)
    if not 0 <= number <= 0xFF:
        raise ValueError(f"[smpp] {key}: {number} is not 0..255")
    return number


def source_ton_npi(source: str, ton: Optional[int], npi: Optional[int]) -> Tuple[int, int, str]:
    """(ton, npi, address) for the configured sender; ``auto`` picks by its form."""
    address = source.strip()
    if address.startswith("+"):
        auto = (1, 1)
        address = address[1:]
    elif not address:
        auto = (0, 0)
    elif address.isdigit():
        auto = (0, 1)
    else:
        auto = (TON_ALPHANUMERIC, 0)
    return (auto[0] if ton is None else ton, auto[1] if npi is None else npi, address)


def destination(phone: str, ton: Optional[int], npi: Optional[int]) -> Tuple[int, int, str]:
    """(ton, npi, digits) for a recipient as smss stores it (E.164 with ``+``)."""
    if phone.startswith("+"):
        auto, digits = (1, 1), phone[1:]
    else:
        auto, digits = (0, 1), phone
    return (auto[0] if ton is None else ton, auto[1] if npi is None else npi, digits)


def default_spool(lockfile: str, name: str = "", state_dir: str = DEFAULT_STATE_DIR) -> str:
    """STATE_DIR/LOCKNAME.smpp-inbox, or LOCKNAME.NAME.smpp-inbox for a named transport
    (several SMPP transports of one dispatcher must not share a spool)."""
    base = os.path.basename(lockfile)
    if name:
        base += "." + (re.sub(r"[^A-Za-z0-9_.@+-]", "_", name).strip(".") or "smpp")
    return os.path.join(state_dir, base + ".smpp-inbox")


@dataclass(frozen=True)
class SmppSettings:
    host: str
    port: int = 2775
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    bind: str = "transceiver"
    interface_version: int = 0x34
    address_range: str = ""
    source_addr: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    dest_addr_ton: Optional[int] = None  # None: by the number's form
    dest_addr_npi: Optional[int] = None
    service_type: str = ""
    throughput: float = 0.0  # submit_sm per second; 0: no limit
    window: int = 10
    binds: int = 1  # sessions that send at once, each with its own window
    enquire_link_interval: float = 30.0
    response_timeout: float = 30.0
    reconnect_delay: float = 1.0
    reconnect_max_delay: float = 60.0
    throttle_delay: float = 1.0
    long_messages: str = "udh"
    registered_delivery: bool = True
    default_alphabet: str = "gsm"
    receipt_id_format: str = "auto"
    spool: str = ""
    legacy_spool: str = ""  # where versions before [dispatcher] state_dir kept it: taken over
    name: str = ""
    multipart_timeout: float = 86400.0

    def __post_init__(self) -> None:
        problems = []
        if not self.host:
            problems.append("no SMSC: set [smpp] url or host")
        if not 0 < self.port < 65536:
            problems.append(f"port {self.port} is not a TCP port")
        if self.bind not in BIND_MODES:
            problems.append(f"bind must be one of {', '.join(BIND_MODES)}")
        if self.long_messages not in LONG_MESSAGE_MODES:
            problems.append(f"long_messages must be one of {', '.join(LONG_MESSAGE_MODES)}")
        if self.default_alphabet not in DEFAULT_ALPHABETS:
            problems.append(f"default_alphabet must be one of {', '.join(DEFAULT_ALPHABETS)}")
        if self.receipt_id_format not in RECEIPT_ID_FORMATS:
            problems.append(f"receipt_id_format must be one of {', '.join(RECEIPT_ID_FORMATS)}")
        if self.window < 1:
            problems.append("window must be at least 1")
        if self.binds < 1:
            problems.append("binds must be at least 1")
        for key, limit in (("system_id", 15), ("password", 8), ("system_type", 12),
                           ("address_range", 40), ("source_addr", 20), ("service_type", 5)):
            value = getattr(self, key)
            if len(value.encode("latin-1", errors="replace")) > limit:
                problems.append(f"{key} is longer than SMPP's {limit} characters")
            if not value.isascii():
                problems.append(f"{key} must be ASCII")
        if self.source_addr_ton == TON_ALPHANUMERIC and len(self.source_addr) > 11:
            problems.append("an alphanumeric source_addr has at most 11 characters")
        if self.interface_version < 0x34 and self.bind == "transceiver":
            problems.append("SMPP 3.3 has no transceiver bind: use bind = transmitter+receiver")
        if self.interface_version < 0x34 and self.long_messages != "udh":
            problems.append("SMPP 3.3 has no TLVs: use long_messages = udh")
        if self.response_timeout <= 0:
            problems.append("response_timeout must be more than 0")
        if problems:
            raise ValueError("[smpp] " + "; ".join(problems))

    @property
    def transport_name(self) -> str:
        return (self.name or f"smpp:{self.system_id}@{self.host}:{self.port}")[:128]

    @classmethod
    def from_config(cls, config) -> "SmppSettings":
        get = config.get
        host, port, system_id, password = "", 2775, "", ""
        url = get("smpp", "url")
        if url:
            parts = urlsplit(url)
            if parts.scheme != "smpp":
                raise ValueError(f"[smpp] url must start with smpp://, got {url!r}")
            host = parts.hostname or ""
            port = parts.port or 2775
            system_id = unquote(parts.username or "")
            password = unquote(parts.password or "")
        host = get("smpp", "host") or host
        port = get("smpp", "port") or port
        system_id = get("smpp", "system_id") or system_id
        password = get("smpp", "password") or password
        ton, npi, source = source_ton_npi(
            get("smpp", "source_addr"), _octet(get("smpp", "source_addr_ton"), "source_addr_ton"),
            _octet(get("smpp", "source_addr_npi"), "source_addr_npi"))
        name = get("smpp", "name")
        spool = get("smpp", "spool") or default_spool(
            get("dispatcher", "lockfile"), name, get("dispatcher", "state_dir"))
        old_spool = "" if get("smpp", "spool") else legacy(
            default_spool(get("dispatcher", "lockfile"), name), spool)
        return cls(
            host=host, port=port, system_id=system_id, password=password,
            system_type=get("smpp", "system_type"),
            bind=get("smpp", "bind").strip().lower().replace(" ", ""),
            interface_version=parse_version(get("smpp", "interface_version")),
            address_range=get("smpp", "address_range"),
            source_addr=source, source_addr_ton=ton, source_addr_npi=npi,
            dest_addr_ton=_octet(get("smpp", "dest_addr_ton"), "dest_addr_ton"),
            dest_addr_npi=_octet(get("smpp", "dest_addr_npi"), "dest_addr_npi"),
            service_type=get("smpp", "service_type"),
            throughput=get("smpp", "throughput"),
            window=get("smpp", "window"),
            binds=get("smpp", "binds"),
            enquire_link_interval=get("smpp", "enquire_link_interval"),
            response_timeout=get("smpp", "response_timeout"),
            reconnect_delay=get("smpp", "reconnect_delay"),
            reconnect_max_delay=get("smpp", "reconnect_max_delay"),
            throttle_delay=get("smpp", "throttle_delay"),
            long_messages=get("smpp", "long_messages").strip().lower(),
            registered_delivery=get("smpp", "registered_delivery"),
            default_alphabet=get("smpp", "default_alphabet").strip().lower(),
            receipt_id_format=get("smpp", "receipt_id_format").strip().lower(),
            spool=spool, legacy_spool=old_spool, name=name,
            multipart_timeout=get("dispatcher", "multipart_timeout"),
        )
