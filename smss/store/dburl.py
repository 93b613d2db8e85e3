"""Database URLs, pure: ``sqlite:///PATH`` or ``mysql://USER:PASSWORD@HOSTS/NAME?OPTIONS``.

HOSTS is one server or several, comma separated, each ``host``, ``host:port``
or ``[IPv6]:port`` (``mysql://smss:pw@db1,db2:3307,[fd00::3]/smss``): the nodes
of a Galera cluster, tried in order (``smss.store.database``).  A user name or
password with ``@ : / ,`` in it is percent-encoded.  OPTIONS: ``unix_socket``
(one local server instead of HOSTS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple
from urllib.parse import parse_qs, unquote

from smss.store.errors import DatabaseError

DEFAULT_PORT = 3306


class UrlError(DatabaseError, ValueError):
    """The URL cannot be read; the message says why (without the password)."""


@dataclass(frozen=True)
class Host:
    name: str
    port: int = DEFAULT_PORT

    def __str__(self) -> str:
        name = f"[{self.name}]" if ":" in self.name else self.name
        return f"{name}:{self.port}"


@dataclass(frozen=True)
class DatabaseUrl:
    dialect: str  # "sqlite" or "mysql"
    path: str = ""  # sqlite
    hosts: Tuple[Host, ...] = (Host("localhost"),)
    user: str = ""
    password: str = ""
    database: str = ""
    unix_socket: str = ""
    tls: str = "auto"  # auto, off, preferred, verify
    tls_ca: str = ""

    @property
    def host(self) -> str:
        """The first server (the only one, unless the URL lists several)."""
        return self.hosts[0].name

    @property
    def port(self) -> int:
        return self.hosts[0].port

    @classmethod
    def parse(cls, url: str) -> "DatabaseUrl":
        if url.startswith("sqlite://"):
            path = url[len("sqlite://") :]
            if not path or path == "/":
                raise UrlError(f"{url}: no database file in the URL")
            return cls("sqlite", path=path)
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in ("mysql", "mariadb"):
            raise UrlError(f"{_safe(url)}: unknown database URL (use sqlite:///PATH or "
                           "mysql://…)")
        rest, _, query = rest.partition("?")
        netloc, _, path = rest.partition("/")
        database = path.strip("/")
        if not database:
            raise UrlError(f"{scheme}://…: no database name in the URL")
        userinfo, at, hostlist = netloc.rpartition("@")
        if not at:
            userinfo, hostlist = "", netloc
        user, _, password = userinfo.partition(":")
        options = parse_qs(query)
        unix_socket = options.get("unix_socket", [""])[0]
        hosts = parse_hosts(hostlist) if hostlist else (Host("localhost"),)
        return cls("mysql", hosts=hosts, user=unquote(user), password=unquote(password),
                   database=database, unix_socket=unix_socket)

    def describe(self) -> str:
        """The URL without its password, for logs."""
        if self.dialect == "sqlite":
            return f"sqlite://{self.path}"
        where = self.unix_socket or ",".join(str(host) for host in self.hosts)
        return f"mysql://{self.user}@{where}/{self.database}"


def parse_hosts(text: str) -> Tuple[Host, ...]:
    """``db1,db2:3307,[::1]:3306`` -> the hosts in that order."""
    hosts = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise UrlError(f"empty host in the list {text!r}")
        if item.startswith("["):
            name, bracket, tail = item[1:].partition("]")
            if not bracket or not name or (tail and not tail.startswith(":")):
                raise UrlError(f"bad IPv6 host {item!r} (write [address]:port)")
            port_text = tail[1:]
        elif item.count(":") > 1:
            raise UrlError(f"bad host {item!r}: write an IPv6 address as [address]:port")
        else:
            name, _, port_text = item.partition(":")
        hosts.append(Host(name, _port(port_text, item) if port_text else DEFAULT_PORT))
    return tuple(hosts)


def _port(text: str, item: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UrlError(f"bad port in {item!r}")
    return int(text)


def _safe(url: str) -> str:
    """The URL with any password left out."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, tail = rest.rpartition("@")
    if at and ":" in userinfo:
        return f"{scheme}{sep}{userinfo.partition(':')[0]}:…@{tail}"
    return url
