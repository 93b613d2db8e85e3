"""Debian's gammu as an independent oracle for the SMS PDU codec.

python3-gammu lives in the Debian system Python (/usr/bin/python3), not in the Python that
runs the tests, so the oracle runs there in one subprocess per batch: JSON requests on
stdin, JSON answers on stdout. ``gammu_missing()`` gives the reason to skip, or None.
"""

from __future__ import annotations

import json
import os
import subprocess

SYSTEM_PYTHON = "/usr/bin/python3"

# Runs under /usr/bin/python3 with python3-gammu. Each request is a dict with "op":
#   decode        {"hex"}                      -> fields of gammu.DecodePDU(SMSC=True)
#   decode_multi  {"hex": [..]}                -> texts of gammu.LinkSMS + DecodeSMS
#   encode        {"text", "number", "unicode", "layout", "datetime", "smsc"}
#                                              -> hex PDUs from gammu.EncodeSMS + EncodePDU
_ORACLE = r'''
import datetime, json, sys
import gammu

UDH_NONE = {"Type": "NoUDH", "Text": b"", "ID8bit": 0, "ID16bit": 0, "PartNumber": -1,
            "AllParts": 0}

def iso(value):
    return value.isoformat() if isinstance(value, datetime.datetime) else None

def text_of(sms):
    text = sms["Text"]
    # python-gammu copies Length characters out of a NUL-terminated buffer; for GSM-7 text
    # Length counts septets, so escape pairs leave garbage after the NUL: cut it off.
    if sms["Coding"].startswith("Default") and "\x00" in text:
        text = text[:text.index("\x00")]
    return text

def decode(req):
    sms = gammu.DecodePDU(bytes.fromhex(req["hex"]), SMSC=True)
    udh = sms["UDH"]
    return {
        "type": sms["Type"], "number": sms["Number"], "text": text_of(sms),
        "coding": sms["Coding"], "smsc": sms["SMSC"]["Number"],
        "datetime": iso(sms["DateTime"]), "smsc_datetime": iso(sms["SMSCDateTime"]),
        "status": sms["DeliveryStatus"], "reference": sms["MessageReference"],
        "class": sms["Class"], "validity": sms["SMSC"].get("Validity"),
        "udh_type": udh["Type"], "id8": udh["ID8bit"], "id16": udh["ID16bit"],
        "part": udh["PartNumber"], "parts": udh["AllParts"],
    }

def decode_multi(req):
    msgs = [[gammu.DecodePDU(bytes.fromhex(h), SMSC=True)] for h in req["hex"]]
    out = []
    for linked in gammu.LinkSMS(msgs):
        info = gammu.DecodeSMS(linked)
        if info is None:
            out.append("".join(text_of(m) for m in linked))
        else:
            out.append("".join(e["Buffer"] or "" for e in info["Entries"]))
    return out

def encode(req):
    info = {"Class": -1, "Unicode": req["unicode"],
            "Entries": [{"ID": "ConcatenatedTextLong", "Buffer": req["text"]}]}
    out = []
    for sms in gammu.EncodeSMS(info):
        sms["SMSC"] = {"Location": 0, "Number": req.get("smsc", ""), "Validity": "NA"}
        sms["Number"] = req["number"]
        sms["Folder"] = 0
        sms["InboxFolder"] = 0
        if req["layout"] == "Deliver":
            sms["Type"] = "Deliver"
            when = datetime.datetime.fromisoformat(req["datetime"])
            sms["DateTime"] = sms["SMSCDateTime"] = when
        out.append(gammu.EncodePDU(sms, Layout=req["layout"]).hex().upper())
    return out

answers = []
for req in json.load(sys.stdin):
    try:
        answers.append({"ok": globals()[req["op"]](req)})
    except Exception as exc:
        answers.append({"error": repr(exc)})
json.dump(answers, sys.stdout)
'''


def gammu_missing() -> str | None:
    """Why the gammu oracle cannot run here, or None when it can."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} is absent (needs Debian packages python3 and python3-gammu)"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gammu"], capture_output=True,
                           text=True, timeout=60)
    if probe.returncode:
        return f"python3-gammu is not installed for {SYSTEM_PYTHON} (apt-get install python3-gammu)"
    return None


def gammu_batch(requests: list[dict]) -> list:
    """Run the requests through gammu; each answer is the result, or raises on its error."""
    proc = subprocess.run([SYSTEM_PYTHON, "-c", _ORACLE], input=json.dumps(requests),
                          capture_output=True, text=True, timeout=120, check=True)
    answers = json.loads(proc.stdout)
    assert len(answers) == len(requests)
    return answers
