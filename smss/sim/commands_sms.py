"""SMS commands of the simulated modem (3GPP TS 27.005): message format, service
centre, memories, indications, sending (AT+CMGS, AT+CMSS, AT+CMMS), writing,
listing, reading and deleting stored messages - in PDU and in text mode.

Same handler convention as ``commands_basic``; AT+CMGS and AT+CMGW return a
``BodyRequest`` so the session shows the ``> `` prompt and hands the body back.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, List

from smss.gsm import alphabet
from smss.gsm import pdu as pducodec
from smss.sim import charset, textmode
from smss.sim.atparse import EXEC, READ, SET, TEST
from smss.sim.cmdutil import arg, args, integer, numeric_setting, registry
from smss.sim.results import cms, plain
from smss.sim.session import BodyRequest
from smss.sim.storage import (
    DELIVER,
    REC_READ,
    REC_UNREAD,
    STAT_NAMES,
    STO_SENT,
    STO_UNSENT,
    SUBMIT,
    StorageFull,
    tpdu_length,
)

HANDLERS: Dict[str, Callable] = {}

_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})+$")
_NUMBER = re.compile(r"^\+?[0-9*#]{1,20}$")


handles = registry(HANDLERS)


def _mode_error(modem):
    return cms(305) if modem.settings.cmgf == 1 else cms(304)


cmgf = handles("+CMGF")(numeric_setting("+CMGF", "cmgf", 1))


@handles("+CSMS")
def csms(session, command):
    if command.kind == READ:
        return ["+CSMS: 0,1,1,1"]
    if command.kind == TEST:
        return ["+CSMS: (0,1)"]
    integer(command.args, 0, 1)
    return ["+CSMS: 1,1,1"]


@handles("+CSCA")
def csca(session, command):
    modem = session.modem
    if command.kind == TEST:
        return []
    modem.require_sim(sms=True)
    if command.kind == READ:
        return [f'+CSCA: "{modem.text_for_te(modem.smsc)}",{modem.smsc_type}']
    if command.kind != SET:
        raise plain()
    values = args(command)
    number = arg(values, 0)
    if number is not None and modem.settings.cscs == "UCS2" and _HEX.match(number):
        number = charset.decode(number.encode("ascii"), "UCS2")
    if number is None or not (number == "" or _NUMBER.match(number)):
        raise _mode_error(modem)
    modem.smsc = number
    default_type = 145 if number.startswith("+") else 129
    modem.smsc_type = integer(arg(values, 1), 0, 255, default=default_type)
    return []


@handles("+CPMS")
def cpms(session, command):
    modem = session.modem
    names = tuple(modem.storages)
    if command.kind == TEST:
        mems = "(" + ",".join(f'"{n}"' for n in names) + ")"
        return [f"+CPMS: {mems},{mems},{mems}"]
    modem.require_sim(sms=True)
    if command.kind == READ:
        parts = []
        for name in modem.settings.mems:
            storage = modem.storages[name]
            parts.append(f'"{name}",{storage.used},{storage.capacity}')
        return ["+CPMS: " + ",".join(parts)]
    if command.kind != SET:
        raise plain()
    values = args(command)
    requested = [v.upper() if v else None for v in values[:3]]
    if not requested or requested[0] is None:
        raise cms(302)
    mems = list(modem.settings.mems)
    for position, name in enumerate(requested):
        if name is None:
            continue
        if name not in modem.storages:
            raise cms(302)
        mems[position] = name
    modem.settings.mems = tuple(mems)
    modem.release_waiting()
    out = []
    for name in mems:
        storage = modem.storages[name]
        out.append(f"{storage.used},{storage.capacity}")
    return ["+CPMS: " + ",".join(out)]


@handles("+CNMI")
def cnmi(session, command):
    settings = session.modem.settings
    if command.kind == READ:
        return ["+CNMI: " + ",".join(str(v) for v in settings.cnmi)]
    if command.kind == TEST:
        return ["+CNMI: (0-3),(0-3),(0,2),(0-2),(0,1)"]
    if command.kind != SET:
        raise plain()
    values = args(command, cms(303))
    highs = (3, 3, 3, 2, 1)
    current = list(settings.cnmi)
    for position, value in enumerate(values[:5]):
        if value is not None:
            current[position] = integer(value, 0, highs[position], cms(303))
    settings.cnmi = tuple(current)
    return []


csdh = handles("+CSDH")(numeric_setting("+CSDH", "csdh", 1, "(0,1)"))


@handles("+CSMP")
def csmp(session, command):
    settings = session.modem.settings
    if command.kind == READ:
        return ["+CSMP: " + ",".join(str(v) for v in settings.csmp)]
    if command.kind == TEST:
        return []
    values = args(command, cms(305))
    current = list(settings.csmp)
    for position, value in enumerate(values[:4]):
        if value is not None:
            current[position] = integer(value, 0, 255, cms(305))
    settings.csmp = tuple(current)
    return []


@handles("+CMMS")
def cmms(session, command):
    modem = session.modem
    if command.kind == READ:
        return [f"+CMMS: {modem.cmms()}"]
    if command.kind == TEST:
        return ["+CMMS: (0-2)"]
    modem.set_cmms(0 if command.kind == EXEC else integer(command.args, 0, 2))
    return []


@handles("+CNMA")
def cnma(session, command):
    return []


# -- sending and writing
def _pdu_body(data: bytes, length: int) -> str:
    """The hex PDU typed after the prompt, checked against AT+CMGS=<length>."""
    text = re.sub(rb"\s+", b"", data).decode("latin-1")
    if not _HEX.match(text):
        raise cms(304)
    if tpdu_length(text) != length:
        raise cms(304)
    return text.upper()


def _text_message(modem, data: bytes) -> tuple:
    """(text, encoding) of a text-mode body under AT+CSCS and AT+CSMP's <dcs>."""
    try:
        text = charset.decode(data, modem.settings.cscs)
    except charset.CharsetError:
        raise cms(305) from None
    dcs = modem.settings.csmp[3]
    alpha = (dcs >> 2) & 0x03 if dcs < 0x40 else 0
    if alpha == 2:
        if len(text.encode("utf-16-be")) > 140:
            raise cms(305)
        return text, "ucs2"
    if alpha == 1:
        return text.encode("latin-1", errors="replace").decode("latin-1")[:140], "8bit"
    text = charset.to_gsm7(text)
    if alphabet.septet_length(text) > 160:
        raise cms(305)
    return text, "gsm7"


