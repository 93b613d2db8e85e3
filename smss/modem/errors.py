"""Modem errors: what went wrong, and whether trying again later can help.

Every failure of the modem layer is a ``ModemError`` with three answers for
the caller (the dispatcher):

- ``temporary``: trying the same thing later may succeed without anyone
  changing anything (network busy, timeout, link down, SIM busy).  Keep the
  message queued.
- ``PermanentError`` (``temporary`` false): this request is refused and will
  be refused again (unassigned number, barred, invalid PDU).  Fail the
  message; the modem is fine.
- ``SimError`` (``needs_operator`` true): the SIM needs a person (PIN missing
  or wrong, PUK, no SIM).  Keep every message queued, stop, and tell someone.
  A wrong PIN is never sent twice.

Errors carry the +CMS / +CME code and a readable reason from the tables of
3GPP TS 27.005 (+CMS, with the RP causes of 24.011 and the TP-FCS values of
23.040) and TS 27.007 (+CME).  ``error_for_result`` turns a final result
code into the right exception.
"""

from __future__ import annotations

from typing import Dict, FrozenSet, Optional


class ModemError(Exception):
    """A modem operation failed.  ``family`` is "CMS", "CME" or None."""

    temporary = True
    needs_operator = False

    def __init__(
        self,
        reason: str,
        *,
        code: Optional[int] = None,
        family: Optional[str] = None,
        command: Optional[str] = None,
    ) -> None:
        self.reason = reason
        self.code = code
        self.family = family
        self.command = command
        #: references of parts that did go out before a multipart send failed
        self.sent_references: list = []
        #: for AT+CMGS: False = the PDU was never written (nothing sent); True = it was
        #: written, so after a timeout the SMS may have gone out; None = not a send
        self.pdu_sent: Optional[bool] = None
        super().__init__(self._describe())

    def _describe(self) -> str:
        text = self.reason
        if self.family and self.code is not None:
            text = f"+{self.family} ERROR {self.code}: {text}"
        if self.command:
            text = f"{text} (after {self.command})"
        return text

    @property
    def permanent(self) -> bool:
        return not self.temporary


class TemporaryError(ModemError):
    """Try again later; nothing needs to change for it to work."""

    temporary = True


class PermanentError(ModemError):
    """The request is refused and will be refused again: fail this message."""

    temporary = False


class SimError(ModemError):
    """The SIM needs a person; nothing is retried automatically."""

    temporary = False
    needs_operator = True


class ModemTimeout(TemporaryError):
    """The modem did not answer in time."""


class LinkDown(TemporaryError):
    """The port could not be opened, or the connection to the modem broke."""


class NoNetwork(TemporaryError):
    """The modem is not registered in a network (or the network failed)."""


class SimBusy(TemporaryError):
    """The SIM is busy (usually just after the PIN); the session waits it out."""


class PinRequired(SimError):
    """The SIM asks for a PIN and none is configured (or it is still locked)."""


class WrongPin(SimError):
    """The configured PIN was rejected; it will not be sent again."""


class PukRequired(SimError):
    """The SIM is blocked and needs the PUK."""


class NoSim(SimError):
    """No SIM card is inserted (or it is not readable)."""


