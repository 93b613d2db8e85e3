"""The byte pipe to the modem, opened only through pyserial's ``serial_for_url``.

One code path for a serial port (``/dev/ttyS0``, ``/dev/ttyUSB0``), a modem
exposed over raw TCP (``socket://host:port``, e.g. a Conel ER75i router) and
an RFC 2217 port server (``rfc2217://host:port``).  Every I/O failure becomes
``LinkDown``; a read that finds nothing within ``read_timeout`` returns b"".
``abort`` (from another thread) makes the next read or write, and every open
after it, raise ``LinkDown``: a caller blocked on a hung modem returns within
``read_timeout``.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

import serial

from .errors import LinkDown

log = logging.getLogger(__name__)

try:  # a hung-up pty makes tcdrain() raise termios.error, which is no OSError
    import termios

    _IO_ERRORS: tuple = (serial.SerialException, OSError, termios.error)
except ImportError:  # not POSIX
    _IO_ERRORS = (serial.SerialException, OSError)


class Link:
    """An openable, closable connection to a modem."""

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = 115200,
        read_timeout: float = 0.1,
        write_timeout: float = 10.0,
        opener: Callable[..., Any] = serial.serial_for_url,
    ) -> None:
        if not url:
            raise LinkDown("no modem device configured ([modem] device)")
        self.url = url
        self.baudrate = baudrate
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self._opener = opener
        self._port: Optional[Any] = None
        self._aborted: Optional[str] = None  # why abort() gave the link up

    @property
    def is_open(self) -> bool:
        return self._port is not None

    def abort(self, reason: str) -> None:
        """Give the link up for good; safe from any thread (the port is closed by the thread
        using it, when its next read or write raises LinkDown)."""
        self._aborted = reason

    def open(self) -> None:
        if self._aborted is not None:
            raise LinkDown(self._aborted)
        if self._port is not None:
            return
        kwargs = {
            "baudrate": self.baudrate,
            "timeout": self.read_timeout,
            "do_not_open": True,
        }
        if not self.url.lower().startswith("rfc2217://"):  # pyserial's rfc2217 refuses one
            kwargs["write_timeout"] = self.write_timeout
        if "://" not in self.url:
            kwargs["exclusive"] = True  # one process at a time on a local port
        try:
            port = self._opener(self.url, **kwargs)
            port.open()
        except (*_IO_ERRORS, ValueError) as exc:
            raise LinkDown(f"cannot open {self.url}: {exc}") from exc
        self._port = port
        log.debug("opened %s", self.url)

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except _IO_ERRORS as exc:
                log.debug("closing %s: %s", self.url, exc)

    def _require(self) -> Any:
        if self._aborted is not None:
            self.close()
            raise LinkDown(self._aborted)
        if self._port is None:
            raise LinkDown(f"{self.url} is not open")
        return self._port

    def write(self, data: bytes) -> None:
        port = self._require()
        try:
            port.write(data)
            port.flush()
        except serial.SerialTimeoutException as exc:
            self.close()
            raise LinkDown(f"writing to {self.url} timed out (flow control stuck?)") from exc
        except _IO_ERRORS as exc:
            self.close()
            raise LinkDown(f"writing to {self.url}: {exc}") from exc

    def read(self) -> bytes:
        """What the modem sent, waiting at most ``read_timeout`` for the first byte."""
        port = self._require()
        try:
            waiting = port.in_waiting
            data = port.read(waiting if waiting > 0 else 1)
            # socket:// reports only "something is waiting": keep reading while it does
            while data and len(data) < 65536:
                waiting = port.in_waiting
                if waiting <= 0:
                    break
                data += port.read(waiting)
            return data
        except _IO_ERRORS as exc:
            self.close()
            raise LinkDown(f"reading from {self.url}: {exc}") from exc

    def has_waiting(self) -> bool:
        """Whether bytes are waiting to be read (False when closed)."""
        if self._port is None:
            return False
        try:
            return bool(self._port.in_waiting)
        except _IO_ERRORS as exc:
            self.close()
            raise LinkDown(f"polling {self.url}: {exc}") from exc

    def discard_input(self) -> None:
        """Throw away what has been received and not read yet."""
        port = self._require()
        try:
            port.reset_input_buffer()
        except _IO_ERRORS as exc:
            self.close()
            raise LinkDown(f"flushing {self.url}: {exc}") from exc