def _validity(modem):
    fo, vp = modem.settings.csmp[0], modem.settings.csmp[1]
    if fo & 0x18 == 0x10:
        return pducodec.validity_to_minutes(vp)
    return None


def _text_submit(modem, number: str, data: bytes, reference: int) -> str:
    text, encoding = _text_message(modem, data)
    fo = modem.settings.csmp[0]
    try:
        built = pducodec.encode_submit(
            number, text, encoding=encoding, reference=reference,
            status_report=bool(fo & 0x20), validity_minutes=_validity(modem),
        )
    except ValueError:
        raise cms(305) from None
    return built.hex


def _destination(modem, values) -> str:
    number = arg(values, 0)
    if number is not None and modem.settings.cscs == "UCS2" and _HEX.match(number):
        number = charset.decode(number.encode("ascii"), "UCS2")
    if number is None or not _NUMBER.match(number):
        raise cms(305)
    toda = integer(arg(values, 1), 0, 255, cms(305), default=0)
    if toda == 145 and not number.startswith("+"):
        number = "+" + number
    return number


@handles("+CMGS")
def cmgs(session, command):
    modem = session.modem
    if command.kind == TEST:
        return []
    if command.kind != SET:
        raise _mode_error(modem)
    modem.require_sim(sms=True)
    if modem.settings.cmgf == 0:
        length = integer(command.args, 1, 164, cms(304))

        def on_pdu(data: bytes):
            pdu_hex = _pdu_body(data, length)
            try:
                msg = pducodec.decode_pdu(pdu_hex)
            except pducodec.PduError:
                raise cms(304) from None
            if not isinstance(msg, pducodec.Submit):
                raise cms(304)
            return [f"+CMGS: {modem.submit(session, pdu_hex, 'pdu', 'CMGS')}"]

        return BodyRequest(on_pdu, text_mode=False, error=cms(304))
    number = _destination(modem, args(command, cms(305)))

    def on_text(data: bytes):
        pdu_hex = _text_submit(modem, number, data, modem.next_mr)
        return [f"+CMGS: {modem.submit(session, pdu_hex, 'text', 'CMGS')}"]

    return BodyRequest(on_text, text_mode=True, error=cms(305))