# --- 27.005 section 3.2.5: +CMS ERROR codes ------------------------------------------------
CMS_REASONS: Dict[int, str] = {
    # 0..127: RP cause values, 3GPP TS 24.011 table 8.4
    1: "unassigned (unallocated) number",
    8: "operator determined barring",
    10: "call barred",
    17: "network failure",
    21: "short message transfer rejected",
    22: "memory capacity exceeded",
    27: "destination out of order",
    28: "unidentified subscriber",
    29: "facility rejected",
    30: "unknown subscriber",
    38: "network out of order",
    41: "temporary failure",
    42: "congestion",
    47: "resources unavailable, unspecified",
    50: "requested facility not subscribed",
    69: "requested facility not implemented",
    81: "invalid short message transfer reference value",
    95: "invalid message, unspecified",
    96: "invalid mandatory information",
    97: "message type non-existent or not implemented",
    98: "message not compatible with short message protocol state",
    99: "information element non-existent or not implemented",
    111: "protocol error, unspecified",
    127: "interworking, unspecified",
    # 128..255: TP-FCS values, 3GPP TS 23.040 9.2.3.22
    128: "telematic interworking not supported",
    129: "short message type 0 not supported",
    130: "cannot replace short message",
    143: "unspecified TP-PID error",
    144: "data coding scheme (alphabet) not supported",
    145: "message class not supported",
    159: "unspecified TP-DCS error",
    160: "command cannot be actioned",
    161: "command unsupported",
    175: "unspecified TP-command error",
    176: "TPDU not supported",
    192: "SC busy",
    193: "no SC subscription",
    194: "SC system failure",
    195: "invalid SME address",
    196: "destination SME barred",
    197: "SM rejected - duplicate SM",
    198: "TP-VPF not supported",
    199: "TP-VP not supported",
    208: "(U)SIM SMS storage full",
    209: "no SMS storage capability in (U)SIM",
    210: "error in MS",
    211: "memory capacity exceeded",
    212: "(U)SIM application toolkit busy",
    213: "(U)SIM data download error",
    255: "unspecified error cause",
    # 300..: 27.005 itself
    300: "ME failure",
    301: "SMS service of ME reserved",
    302: "operation not allowed",
    303: "operation not supported",
    304: "invalid PDU mode parameter",
    305: "invalid text mode parameter",
    310: "(U)SIM not inserted",
    311: "(U)SIM PIN required",
    312: "PH-(U)SIM PIN required",
    313: "(U)SIM failure",
    314: "(U)SIM busy",
    315: "(U)SIM wrong",
    316: "(U)SIM PUK required",
    317: "(U)SIM PIN2 required",
    318: "(U)SIM PUK2 required",
    320: "memory failure",
    321: "invalid memory index",
    322: "memory full",
    330: "SMSC address unknown",
    331: "no network service",
    332: "network timeout",
    340: "no +CNMA acknowledgement expected",
    500: "unknown error",
    # 512..: manufacturer specific; these are the common meanings (Siemens/Cinterion, Huawei)
    512: "user abort (manufacturer specific)",
    513: "unable to store (manufacturer specific)",
    514: "invalid status (manufacturer specific)",
    515: "device busy, or initialisation in progress (manufacturer specific)",
    516: "invalid length (manufacturer specific)",
    517: "invalid character in PDU (manufacturer specific)",
    518: "invalid parameter (manufacturer specific)",
    519: "invalid length or character (manufacturer specific)",
    520: "invalid character in text (manufacturer specific)",
    521: "timer expired (manufacturer specific)",
    522: "operation temporarily not allowed (manufacturer specific)",
    532: "SIM not ready (manufacturer specific)",
    535: "protocol stack busy (manufacturer specific)",
}

# 27.007 section 9.2: +CME ERROR codes
CME_REASONS: Dict[int, str] = {
    0: "phone failure",
    1: "no connection to phone",
    2: "phone-adaptor link reserved",
    3: "operation not allowed",
    4: "operation not supported",
    5: "PH-SIM PIN required",
    6: "PH-FSIM PIN required",
    7: "PH-FSIM PUK required",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    14: "SIM busy",
    15: "SIM wrong",
    16: "incorrect password",
    17: "SIM PIN2 required",
    18: "SIM PUK2 required",
    20: "memory full",
    21: "invalid index",
    22: "not found",
    23: "memory failure",
    24: "text string too long",
    25: "invalid characters in text string",
    26: "dial string too long",
    27: "invalid characters in dial string",
    30: "no network service",
    31: "network timeout",
    32: "network not allowed - emergency calls only",
    40: "network personalization PIN required",
    41: "network personalization PUK required",
    42: "network subset personalization PIN required",
    43: "network subset personalization PUK required",
    44: "service provider personalization PIN required",
    45: "service provider personalization PUK required",
    46: "corporate personalization PIN required",
    47: "corporate personalization PUK required",
    50: "incorrect parameters",
    100: "unknown",
    103: "illegal MS",
    106: "illegal ME",
    107: "GPRS services not allowed",
    111: "PLMN not allowed",
    112: "location area not allowed",
    113: "roaming not allowed in this location area",
    148: "unspecified GPRS error",
    149: "PDP authentication failure",
    150: "invalid mobile class",
}

# --- classification ---------------------------------------------------------------------------
# +CMS codes after which the same message will be refused again.
_CMS_PERMANENT: FrozenSet[int] = frozenset(
    {1, 8, 10, 21, 28, 29, 30, 50, 69, 95, 96, 97, 99, 127}
    | {128, 129, 130, 143, 144, 145, 159, 160, 161, 175, 176}
    | {193, 195, 196, 197, 198, 199}
    | {303, 304, 305, 321, 516, 517, 518, 519, 520}
)
_CMS_NO_NETWORK: FrozenSet[int] = frozenset({17, 27, 38, 331, 332})
_CMS_BUSY: FrozenSet[int] = frozenset({314})
_CMS_SIM: Dict[int, type] = {
    310: NoSim,
    311: PinRequired,
    312: PinRequired,
    313: NoSim,
    315: NoSim,
    316: PukRequired,
    318: PukRequired,
}
# Temporary network / busy conditions that are simply retried later: 22, 41, 42, 47, 81, 98,
# 111, 192, 194, 210-213, 255, 300-302, 320, 322, 330, 500, 512-515, 521, 522, 532, 535 and every
# code not listed anywhere (bounded by the dispatcher's max_attempts).

