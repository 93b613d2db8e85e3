"""Result codes and error reports of the simulated modem (pure).

Owns: the ``AtError`` exception command handlers raise, the texts of
``+CME ERROR`` (27.007 9.2) and ``+CMS ERROR`` (27.005 3.2.5 plus the network
causes of 24.011 E-2) codes, and how a result is rendered for the current
``AT+CMEE`` and ``ATV`` settings.
"""

from __future__ import annotations

CME = "cme"
CMS = "cms"
PLAIN = "plain"

CME_TEXT = {
    0: "phone failure",
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    14: "SIM busy",
    15: "SIM wrong",
    16: "incorrect password",
    20: "memory full",
    21: "invalid index",
    22: "not found",
    24: "text string too long",
    25: "invalid characters in text string",
    30: "no network service",
    31: "network timeout",
    50: "incorrect parameters",
    100: "unknown",
}

CMS_TEXT = {
    1: "Unassigned (unallocated) number",
    8: "Operator determined barring",
    10: "Call barred",
    21: "Short message transfer rejected",
    27: "Destination out of service",
    28: "Unidentified subscriber",
    29: "Facility rejected",
    30: "Unknown subscriber",
    38: "Network out of order",
    41: "Temporary failure",
    42: "Congestion",
    47: "Resources unavailable, unspecified",
    50: "Requested facility not subscribed",
    69: "Requested facility not implemented",
    96: "Invalid mandatory information",
    111: "Protocol error, unspecified",
    127: "Interworking, unspecified",
    300: "ME failure",
    301: "SMS service of ME reserved",
    302: "operation not allowed",
    303: "operation not supported",
    304: "invalid PDU mode parameter",
    305: "invalid text mode parameter",
    310: "SIM not inserted",
    311: "SIM PIN required",
    313: "SIM failure",
    314: "SIM busy",
    315: "SIM wrong",
    316: "SIM PUK required",
    320: "memory failure",
    321: "invalid memory index",
    322: "memory full",
    330: "SMSC address unknown",
    331: "no network service",
    332: "network timeout",
    340: "no +CNMA acknowledgement expected",
    500: "unknown error",
}

# numeric result codes for ATV0
_NUMERIC = {"OK": "0", "CONNECT": "1", "RING": "2", "NO CARRIER": "3", "ERROR": "4"}


class AtError(Exception):
    """A command failed: ``kind`` is CME, CMS or PLAIN (always a bare ERROR)."""

    def __init__(self, kind: str, code: int = 0) -> None:
        super().__init__(f"{kind} {code}")
        self.kind = kind
        self.code = code


def cme(code: int) -> AtError:
    return AtError(CME, code)


def cms(code: int) -> AtError:
    return AtError(CMS, code)


def plain() -> AtError:
    return AtError(PLAIN)


def error_text(error: AtError, cmee: int) -> str:
    """The final result line for ``error`` under ``AT+CMEE=<cmee>``."""
    if error.kind == PLAIN or cmee == 0:
        return "ERROR"
    prefix = "+CME ERROR: " if error.kind == CME else "+CMS ERROR: "
    if cmee == 2:
        table = CME_TEXT if error.kind == CME else CMS_TEXT
        return prefix + table.get(error.code, "unknown error")
    return prefix + str(error.code)


def render_final(result: str, verbose: bool) -> str:
    """A final result (``OK``, ``ERROR``, ``+CMS ERROR: 38``) framed as the modem sends it."""
    if verbose:
        return f"\r\n{result}\r\n"
    if result in _NUMERIC:
        return _NUMERIC[result] + "\r"
    return f"{result}\r\n"  # extended error reports stay text with ATV0


def render_info(lines, verbose: bool) -> str:
    """Information text lines framed as the modem sends them."""
    body = "".join(line + "\r\n" for line in lines)
    return "\r\n" + body if verbose else body