def _store(modem, pdu_hex: str, stat: int, kind: str) -> int:
    memory = modem.settings.mems[1]
    if "sim_full" in modem.faults:
        raise cms(322)
    try:
        return modem.storages[memory].add(pdu_hex, stat, kind)
    except StorageFull:
        raise cms(322) from None


@handles("+CMGW")
def cmgw(session, command):
    modem = session.modem
    if command.kind == TEST:
        return []
    modem.require_sim(sms=True)
    if modem.settings.cmgf == 0:
        if command.kind != SET:
            raise cms(304)
        values = args(command, cms(304))
        length = integer(arg(values, 0), 1, 176, cms(304))
        stat = integer(arg(values, 1), 0, 3, cms(304), default=STO_UNSENT)

        def on_pdu(data: bytes):
            pdu_hex = _pdu_body(data, length)
            try:
                msg = pducodec.decode_pdu(pdu_hex)
            except pducodec.PduError:
                raise cms(304) from None
            kind = SUBMIT if isinstance(msg, pducodec.Submit) else DELIVER
            return [f"+CMGW: {_store(modem, pdu_hex, stat, kind)}"]

        return BodyRequest(on_pdu, text_mode=False, error=cms(304))
    values = args(command, cms(305)) if command.kind == SET else []
    number = _destination(modem, values) if arg(values, 0) is not None else ""
    stat_text = arg(values, 2)
    stat = STO_UNSENT
    if stat_text is not None:
        if stat_text.upper() not in STAT_NAMES:
            raise cms(305)
        stat = STAT_NAMES.index(stat_text.upper())

    def on_text(data: bytes):
        pdu_hex = _text_submit(modem, number or "0", data, 0)
        return [f"+CMGW: {_store(modem, pdu_hex, stat, SUBMIT)}"]

    return BodyRequest(on_text, text_mode=True, error=cms(305))


@handles("+CMSS")
def cmss(session, command):
    modem = session.modem
    if command.kind == TEST:
        return []
    if command.kind != SET:
        raise _mode_error(modem)
    modem.require_sim(sms=True)
    values = args(command, _mode_error(modem))
    storage = modem.storages[modem.settings.mems[1]]
    index = integer(arg(values, 0), -1, 10**6, cms(321))
    entry = storage.get(index)
    if entry is None or entry.kind != SUBMIT:
        raise cms(321)
    pdu_hex = entry.pdu
    if arg(values, 1) is not None:
        number = _destination(modem, values[1:])
        msg = pducodec.decode_pdu(pdu_hex)
        pdu_hex = pducodec.encode_submit(
            number, msg.text, encoding=msg.encoding, reference=msg.reference,
            concat=msg.concat, status_report=msg.status_report,
            validity_minutes=msg.validity_minutes, smsc=msg.smsc or None,
        ).hex
    mode = "text" if modem.settings.cmgf else "pdu"
    mr = modem.submit(session, pdu_hex, mode, "CMSS")
    entry.stat = STO_SENT
    return [f"+CMSS: {mr}"]


# -- reading
_TEXT_STATS = STAT_NAMES + ("ALL",)