_CME_PERMANENT: FrozenSet[int] = frozenset({4, 21, 22, 24, 25, 26, 27, 50})
_CME_NO_NETWORK: FrozenSet[int] = frozenset({30, 31, 32, 103, 106, 111, 112, 113})
_CME_BUSY: FrozenSet[int] = frozenset({14})
_CME_SIM: Dict[int, type] = {
    5: PinRequired,
    6: PinRequired,
    7: PukRequired,
    10: NoSim,
    11: PinRequired,
    12: PukRequired,
    13: NoSim,
    15: NoSim,
    16: WrongPin,
    18: PukRequired,
    40: PinRequired,
    41: PukRequired,
    42: PinRequired,
    43: PukRequired,
    44: PinRequired,
    45: PukRequired,
    46: PinRequired,
    47: PukRequired,
}


def reason_for(family: Optional[str], code: Optional[int]) -> str:
    """The readable reason of a +CMS / +CME code ("unknown code N" when not in the tables)."""
    if code is None:
        return "error"
    table = CMS_REASONS if family == "CMS" else CME_REASONS
    if code in table:
        return table[code]
    if family == "CMS" and 0 <= code <= 127:
        return f"network (RP) cause {code}"
    if family == "CMS" and 224 <= code <= 254:
        return f"SMSC application specific error {code}"
    return f"unknown code {code}"


def _normalise(text: str) -> str:
    return " ".join(text.lower().replace("(u)", "").replace("-", " ").split())


_BY_TEXT = {
    family: {_normalise(reason): code for code, reason in table.items()}
    for family, table in (("CMS", CMS_REASONS), ("CME", CME_REASONS))
}
# Verbose texts some modems print that differ from the spec wording.
_BY_TEXT["CME"].update(
    {
        "sim not ready": 14,
        "sim pin required": 11,
        "sim puk required": 12,
        "wrong password": 16,
        "invalid password": 16,
        "no network": 30,
        "sim failure": 13,
        "sim not inserted": 10,
    }
)
_BY_TEXT["CMS"].update(
    {
        "sim busy": 314,
        "sim not inserted": 310,
        "sim pin required": 311,
        "sim puk required": 316,
        "sim failure": 313,
        "unknown error": 500,
    }
)


def code_for_text(family: str, text: str) -> Optional[int]:
    """The numeric code of a verbose error text (``AT+CMEE=2`` style), or None."""
    return _BY_TEXT.get(family, {}).get(_normalise(text))


def error_for_result(
    family: Optional[str],
    code: Optional[int],
    *,
    text: Optional[str] = None,
    command: Optional[str] = None,
) -> ModemError:
    """The exception for a failed command: ``ERROR``, ``+CMS ERROR: n`` or ``+CME ERROR: n``.

    ``text`` is the verbose reason a modem gave instead of a number (kept when the code is
    unknown).  A bare ERROR is temporary: the modem did not say why.
    """
    if code is None:
        reason = text or ("command failed" if family else "ERROR without a reason")
        return TemporaryError(reason, family=family, command=command)
    reason = reason_for(family, code)
    if text and reason.startswith("unknown code"):
        reason = text
    kwargs = {"code": code, "family": family, "command": command}
    if family == "CMS":
        if code in _CMS_SIM:
            return _CMS_SIM[code](reason, **kwargs)
        if code in _CMS_BUSY:
            return SimBusy(reason, **kwargs)
        if code in _CMS_NO_NETWORK:
            return NoNetwork(reason, **kwargs)
        if code in _CMS_PERMANENT:
            return PermanentError(reason, **kwargs)
        return TemporaryError(reason, **kwargs)
    if code in _CME_SIM:
        return _CME_SIM[code](reason, **kwargs)
    if code in _CME_BUSY:
        return SimBusy(reason, **kwargs)
    if code in _CME_NO_NETWORK:
        return NoNetwork(reason, **kwargs)
    if code in _CME_PERMANENT:
        return PermanentError(reason, **kwargs)
    return TemporaryError(reason, **kwargs)
