"""The ``[web]`` settings as the web application uses them, plus the cookie key.

The key that signs login cookies lives in ``secret_file`` (created with mode
0600 on first start, so logins survive a restart).  When the file cannot be
written, a key for this process only is used and a warning says that every
login ends at restart.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from typing import Any, Tuple

from smss.config import Config, ConfigError
from smss.events.record import Events
from smss.spooler.validate import Rules
from smss.store.database import DatabaseSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebSettings:
    database: DatabaseSettings
    rules: Rules = field(default_factory=Rules)
    max_record_bytes: int = 8192
    max_records: int = 1000  # messages in one request
    session_seconds: float = 12 * 3600
    secure_cookies: bool = False
    page_size: int = 50
    zone: tzinfo = timezone.utc
    max_login_failures: int = 10
    secret: str = ""
    listen: str = "127.0.0.1"
    port: int = 8021
    trusted_proxies: Tuple[str, ...] = ()
    metrics_allow: Tuple[Any, ...] = ()  # networks that may read /metrics without a token
    events: Events = field(default_factory=Events)  # what a cancel tells (webhooks, dlr-url)

    @classmethod
    def from_config(cls, config: Config) -> "WebSettings":
        get = config.get
        return cls(
            database=DatabaseSettings.from_config(config),
            rules=Rules.from_config(config),
            max_record_bytes=get("server", "max_record_bytes"),
            max_records=get("server", "max_records_per_connection"),
            session_seconds=get("web", "session_hours") * 3600,
            secure_cookies=get("web", "secure_cookies"),
            page_size=get("web", "page_size"),
            zone=parse_zone(get("web", "timezone")),
            max_login_failures=get("web", "max_login_failures"),
            secret=load_secret(get("web", "secret_file")),
            listen=get("web", "listen"),
            port=get("web", "port"),
            trusted_proxies=get("web", "trusted_proxies"),
            metrics_allow=get("web", "metrics_allow"),
            events=Events.from_config(config),
        )

    @property
    def max_body_bytes(self) -> int:
        """The largest request body: a full batch of the longest records, as JSON."""
        return 64 * 1024 + self.max_records * (self.max_record_bytes * 2 + 64)


def parse_zone(name: str) -> tzinfo:
    if not name:
        return _local_zone()
    if name.upper() == "UTC":
        return timezone.utc
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except (KeyError, ValueError, ImportError) as exc:
        raise ConfigError(f"[web] timezone: unknown time zone {name!r} ({exc})") from None


def _local_zone() -> tzinfo:
    """The server's zone with its daylight-saving rules ($TZ, /etc/localtime), else its
    current offset."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        target = os.path.realpath("/etc/localtime")
        if "/zoneinfo/" in target:
            candidates.append(target.split("/zoneinfo/", 1)[1])
    except OSError:
        pass
    for name in candidates:
        if name and not name.startswith("/"):
            try:
                return parse_zone(name)
            except ConfigError:
                continue
    return datetime.now().astimezone().tzinfo or timezone.utc


def load_secret(path: str) -> str:
    try:
        with open(path, encoding="ascii") as handle:
            secret = handle.read().strip()
        if len(secret) >= 32:
            return secret
        log.warning("%s holds a key shorter than 32 characters; writing a new one", path)
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("cannot read %s (%s): logins end when smss restarts", path, exc)
        return secrets.token_urlsafe(48)
    secret = secrets.token_urlsafe(48)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(secret + "\n")
    except OSError as exc:
        log.warning("cannot write %s (%s): logins end when smss restarts", path, exc)
    return secret