def _list_filter(modem, command):
    values = args(command, _mode_error(modem)) if command.kind == SET else []
    value = arg(values, 0)
    if modem.settings.cmgf == 0:
        stat = integer(value, 0, 4, cms(304), default=0)
    else:
        if value is None:
            stat = 0
        elif value.upper() in _TEXT_STATS:
            stat = _TEXT_STATS.index(value.upper())
        else:
            raise cms(305)
    return None if stat == 4 else stat


def _pdu_entry(prefix: str, entry) -> tuple:
    return (f"{prefix},{entry.stat},,{entry.tpdu_length}", entry.pdu)


def _text_entry(render, *arguments):
    try:
        return render(*arguments)
    except pducodec.PduError:
        return None


@handles("+CMGL")
def cmgl(session, command):
    modem = session.modem
    settings = modem.settings
    if command.kind == TEST:
        if settings.cmgf == 0:
            return ["+CMGL: (0-4)"]
        return ["+CMGL: (" + ",".join(f'"{s}"' for s in _TEXT_STATS) + ")"]
    modem.require_sim(sms=True)
    stat = _list_filter(modem, command)
    storage = modem.storages[settings.mems[0]]
    items: List = []
    for entry in storage.entries(stat):
        if settings.cmgf == 0:
            items.append(_pdu_entry(f"+CMGL: {entry.index}", entry))
        else:
            lines = _text_entry(textmode.list_entry, entry.index, entry.stat, entry.pdu,
                                settings.cscs, settings.csdh)
            items.append(lines or (f'+CMGL: {entry.index},"{STAT_NAMES[entry.stat]}"', entry.pdu))
        if entry.stat == REC_UNREAD:
            entry.stat = REC_READ
    return items


def _index(modem, command):
    values = args(command, cms(321))
    storage = modem.storages[modem.settings.mems[0]]
    index = integer(arg(values, 0), -1, 10**6, cms(321))
    if not storage.valid_index(index):
        raise cms(321)
    return storage, index, values


@handles("+CMGR")
def cmgr(session, command):
    modem = session.modem
    settings = modem.settings
    if command.kind == TEST:
        return []
    if command.kind != SET:
        raise _mode_error(modem)
    modem.require_sim(sms=True)
    storage, index, _ = _index(modem, command)
    entry = storage.get(index)
    if entry is None:
        return []
    if settings.cmgf == 0:
        item = (f"+CMGR: {entry.stat},,{entry.tpdu_length}", entry.pdu)
    else:
        item = _text_entry(textmode.read_entry, entry.stat, entry.pdu, settings.cscs,
                           settings.csdh, modem.smsc)
        item = item or (f'+CMGR: "{STAT_NAMES[entry.stat]}"', entry.pdu)
    if entry.stat == REC_UNREAD:
        entry.stat = REC_READ
    return [item]


_DELFLAG = {
    1: (REC_READ,),
    2: (REC_READ, STO_SENT),
    3: (REC_READ, STO_SENT, STO_UNSENT),
    4: (REC_READ, STO_SENT, STO_UNSENT, REC_UNREAD),
}


@handles("+CMGD")
def cmgd(session, command):
    modem = session.modem
    if command.kind == TEST:
        storage = modem.storages[modem.settings.mems[0]]
        used = ",".join(str(e.index) for e in storage)
        return [f"+CMGD: ({used}),(0-4)"]
    if command.kind != SET:
        raise _mode_error(modem)
    modem.require_sim(sms=True)
    values = args(command, cms(321))
    storage = modem.storages[modem.settings.mems[0]]
    delflag = integer(arg(values, 1), 0, 4, cms(321), default=0)
    if delflag == 0:
        storage, index, _ = _index(modem, command)
        storage.delete(index)
    else:
        for entry in storage.entries():
            if entry.stat in _DELFLAG[delflag]:
                storage.delete(entry.index)
    modem.release_waiting()
    return []
