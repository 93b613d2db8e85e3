"""Modem errors: what went wrong, and whether trying again later can help.

Every failure of the modem layer is a ``ModemError`` with three answers for
the caller (the dispatcher):

- ``temporary``: trying the same thing later may succeed without anyone
  changing anything (network busy, timeout, link down, SIM busy).  Keep the
  message queued.  ``NoNetwork``, ``LinkDown`` and ``ModemTimeout`` say the
  modem cannot send anything now; the other temporary errors concern this
  one request.
- ``PermanentError`` (``temporary`` false): this request is refused and will
  be refused again (unassigned number, barred, invalid PDU).  Fail the
  message; the modem is fine.
- ``SimError`` (``needs_operator`` true): the SIM needs a person (PIN missing
  or wrong, PUK, no SIM).  Keep every message queued, stop, and tell someone.
  A wrong PIN is never sent twice.

Errors carry the +CMS / +CME code and a readable reason.  ``CMS_CODES`` and
``CME_CODES`` are the one table that names and classifies every code (3GPP TS
27.005 +CMS with the RP causes of 24.011 and the TP-FCS values of 23.040, TS
27.007 +CME; the sources of each choice are beside the table, and the README
lists the same table).  ``error_for_result`` turns a final result code into
the right exception.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple


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


class NoSmsc(SimError):
    """No SMS centre number: the SIM has none and [modem] smsc is empty (+CMS 330)."""


class SimRejected(SimError):
    """The network refuses this SIM or modem (illegal MS/ME, 3GPP TS 24.008 causes 3 and
    6): it stays refused until someone deals with the subscription or the device."""


# --- the one table of +CMS / +CME codes ----------------------------------------------------
#
# Every code maps to (reason, error class).  The class decides what happens to the message
# (see ``smss.transports.modem.failure``): PermanentError fails it; TemporaryError (and
# SimBusy, once waited out) defers it alone; NoNetwork keeps every message and ends the
# pass; SimError keeps every message and asks for a person.  A code not listed here is
# temporary (retried, bounded by [dispatcher] max_attempts): a wrong "temporary" costs a
# few retries, a wrong "permanent" loses a message.
#
# Sources: 3GPP TS 27.005 3.2.5 (the +CMS list), TS 24.011 8.2.5.4 and annex E (the RP
# causes a network returns for a submitted SMS, and which of them are temporary), TS 23.040
# 9.2.3.22 (TP-FCS), TS 27.007 9.2 (+CME), TS 24.008 annex G (registration causes); and
# what maintained software does: gammu (libgammu/phone/at/atgen.c ATGEN_HandleCMSError
# groups 38, 41, 42, 47, 111, 331, 332 as network errors), Kannel (gw/smsc/smsc_at.c
# at2_send_one_message: every +CMS ERROR after AT+CMGS fails that message temporarily and
# keeps the modem), smstools3 (src/smsd.c send_part: any error retries that part after
# errorsleeptime, the modem stays open).
CMS_CODES: Dict[int, Tuple[str, type]] = {
    # RP causes (24.011 table 8.4).  Annex E: 1, 8, 10, 21, 29, 30, 50, 69 and the
    # invalid-message class (95-97, 99) say this submission is refused and will be again;
    # 38 "network out of order" and 41 "temporary failure" say the network is not working
    # now (38 for longer) - the message is tried again later, like every other message
    # (gammu, Kannel, smstools3).  17 (MSC failure, MAP problems), 27 (the destination's
    # interface is out of order), 28 (this subscriber unknown in the VLR) and 127 (the
    # precise cause cannot be ascertained) are not about the message either: temporary.
    1: ("unassigned (unallocated) number", PermanentError),
    8: ("operator determined barring", PermanentError),
    10: ("call barred", PermanentError),
    17: ("network failure", TemporaryError),
    21: ("short message transfer rejected", PermanentError),
    22: ("memory capacity exceeded", TemporaryError),
    27: ("destination out of order", TemporaryError),
    28: ("unidentified subscriber", TemporaryError),
    29: ("facility rejected", PermanentError),
    30: ("unknown subscriber", PermanentError),
    38: ("network out of order", TemporaryError),
    41: ("temporary failure", TemporaryError),
    42: ("congestion", TemporaryError),
    47: ("resources unavailable, unspecified", TemporaryError),
    50: ("requested facility not subscribed", PermanentError),
    69: ("requested facility not implemented", PermanentError),
    81: ("invalid short message transfer reference value", TemporaryError),
    95: ("invalid message, unspecified", PermanentError),
    96: ("invalid mandatory information", PermanentError),
    97: ("message type non-existent or not implemented", PermanentError),
    98: ("message not compatible with short message protocol state", TemporaryError),
    99: ("information element non-existent or not implemented", PermanentError),
    111: ("protocol error, unspecified", TemporaryError),
    127: ("interworking, unspecified", TemporaryError),
    # TP-FCS (23.040 9.2.3.22) from the SMSC: what it cannot do with this message is
    # permanent; "SC busy", "SC system failure" and the (U)SIM / MS conditions are not.
    128: ("telematic interworking not supported", PermanentError),
    129: ("short message type 0 not supported", PermanentError),
    130: ("cannot replace short message", PermanentError),
    143: ("unspecified TP-PID error", PermanentError),
    144: ("data coding scheme (alphabet) not supported", PermanentError),
    145: ("message class not supported", PermanentError),
    159: ("unspecified TP-DCS error", PermanentError),
    160: ("command cannot be actioned", PermanentError),
    161: ("command unsupported", PermanentError),
    175: ("unspecified TP-command error", PermanentError),
    176: ("TPDU not supported", PermanentError),
    192: ("SC busy", TemporaryError),
    193: ("no SC subscription", PermanentError),
    194: ("SC system failure", TemporaryError),
    195: ("invalid SME address", PermanentError),
    196: ("destination SME barred", PermanentError),
    197: ("SM rejected - duplicate SM", PermanentError),
    198: ("TP-VPF not supported", PermanentError),
    199: ("TP-VP not supported", PermanentError),
    208: ("(U)SIM SMS storage full", TemporaryError),
    209: ("no SMS storage capability in (U)SIM", TemporaryError),
    210: ("error in MS", TemporaryError),
    211: ("memory capacity exceeded", TemporaryError),
    212: ("(U)SIM application toolkit busy", TemporaryError),
    213: ("(U)SIM data download error", TemporaryError),
    255: ("unspecified error cause", TemporaryError),
    # 27.005 itself.  304/305: our PDU or text is wrong; 303: the modem cannot do it.
    # 330 (no SMSC): every message would fail until someone sets [modem] smsc.  331 (not
    # registered): every message would fail, none is the cause: keep them all.  332: the
    # network did not acknowledge in time - the message may have gone (it counts).
    300: ("ME failure", TemporaryError),
    301: ("SMS service of ME reserved", TemporaryError),
    302: ("operation not allowed", TemporaryError),
    303: ("operation not supported", PermanentError),
    304: ("invalid PDU mode parameter", PermanentError),
    305: ("invalid text mode parameter", PermanentError),
    310: ("(U)SIM not inserted", NoSim),
    311: ("(U)SIM PIN required", PinRequired),
    312: ("PH-(U)SIM PIN required", PinRequired),
    313: ("(U)SIM failure", NoSim),
    314: ("(U)SIM busy", SimBusy),
    315: ("(U)SIM wrong", NoSim),
    316: ("(U)SIM PUK required", PukRequired),
    317: ("(U)SIM PIN2 required", TemporaryError),
    318: ("(U)SIM PUK2 required", PukRequired),
    320: ("memory failure", TemporaryError),
    321: ("invalid memory index", PermanentError),
    322: ("memory full", TemporaryError),
    330: ("SMSC address unknown", NoSmsc),
    331: ("no network service", NoNetwork),
    332: ("network timeout", TemporaryError),
    340: ("no +CNMA acknowledgement expected", TemporaryError),
    500: ("unknown error", TemporaryError),
    # 512..: manufacturer specific, and the makers disagree (smstools3 src/modeminit.c:
    # 512 MM establishment failure, 513 lower layer failure, 514 congestion, 515 init in
    # progress; Siemens/Cinterion: 512 user abort ...).  Only the PDU/parameter errors
    # 516-520 (Cinterion; gammu treats 517, 519, 520 as a bug of the caller) are permanent.
    512: ("MM establishment failure or user abort (manufacturer specific)", TemporaryError),
    513: ("lower layer failure or unable to store (manufacturer specific)", TemporaryError),
    514: ("congestion or invalid status (manufacturer specific)", TemporaryError),
    515: ("device busy, or initialisation in progress (manufacturer specific)", TemporaryError),
    516: ("invalid length (manufacturer specific)", PermanentError),
    517: ("invalid character in PDU (manufacturer specific)", PermanentError),
    518: ("invalid parameter (manufacturer specific)", PermanentError),
    519: ("invalid length or character (manufacturer specific)", PermanentError),
    520: ("invalid character in text (manufacturer specific)", PermanentError),
    521: ("timer expired (manufacturer specific)", TemporaryError),
    522: ("operation temporarily not allowed (manufacturer specific)", TemporaryError),
    532: ("SIM not ready (manufacturer specific)", TemporaryError),
    535: ("protocol stack busy (manufacturer specific)", TemporaryError),
}

CME_CODES: Dict[int, Tuple[str, type]] = {
    # 27.007 9.2.  SIM states need a person; 30 and 32 (not registered, emergency calls
    # only) and the registration rejects 111-113 (24.008 annex G: PLMN / location area /
    # roaming not allowed) keep every message; 103/106 (illegal MS/ME, 24.008 causes 3
    # and 6) mean the network refuses this SIM or device until someone acts; 31 (network
    # timeout) is about one request, like +CMS 332.
    0: ("phone failure", TemporaryError),
    1: ("no connection to phone", TemporaryError),
    2: ("phone-adaptor link reserved", TemporaryError),
    3: ("operation not allowed", TemporaryError),
    4: ("operation not supported", PermanentError),
    5: ("PH-SIM PIN required", PinRequired),
    6: ("PH-FSIM PIN required", PinRequired),
    7: ("PH-FSIM PUK required", PukRequired),
    10: ("SIM not inserted", NoSim),
    11: ("SIM PIN required", PinRequired),
    12: ("SIM PUK required", PukRequired),
    13: ("SIM failure", NoSim),
    14: ("SIM busy", SimBusy),
    15: ("SIM wrong", NoSim),
    16: ("incorrect password", WrongPin),
    17: ("SIM PIN2 required", TemporaryError),
    18: ("SIM PUK2 required", PukRequired),
    20: ("memory full", TemporaryError),
    21: ("invalid index", PermanentError),
    22: ("not found", PermanentError),
    23: ("memory failure", TemporaryError),
    24: ("text string too long", PermanentError),
    25: ("invalid characters in text string", PermanentError),
    26: ("dial string too long", PermanentError),
    27: ("invalid characters in dial string", PermanentError),
    30: ("no network service", NoNetwork),
    31: ("network timeout", TemporaryError),
    32: ("network not allowed - emergency calls only", NoNetwork),
    40: ("network personalization PIN required", PinRequired),
    41: ("network personalization PUK required", PukRequired),
    42: ("network subset personalization PIN required", PinRequired),
    43: ("network subset personalization PUK required", PukRequired),
    44: ("service provider personalization PIN required", PinRequired),
    45: ("service provider personalization PUK required", PukRequired),
    46: ("corporate personalization PIN required", PinRequired),
    47: ("corporate personalization PUK required", PukRequired),
    50: ("incorrect parameters", PermanentError),
    100: ("unknown", TemporaryError),
    103: ("illegal MS", SimRejected),
    106: ("illegal ME", SimRejected),
    107: ("GPRS services not allowed", TemporaryError),
    111: ("PLMN not allowed", NoNetwork),
    112: ("location area not allowed", NoNetwork),
    113: ("roaming not allowed in this location area", NoNetwork),
    148: ("unspecified GPRS error", TemporaryError),
    149: ("PDP authentication failure", TemporaryError),
    150: ("invalid mobile class", TemporaryError),
}

CODES = {"CMS": CMS_CODES, "CME": CME_CODES}
CMS_REASONS: Dict[int, str] = {code: reason for code, (reason, _) in CMS_CODES.items()}
CME_REASONS: Dict[int, str] = {code: reason for code, (reason, _) in CME_CODES.items()}


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
    entry = (CMS_CODES if family == "CMS" else CME_CODES).get(code)
    error_class = entry[1] if entry else TemporaryError
    return error_class(reason, **kwargs)
