"""Configuration: one INI file, its known keys, their types and defaults.

The file is ``-c FILE``, else ``$SMSS_CONFIG``, else ``/etc/smss/smss.conf``; a
missing default file means "all defaults".  Every key is declared in ``KEYS``
with a parser and a default, so a typo is an error at start, not a silent
default.  ``Config.get(section, key)`` returns the parsed value.
"""

from __future__ import annotations

import configparser
import ipaddress
import os
import re
import socket
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

DEFAULT_PATH = "/etc/smss/smss.conf"


class ConfigError(Exception):
    """The configuration file cannot be used; the message says where and why."""


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "yes", "true", "on"):
        return True
    if lowered in ("0", "no", "false", "off", ""):
        return False
    raise ValueError(f"expected yes or no, got {text!r}")


def _int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"expected a whole number, got {text.strip()!r}") from None


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def _float(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {text.strip()!r}") from None
    if value < 0:
        raise ValueError(f"must not be negative, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = _float(text)
    if value <= 0:
        raise ValueError(f"must be more than 0, got {value:g}")
    return value


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {text!r}")
        return value

    return parse


def _str(text: str) -> str:
    return text.strip()


def _list(text: str) -> Tuple[str, ...]:
    return tuple(item.strip() for item in text.replace("\n", ",").split(",") if item.strip())


def _networks(text: str) -> Tuple[Any, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in _list(text))


WEBHOOK_EVENTS = ("received", "delivery", "failed")


def _events(text: str) -> Tuple[str, ...]:
    events = tuple(item.lower() for item in _list(text))
    unknown = [event for event in events if event not in WEBHOOK_EVENTS]
    if unknown:
        raise ValueError(f"unknown event {unknown[0]!r} (events: {', '.join(WEBHOOK_EVENTS)})")
    return events


def _encoding(text: str) -> str:
    import codecs

    name = text.strip()
    codecs.lookup(name)  # raises LookupError for an unknown code page
    return name


@dataclass(frozen=True)
class Key:
    parse: Callable[[str], Any]
    default: str
    doc: str


# (section, key) -> Key.  docs/configuration.md documents this table.
KEYS: Dict[Tuple[str, str], Key] = {
    # --- the TCP front door
    ("server", "listen"): Key(_str, "0.0.0.0", "address to listen on"),
    ("server", "port"): Key(_int, "2021", "TCP port"),
    ("server", "allow"): Key(
        _networks, "127.0.0.0/8, ::1", "clients allowed to connect (CIDR list)"
    ),
    ("server", "pidfile"): Key(_str, "/run/smss/smss.pid", "PID file of `smss start`"),
    ("server", "logfile"): Key(
        _str, "", "log file; empty: stderr for `run`, /var/log/smss/smss.log for `start`"
    ),
    ("server", "loglevel"): Key(_str, "INFO", "DEBUG, INFO, WARNING or ERROR"),
    ("server", "idle_timeout"): Key(
        _float, "60", "seconds without a byte before a client is closed"
    ),
    ("server", "session_timeout"): Key(
        _float, "600", "seconds a connection may last in all (stops trickling clients)"
    ),
    ("server", "max_connections"): Key(_positive_int, "1024", "concurrent connections"),
    ("server", "max_record_bytes"): Key(_positive_int, "8192", "bytes in one record"),
    ("server", "max_records_per_connection"): Key(
        _positive_int, "1000", "records on one connection"
    ),
    ("server", "max_errors_per_connection"): Key(
        _positive_int, "10", "ERR replies before the connection is closed"
    ),
    ("server", "max_pending_records"): Key(
        _positive_int, "10000", "records received and waiting for their commit; at the limit"
        " the server stops reading from clients"
    ),
    ("server", "max_pending_bytes"): Key(
        _positive_int, "4194304", "the same limit in bytes of phone numbers and texts"
    ),
    ("server", "kick_command"): Key(
        _str, "check_and_send", "dispatcher started after records are committed; empty: none"
    ),
    # --- smss-client defaults (it also reads this section from its own -c FILE)
    ("client", "host"): Key(_str, "127.0.0.1", "servers smss-client tries in order: host, "
                            "host:port or [IPv6]:port, comma separated"),
    ("client", "port"): Key(_int, "2021", "port of a server given without one"),
    ("client", "timeout"): Key(_float, "30", "seconds to connect to a server, then to get its "
                               "replies"),
    ("client", "retries"): Key(_int, "3", "rounds over the servers while records are not "
                               "stored, with backoff"),
    # --- where the queue lives
    ("database", "url"): Key(
        _str, "sqlite:///var/lib/smss/smss.db", "sqlite:///PATH or mysql://user:pass@host/db"
    ),
    ("database", "connect_timeout"): Key(
        _float, "10", "seconds to wait for a connection (SQLite: for a lock)"
    ),
    ("database", "read_timeout"): Key(
        _float, "10", "MySQL: seconds to wait for each answer before the database counts as"
        " stalled; 0: for ever"
    ),
    ("database", "write_timeout"): Key(
        _float, "10", "MySQL: seconds a write to the database may block; 0: for ever"
    ),
    ("database", "tls"): Key(
        _choice("auto", "off", "preferred", "verify"), "auto",
        "MySQL over TCP: off, preferred (unverified), verify (certificate and host name);"
        " auto: off on a unix socket, preferred over TCP"
    ),
    ("database", "tls_ca"): Key(_str, "", "CA file for tls = verify; empty: the system's"),
    # --- what a valid message is
    ("messages", "default_country_code"): Key(
        _positive_int, "420", "country code of national numbers"
    ),
    ("messages", "short_numbers"): Key(
        _list, "", "short service numbers allowed, as patterns (`4603, 9*`); empty: none"
    ),
    ("messages", "max_parts"): Key(_positive_int, "10", "most SMS parts one message may take"),
    ("messages", "legacy_encoding"): Key(
        _encoding, "cp1250", "code page for bytes that are not UTF-8"
    ),
    ("messages", "transliterate"): Key(
        _bool, "no", "turn Czech and Slovak diacritics into plain letters so text stays GSM-7"
    ),
    # --- the GSM modem
    ("modem", "device"): Key(
        _str, "", "pyserial URL: /dev/ttyS0, /dev/ttyUSB0, socket://host:port, rfc2217://host:port"
    ),
    ("modem", "baudrate"): Key(_positive_int, "115200", "serial speed"),
    ("modem", "pin"): Key(_str, "", "SIM PIN, used only when the SIM asks for it"),
    ("modem", "smsc"): Key(_str, "", "SMS centre number; empty: the one stored on the SIM"),
    ("modem", "command_timeout"): Key(_float, "10", "seconds to wait for an AT command's answer"),
    ("modem", "send_timeout"): Key(_float, "60", "seconds to wait for AT+CMGS to finish"),
    ("modem", "init_commands"): Key(_list, "", "extra AT commands after initialisation"),
    ("modem", "status_reports"): Key(_bool, "yes", "ask the network for delivery reports"),
    ("modem", "validity_minutes"): Key(
        _int, "1440", "how long the SMSC keeps trying; 0: network default"
    ),
    ("modem", "storage"): Key(
        _str, "", "message storage for AT+CPMS (SM, ME, MT); empty: leave as is"
    ),
    ("modem", "register_timeout"): Key(_float, "60", "seconds to wait for network registration"),
    # --- check_and_send
    ("dispatcher", "lockfile"): Key(
        _str, "/run/smss/check_and_send", "lock of the dispatcher (flock; holds its PID)"
    ),
    ("dispatcher", "state_dir"): Key(
        _str, "/var/lib/smss", "where the journal, the delete ledger and the inbox spools live;"
        " must survive a reboot"
    ),
    ("dispatcher", "on_receive"): Key(_str, "", "program run for each received SMS"),
    ("dispatcher", "max_attempts"): Key(_positive_int, "5", "send attempts before a message fails"),
    ("dispatcher", "logfile"): Key(_str, "", "log file of check_and_send; empty: stderr"),
    ("dispatcher", "loglevel"): Key(_str, "INFO", "DEBUG, INFO, WARNING or ERROR"),
    ("dispatcher", "batch_size"): Key(_positive_int, "20", "messages claimed at a time"),
    ("dispatcher", "retry_delay"): Key(
        _float, "60", "seconds before the first retry; doubles with each attempt"
    ),
    ("dispatcher", "retry_max_delay"): Key(_float, "3600", "longest wait between two attempts"),
    ("dispatcher", "expire_after"): Key(
        _float, "86400", "seconds after which an unsent message expires instead; 0: never"
    ),
    ("dispatcher", "claim_lease"): Key(
        _positive_float, "30", "seconds a claim lasts unless its dispatcher renews it (every"
        " third of it while it works); a claim whose lease ran out is taken over by any"
        " dispatcher on any host"
    ),
    ("dispatcher", "claim_timeout"): Key(
        _float, "900", "deprecated and ignored since claims are leases (`claim_lease`);"
        " a value set is reported as a warning"
    ),
    ("dispatcher", "pass_timeout"): Key(
        _float, "900", "a transport's pass that makes no progress for this long is given up"
        " (that transport only: its claims are released, it is opened again)"
    ),
    ("dispatcher", "poll_interval"): Key(
        _float, "30", "seconds between two passes of an idle `check_and_send --loop` (each"
        " reads its transport too)"
    ),
    ("dispatcher", "queue_check_interval"): Key(
        _float, "3", "`--loop`: seconds between two looks at the queue while idle (one"
        " indexed count), so messages another site accepted are sent soon; 0: only"
        " poll_interval"
    ),
    ("dispatcher", "site"): Key(
        _str, "", "this box's name among the sites that share the database, recorded with"
        " each transport's state; empty: the host name"
    ),
    ("dispatcher", "multipart_timeout"): Key(
        _float, "86400", "seconds an incomplete multipart SMS waits for its parts"
    ),
    ("dispatcher", "on_receive_timeout"): Key(
        _float, "300", "seconds an on_receive program may run before its process group is killed"
    ),
    ("dispatcher", "on_receive_max"): Key(
        _positive_int, "4", "on_receive programs running at once; the others wait, in order"
    ),
    ("dispatcher", "reopen_max_delay"): Key(
        _float, "60", "`--loop`: longest pause before opening an unreachable transport again"
        " (1 s, doubling)"
    ),
    ("modem", "pin_guard_file"): Key(
        _str, "/var/lib/smss/rejected-pins", "where a PIN the SIM rejected is remembered"
    ),
    ("modem", "name"): Key(_str, "", "name recorded as the transport; empty: modem:DEVICE"),
    ("modem", "rate_limit"): Key(_int, "0", "most SMS parts per minute through this SIM; 0: none"),
    ("modem", "health_interval"): Key(
        _float, "60", "seconds between checks that an idle modem still has its settings"
        " (AT+CNMI?, AT+CPMS?); 0: never"
    ),
    ("dispatcher", "transport"): Key(
        _str, "modem", "what sends and receives: modem, smpp, goip or yeastar"
    ),
    ("dispatcher", "routes"): Key(
        _list, "", "number prefixes to named transports: `+4207 = gsm1, +421 = goip`; a prefix"
        " prefers its transport, others take over while it is down"
    ),
    # --- an SMSC (operator, aggregator, or a GoIP's SMPP server) over SMPP 3.4
    ("smpp", "url"): Key(
        _str, "", "smpp://system_id:password@host:2775; the keys below override its parts"
    ),
    ("smpp", "host"): Key(_str, "", "SMSC host (instead of url)"),
    ("smpp", "port"): Key(_int, "0", "SMSC port; 0: the url's, else 2775"),
    ("smpp", "system_id"): Key(
        _str, "", "account name (GoIP: its id plus the channel, e.g. goip01)"
    ),
    ("smpp", "password"): Key(_str, "", "account password"),
    ("smpp", "system_type"): Key(_str, "", "system_type of the bind, if the SMSC wants one"),
    ("smpp", "bind"): Key(
        _str, "transceiver", "transceiver, transmitter+receiver (two binds) or transmitter"
    ),
    ("smpp", "interface_version"): Key(
        _str, "3.4", "interface_version of the bind: 3.3, 3.4 or 5.0"
    ),
    ("smpp", "address_range"): Key(_str, "", "address_range of the bind (receiver filter)"),
    ("smpp", "source_addr"): Key(
        _str, "", "sender: +number, short code or alphanumeric name (11 chars); empty: SMSC default"
    ),
    ("smpp", "source_addr_ton"): Key(
        _str, "auto", "TON of the sender; auto: 5 for names, 1 for +numbers"
    ),
    ("smpp", "source_addr_npi"): Key(
        _str, "auto", "NPI of the sender; auto: 0 for names, 1 for numbers"
    ),
    ("smpp", "dest_addr_ton"): Key(_str, "auto", "TON of recipients; auto: 1 for +numbers, else 0"),
    ("smpp", "dest_addr_npi"): Key(_str, "auto", "NPI of recipients; auto: 1"),
    ("smpp", "service_type"): Key(_str, "", "service_type of submit_sm"),
    ("smpp", "throughput"): Key(_float, "0", "most submit_sm per second; 0: no limit"),
    ("smpp", "window"): Key(_positive_int, "10", "submit_sm awaiting their response at once,"
                            " per bind"),
    ("smpp", "binds"): Key(
        _positive_int, "1", "sessions that send at once (transceivers, or transmitters beside"
        " the one receiver), each with its own window; more than 1 only if the SMSC allows"
        " that many binds of the account"
    ),
    ("smpp", "enquire_link_interval"): Key(
        _float, "30", "seconds of silence before an enquire_link; 0: never"
    ),
    ("smpp", "response_timeout"): Key(
        _float, "30", "seconds to wait for any response before the link counts as dead"
    ),
    ("smpp", "reconnect_delay"): Key(
        _float, "1", "pause before the second bind attempt after a drop (the first is at once)"
    ),
    ("smpp", "reconnect_max_delay"): Key(_float, "60", "longest pause between bind attempts"),
    ("smpp", "throttle_delay"): Key(
        _float, "1", "pause after ESME_RTHROTTLED, once per episode; doubles while refused at once"
    ),
    ("smpp", "long_messages"): Key(
        _str, "udh", "long texts as udh (concatenated parts), sar (SAR TLVs) or payload"
    ),
    ("smpp", "registered_delivery"): Key(_bool, "yes", "ask for delivery receipts"),
    ("smpp", "default_alphabet"): Key(
        _str, "gsm", "what data_coding 0 means at this SMSC: gsm (GSM 03.38), latin1 or ascii"
    ),
    ("smpp", "receipt_id_format"): Key(
        _str, "auto", "receipt ids vs submit_sm_resp ids: auto, as-sent, decimal or hex"
    ),
    ("smpp", "spool"): Key(
        _str, "", "file keeping received PDUs until stored; empty: "
        "STATE_DIR/LOCKNAME[.NAME].smpp-inbox"
    ),
    ("smpp", "name"): Key(
        _str, "", "name recorded as the transport; empty: smpp:SYSTEM_ID@HOST:PORT"
    ),
    # --- the web interface and HTTP API (`smss web`; `smss run` too when enabled)
    ("web", "enabled"): Key(
        _bool, "no", "`smss run` serves the web interface and HTTP API as well"
    ),
    ("web", "listen"): Key(_str, "127.0.0.1", "address of the web interface"),
    ("web", "port"): Key(_int, "8021", "its TCP port"),
    ("web", "secret_file"): Key(
        _str, "/var/lib/smss/web-secret", "key that signs login cookies; created if missing"
    ),
    ("web", "session_hours"): Key(_float, "12", "hours a login lasts without being used"),
    ("web", "secure_cookies"): Key(
        _bool, "no", "always mark the login cookie Secure (a request that came over HTTPS, "
        "also through a proxy in trusted_proxies, gets a Secure cookie anyway)"
    ),
    ("web", "trusted_proxies"): Key(
        _list, "", "proxy addresses whose X-Forwarded-For and -Proto are believed (HTTPS "
        "through them: Secure cookies and Strict-Transport-Security)"
    ),
    ("web", "page_size"): Key(_positive_int, "50", "rows per page"),
    ("web", "timezone"): Key(
        _str, "", "time zone of the times shown (`Europe/Prague`); empty: the server's"
    ),
    ("web", "max_login_failures"): Key(
        _positive_int, "10", "failed logins from one address, or for one user name, in 15 "
        "minutes before it must wait (a try counts before its password is checked)"
    ),
    ("web", "metrics_allow"): Key(
        _networks, "127.0.0.0/8, ::1",
        "addresses that may read /metrics without a token (CIDR list); others need an API token"
    ),
    # --- webhooks: each [webhook:NAME] section (docs/integrations.md)
    ("webhook", "url"): Key(_str, "", "where events are POSTed (http:// or https://)"),
    ("webhook", "events"): Key(
        _events, "received, delivery, failed", "which events: received, delivery, failed"
    ),
    ("webhook", "secret"): Key(
        _str, "", "key of the X-Smss-Signature HMAC-SHA256 (required; share it with the receiver)"
    ),
    ("webhook", "timeout"): Key(_float, "10", "seconds to wait for the receiver's answer"),
    ("webhook", "max_age"): Key(
        _float, "86400", "seconds an event is retried before it counts as failed"
    ),
    # --- posting events (webhooks and Kannel dlr-urls) from the outbox
    ("outbox", "poll_interval"): Key(
        _float, "1", "seconds between two looks at the outbox when it was empty"
    ),
    ("outbox", "retry_delay"): Key(
        _float, "5", "seconds before the first retry of an event; doubles with each attempt"
    ),
    ("outbox", "retry_max_delay"): Key(_float, "600", "longest wait between two attempts"),
    ("outbox", "dlr_timeout"): Key(_float, "10", "seconds to wait for a Kannel dlr-url"),
    ("outbox", "dlr_max_age"): Key(
        _float, "86400", "seconds a dlr-url call is retried before it counts as failed"
    ),
    # --- a GoIP GSM gateway: HTTP API to send and for USSD, its SMPP server to receive
    ("goip", "url"): Key(_str, "", "web address of the GoIP: http://192.168.1.190"),
    ("goip", "user"): Key(_str, "admin", "its web login (u= of the HTTP API)"),
    ("goip", "password"): Key(_str, "admin", "its password (p=)"),
    ("goip", "lines"): Key(_list, "1", "lines (SIMs) to send through: 1, or 1, 2, 3, 4"),
    ("goip", "send_method"): Key(
        _choice("get", "post"), "get",
        "get: send.html (the GoIP names each message); post: the sms_info.html form with "
        "our own smskey"
    ),
    ("goip", "http_timeout"): Key(_float, "10", "seconds to wait for the GoIP's web server"),
    ("goip", "send_timeout"): Key(
        _float, "120", "seconds a message may take to reach DONE or ERRORDONE"
    ),
    ("goip", "busy_timeout"): Key(
        _float, "120", "seconds to wait for a line still busy with an earlier job"
    ),
    ("goip", "poll_interval"): Key(_float, "1", "seconds between two reads of send_status.xml"),
    ("goip", "smpp_port"): Key(
        _int, "0", "port of the GoIP's SMPP server, to receive; 0: do not receive"
    ),
    ("goip", "smpp_system_id"): Key(
        _str, "", "the GoIP's SMPP id; the line is appended for each bind (goip01, goip02 ...)"
    ),
    ("goip", "smpp_password"): Key(_str, "", "its SMPP password"),
    ("goip", "spool"): Key(
        _str, "", "file keeping received SMS until stored (.L1, .L2 ... appended); empty: "
        "STATE_DIR/LOCKNAME.NAME.goip-inbox"
    ),
    ("goip", "rate_limit"): Key(
        _int, "0", "most SMS per minute through this transport (all its lines; a section per"
        " SIM gives each its own limit); 0: none"
    ),
    ("goip", "name"): Key(_str, "", "name recorded as the transport; empty: goip:HOST/L1"),
    # --- a Yeastar TG GSM gateway: WebCGI or AMI to send, AMI events to receive
    ("yeastar", "url"): Key(_str, "", "web address of the TG, for WebCGI: http://192.168.5.150"),
    ("yeastar", "ami"): Key(
        _str, "", "AMI address host[:port] (5038); empty: WebCGI only, nothing received"
    ),
    ("yeastar", "account"): Key(_str, "", "API account (API Settings, also called AMI Settings)"),
    ("yeastar", "password"): Key(
        _str, "", "its password (the TG refuses its default password: change it)"
    ),
    ("yeastar", "ports"): Key(
        _list, "1", "GSM ports of this transport as the web interface numbers them "
        "(AMI span = port + 1)"
    ),
    ("yeastar", "send_via"): Key(
        _choice("auto", "webcgi", "ami"), "auto",
        "webcgi, or ami (with delivery status), for SMS and USSD; auto: ami when `ami` is set"
    ),
    ("yeastar", "http_timeout"): Key(_float, "10", "seconds to wait for WebCGI"),
    ("yeastar", "response_timeout"): Key(
        _float, "30", "seconds to wait for an AMI answer (a USSD request waits longer)"
    ),
    ("yeastar", "keepalive"): Key(_float, "60", "seconds of AMI silence before a Ping; 0: never"),
    ("yeastar", "reconnect_delay"): Key(
        _float, "1", "first pause before connecting again after AMI dropped"
    ),
    ("yeastar", "reconnect_max_delay"): Key(_float, "60", "longest pause between AMI attempts"),
    ("yeastar", "timezone"): Key(
        _str, "", "time zone of the TG's clock (Recvtime), e.g. Europe/Prague; empty: this "
        "machine's"
    ),
    ("yeastar", "spool"): Key(
        _str, "", "file keeping received SMS events until stored; empty: "
        "STATE_DIR/LOCKNAME.NAME.yeastar-inbox"
    ),
    ("yeastar", "rate_limit"): Key(
        _int, "0", "most SMS per minute through this transport (all its ports); 0: none"
    ),
    ("yeastar", "name"): Key(
        _str, "", "name recorded as the transport; empty: yeastar:HOST/GSM1"
    ),
}


# Several transports at once: sections [transport:NAME] with `type = modem|smpp|goip|yeastar`
# and the keys of the section named like the type ([modem], [smpp], ...), which is also how a
# site with one transport configures it.
TRANSPORT_PREFIX = "transport:"
# Webhooks: sections [webhook:NAME] with the keys of the "webhook" section of KEYS.
WEBHOOK_PREFIX = "webhook:"


def transport_types() -> Tuple[str, ...]:
    """Types a [transport:NAME] section may have: every section with a `name` key."""
    return tuple(sorted({s for s, k in KEYS if k == "name" and s not in ("client", "web")}))


class Config:
    """Parsed configuration; ``get`` returns typed values with defaults applied."""

    def __init__(self, raw: Optional[Dict[str, Dict[str, str]]] = None, path: str = "",
                 problems: Optional[List[str]] = None) -> None:
        """Raises ConfigError at the first bad value; with a ``problems`` list, appends
        every problem to it instead and uses the default where a value is bad."""
        self.path = path
        self._values: Dict[Tuple[str, str], Any] = {}
        raw = raw or {}
        where = path or "configuration"

        def problem(text: str) -> None:
            if problems is None:
                raise ConfigError(f"{where}: {text}")
            problems.append(f"{where}: {text}")

        self.bad_keys: List[Tuple[str, str]] = []  # (collected problems only)
        for (section, key), spec in KEYS.items():
            text = raw.get(section, {}).get(key, spec.default)
            try:
                self._values[(section, key)] = spec.parse(text)
            except (ValueError, LookupError) as exc:
                problem(f"[{section}] {key}: {exc}")
                self._values[(section, key)] = spec.parse(spec.default)
                self.bad_keys.append((section, key))
        if self.bad_keys:  # configurations made from this one take the defaults there too
            raw = {name: dict(values) for name, values in raw.items()}
            for section, key in self.bad_keys:
                raw[section].pop(key, None)
        self.raw = raw
        self._transports: Dict[str, Tuple[str, Dict[str, str]]] = {}
        for section, values in raw.items():
            if section.startswith(TRANSPORT_PREFIX):
                name = section[len(TRANSPORT_PREFIX):]
                kind = values.get("type", "").strip()
                if kind not in transport_types():
                    problem(f"[{section}] type must be one of "
                            f"{', '.join(transport_types())}, not {kind!r}")
                    continue
                settings = {k: v for k, v in values.items() if k != "type"}
                settings.setdefault("name", name)
                self._transports[name] = (kind, settings)
                found: List[str] = []
                seen = self.for_transport(name, found)  # check its values now, not at a pass
                for text in found:
                    if f"[{kind}] " in text:  # (the other sections are checked above)
                        problem(f"[{section}] " + text.split(f"[{kind}] ", 1)[1])
                for key in [key for bad_section, key in seen.bad_keys if bad_section == kind]:
                    settings.pop(key, None)
        self._webhooks: Dict[str, Dict[str, Any]] = {}
        for section, values in raw.items():
            if section.startswith(WEBHOOK_PREFIX):
                parsed = _webhook(section, values, problem)
                if parsed is not None:
                    self._webhooks[section[len(WEBHOOK_PREFIX):]] = parsed
        for prefix, name in self.routes(problems):
            if name not in self._transports:
                problem(f"[dispatcher] routes: {prefix} goes to {name!r}, which is no "
                        "[transport:NAME] section")

    def get(self, section: str, key: str) -> Any:
        return self._values[(section, key)]

    def routes(self, problems: Optional[List[str]] = None) -> List[Tuple[str, str]]:
        """[dispatcher] routes as (prefix, transport name), longest prefix first."""
        pairs = []
        for item in self.get("dispatcher", "routes"):
            prefix, equals, name = item.partition("=")
            prefix, name = prefix.strip(), name.strip()
            if not equals or not prefix or not name:
                text = (f"{self.path or 'configuration'}: [dispatcher] routes: "
                        f"{item!r} is not PREFIX = TRANSPORT")
                if problems is None:
                    raise ConfigError(text)
                problems.append(text)
                continue
            pairs.append((prefix, name))
        return sorted(pairs, key=lambda pair: -len(pair[0]))

    def webhooks(self) -> Dict[str, Dict[str, Any]]:
        """[webhook:NAME] sections: name -> their parsed keys, in file order."""
        return {name: dict(values) for name, values in self._webhooks.items()}

    def has_named_transports(self) -> bool:
        return bool(self._transports)

    def site(self) -> str:
        """This box's name among the sites sharing the database: [dispatcher] site, or the
        host name (as in the dispatcher's owner ids)."""
        return self.get("dispatcher", "site") or socket.gethostname()

    def transport_names(self) -> List[str]:
        """The [transport:NAME] sections in file order; none: the one [dispatcher] transport."""
        return list(self._transports) or [self.get("dispatcher", "transport")]

    def transport_type(self, name: str) -> str:
        if name in self._transports:
            return self._transports[name][0]
        return name

    def for_transport(self, name: str, problems: Optional[List[str]] = None) -> "Config":
        """This configuration as the one transport ``name`` sees it: its section's keys in
        the section of its type, so a transport reads [modem] (or [smpp] ...) as usual."""
        if name not in self._transports:
            return self
        kind, settings = self._transports[name]
        raw = {section: dict(values) for section, values in self.raw.items()
               if not section.startswith(TRANSPORT_PREFIX)}
        raw[kind] = dict(settings)
        dispatcher = raw.setdefault("dispatcher", {})
        dispatcher["transport"] = kind  # the one transport it sees
        dispatcher.pop("routes", None)  # routing is the lanes' business, not the transport's
        return Config(raw, self.path, problems)

    def with_overrides(self, **sections: Dict[str, str]) -> "Config":
        """A copy with some raw values replaced (used by tests and by command-line flags)."""
        raw = {name: dict(values) for name, values in self.raw.items()}
        for name, values in sections.items():
            raw.setdefault(name, {}).update({k: str(v) for k, v in values.items()})
        return Config(raw, self.path)


def _webhook(section: str, values: Dict[str, str],
             problem: Callable[[str], None]) -> Optional[Dict[str, Any]]:
    """A [webhook:NAME] section's parsed keys; None (after ``problem``) when it is unusable."""
    parsed: Dict[str, Any] = {}
    usable = True
    for (kind, key), spec in KEYS.items():
        if kind != "webhook":
            continue
        try:
            parsed[key] = spec.parse(values.get(key, spec.default))
        except (ValueError, LookupError) as exc:
            problem(f"[{section}] {key}: {exc}")
            usable = False
    name = section[len(WEBHOOK_PREFIX):]
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        problem(f"[{section}]: a webhook's name is letters, digits, - _ .")
        usable = False
    if not str(parsed.get("url", "")).lower().startswith(("http://", "https://")):
        problem(f"[{section}] url: an http:// or https:// URL is needed")
        usable = False
    if not parsed.get("secret"):
        problem(f"[{section}] secret: needed, to sign every event")
        usable = False
    if "events" in parsed and not parsed["events"]:
        problem(f"[{section}] events: at least one of {', '.join(WEBHOOK_EVENTS)}")
        usable = False
    return parsed if usable else None


_SECTION_LINE = re.compile(r"^\[(?P<section>[^\]]+)\]")
_KEY_LINE = re.compile(r"^(?P<key>[^\s#;=:\[][^=:]*?)\s*[=:]")


def _duplicates(text: str) -> List[str]:
    """Sections and keys given twice (configparser stops at the first of them)."""
    found: List[str] = []
    sections: Dict[str, int] = {}
    keys: Dict[str, int] = {}
    section = ""
    for number, line in enumerate(text.splitlines(), 1):
        header = _SECTION_LINE.match(line)
        if header:
            section = header.group("section").strip()
            if section in sections:
                found.append(f"[{section}] appears twice (lines {sections[section]} and {number})")
            sections.setdefault(section, number)
            continue
        entry = _KEY_LINE.match(line)
        if entry and section:
            key = entry.group("key").strip().lower()
            where = f"{section}\0{key}"
            if where in keys:
                found.append(f"[{section}] {key}: set twice (lines {keys[where]} and {number})")
            keys.setdefault(where, number)
    return found


def parse_text(text: str, path: str = "<string>",
               problems: Optional[List[str]] = None) -> Config:
    """The configuration in ``text``.  Raises ConfigError at the first problem; with a
    ``problems`` list, appends every problem to it and carries on (``smss check``)."""
    def problem(message: str) -> None:
        if problems is None:
            raise ConfigError(f"{path}: {message}")
        problems.append(f"{path}: {message}")

    parser = configparser.ConfigParser(interpolation=None, strict=problems is None)
    if problems is not None:
        for message in _duplicates(text):
            problem(message)
    try:
        parser.read_string(text, source=path)
    except configparser.MissingSectionHeaderError as exc:
        if problems is None:
            raise ConfigError(f"{path}: {exc}") from None
        problems.append(f"{path}: line {exc.lineno}: no [section] before {exc.line.strip()!r}")
        return Config({}, path, problems)
    except configparser.ParsingError as exc:  # every bad line; the good ones were read
        if problems is None:
            raise ConfigError(f"{path}: {exc}") from None
        for number, line in exc.errors:
            problems.append(f"{path}: line {number}: cannot parse {line.strip()!r}")
    except configparser.Error as exc:
        raise ConfigError(f"{path}: {exc}") from None
    known_sections = {section for section, _ in KEYS}
    raw: Dict[str, Dict[str, str]] = {}
    for section in parser.sections():
        values = dict(parser.items(section))
        if section.startswith(TRANSPORT_PREFIX):
            kind = values.get("type", "").strip()
            allowed = {key for s, key in KEYS if s == kind} | {"type"}
        elif section.startswith(WEBHOOK_PREFIX):
            allowed = {key for s, key in KEYS if s == "webhook"}
        elif section == "webhook":
            problem("[webhook] needs a name: [webhook:NAME]")
            continue
        elif section in known_sections:
            allowed = {key for s, key in KEYS if s == section}
        else:
            problem(f"unknown section [{section}]")
            continue
        typeless = section.startswith(TRANSPORT_PREFIX) and allowed == {"type"}
        for key in sorted(set(values) - allowed):
            if not typeless:  # (a bad type is reported by Config, with the choices)
                problem(f"[{section}] unknown key {key!r}")
            values.pop(key)
        raw[section] = values
    return Config(raw, path, problems)


def check_file(path: Optional[str] = None) -> Tuple[Config, List[str]]:
    """Like ``load``, but every problem of the file at once: (configuration, problems),
    the configuration taking defaults where a value is bad."""
    problems: List[str] = []
    explicit = path or os.environ.get("SMSS_CONFIG")
    chosen = explicit or DEFAULT_PATH
    try:
        with open(chosen, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        if explicit:
            return Config({}, ""), [f"{chosen}: no such file"]
        return Config({}, ""), []
    except (OSError, UnicodeDecodeError) as exc:
        return Config({}, ""), [f"{chosen}: {getattr(exc, 'strerror', None) or exc}"]
    return parse_text(text, chosen, problems), problems


def load(path: Optional[str] = None) -> Config:
    """Load ``path``, else ``$SMSS_CONFIG``, else the default file (absent: defaults)."""
    explicit = path or os.environ.get("SMSS_CONFIG")
    chosen = explicit or DEFAULT_PATH
    try:
        with open(chosen, encoding="utf-8") as handle:
            return parse_text(handle.read(), chosen)
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{chosen}: no such file") from None
        return Config({}, "")
    except OSError as exc:
        raise ConfigError(f"{chosen}: {exc.strerror}") from None
