"""Plain-dict views of sent and stored messages for the control channel, pure.

Owns: what the control channel reports about a message the simulator sent
(decoded number, text, encoding, message reference, concatenation, status
report request, validity, the raw PDU, when it was taken and answered, through
which session) and
about a message in storage (index, status, kind, PDU and its decoding).
Everything is JSON-serialisable.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, Optional

from smss.gsm import pdu as pducodec
from smss.sim.storage import STAT_NAMES, Stored


def _concat(concat: Optional[pducodec.Concat]) -> Optional[Dict[str, int]]:
    if concat is None:
        return None
    return {
        "reference": concat.reference,
        "total": concat.total,
        "sequence": concat.sequence,
        "ref_bits": concat.ref_bits,
    }


def _iso(ts: datetime) -> str:
    return ts.isoformat()


def sent_record(pdu_hex: str, *, mr: int, mode: str, command: str, session: str, seq: int,
                at: float) -> Dict[str, Any]:
    submit = pducodec.decode_pdu(pdu_hex)
    if not isinstance(submit, pducodec.Submit):
        raise pducodec.PduError("not an SMS-SUBMIT")
    return {
        "seq": seq,
        "number": submit.number,
        "text": submit.text,
        "encoding": submit.encoding,
        "reference": mr,  # what +CMGS: answered
        "pdu_reference": submit.reference,  # TP-MR inside the PDU as received
        "concat": _concat(submit.concat),
        "status_report": submit.status_report,
        "validity_minutes": submit.validity_minutes,
        "smsc": submit.smsc,
        "pdu": pdu_hex,
        "mode": mode,  # "pdu" or "text"
        "command": command,  # "CMGS" or "CMSS"
        "session": session,
        "timestamp": at,  # when the modem took the message (the body arrived)
        "time": _iso(datetime.fromtimestamp(at, timezone.utc)),
        "answered": None,  # when it answered +CMGS/+CMSS (after the network's delay)
    }


def decoded(pdu_hex: str) -> Dict[str, Any]:
    """The decoding of a stored PDU, or {"error": ...} when it does not decode."""
    try:
        msg = pducodec.decode_pdu(pdu_hex)
    except pducodec.PduError as exc:
        return {"error": str(exc)}
    if isinstance(msg, pducodec.Deliver):
        return {
            "type": "deliver", "sender": msg.sender, "sender_type": msg.sender_type,
            "text": msg.text, "encoding": msg.encoding, "timestamp": _iso(msg.timestamp),
            "concat": _concat(msg.concat), "smsc": msg.smsc, "dcs": msg.dcs,
        }
    if isinstance(msg, pducodec.StatusReport):
        return {
            "type": "status_report", "reference": msg.reference, "recipient": msg.recipient,
            "status": msg.status, "submitted": _iso(msg.submitted),
            "discharged": _iso(msg.discharged), "smsc": msg.smsc,
        }
    return {
        "type": "submit", "number": msg.number, "text": msg.text, "encoding": msg.encoding,
        "reference": msg.reference, "concat": _concat(msg.concat), "smsc": msg.smsc,
    }


def stored_record(entry: Stored) -> Dict[str, Any]:
    return {
        "index": entry.index,
        "stat": entry.stat,
        "stat_name": STAT_NAMES[entry.stat],
        "kind": entry.kind,
        "pdu": entry.pdu,
        "decoded": decoded(entry.pdu),
    }
