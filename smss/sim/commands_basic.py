"""General AT commands of the simulated modem: V.250 basics, identification, SIM
PIN, network registration, signal, character set and USSD.

Each handler is ``handler(session, command)`` and returns the information text
items (a ``str`` line, or a ``tuple`` of lines that belong together) or raises
``AtError``.  ``HANDLERS`` maps command names (as ``atparse`` spells them) to
handlers.
"""

from __future__ import annotations

import re
from typing import Callable, Dict

from smss.gsm import alphabet
from smss.sim import charset
from smss.sim.atparse import EXEC, READ, SET, TEST, Command
from smss.sim.cmdutil import arg, args, integer, numeric_setting, registry
from smss.sim.results import cme, plain
from smss.sim.settings import CHARSETS, AtSettings
from smss.sim.simcard import BLOCKED, READY, SIM_PIN, SIM_PUK

HANDLERS: Dict[str, Callable] = {}


handles = registry(HANDLERS)


def _flag(command: Command, high: int = 1) -> int:
    if command.kind == EXEC:
        return 0
    if command.kind != SET:
        raise plain()
    return integer(command.args, 0, high)


@handles("")
def at(session, command):
    return []


@handles("E")
def echo(session, command):
    session.modem.settings.echo = bool(_flag(command))
    return []


@handles("V")
def verbose(session, command):
    session.modem.settings.verbose = bool(_flag(command))
    return []


@handles("Q")
def quiet(session, command):
    session.modem.settings.quiet = bool(_flag(command))
    return []


@handles("Z", "&F")
def reset(session, command):
    modem = session.modem
    mems = modem.settings.mems
    modem.settings = AtSettings.defaults(modem.config)
    modem.settings.mems = mems  # the message memories survive a reset, as on most modems
    return []


@handles("&W", "&C", "&D", "&K", "&S", "X", "L", "M")
def accepted(session, command):
    return []


@handles("I")
def identify(session, command):
    config = session.modem.config
    n = 0 if command.kind == EXEC else integer(command.args, 0, 9)
    if n == 0:
        return [(config.manufacturer, config.model, "Revision: " + config.revision)]
    if n == 3:
        return [config.model]
    raise plain()


def _sreg(session, command):
    number = int(command.name[1:])
    regs = session.modem.settings.sregs
    defaults = {3: 13, 4: 10, 5: 8, 7: 60}
    if command.kind == READ:
        return [f"{regs.get(number, defaults.get(number, 0)):03d}"]
    if command.kind == SET:
        regs[number] = integer(command.args or "0", 0, 255)
        return []
    if command.kind == TEST:
        return [f"S{number}: (0-255)"]
    return []


for _n in range(0, 100):
    HANDLERS[f"S{_n}"] = _sreg


def _identity(attribute: str, needs_sim: bool = False) -> Callable:
    def handler(session, command):
        if command.kind == TEST:
            return []
        if command.kind != EXEC:
            raise plain()
        if needs_sim:
            session.modem.require_sim(sms=False)
        return [getattr(session.modem.config, attribute)]

    return handler


HANDLERS["+CGMI"] = HANDLERS["+GMI"] = _identity("manufacturer")
HANDLERS["+CGMM"] = HANDLERS["+GMM"] = _identity("model")
HANDLERS["+CGMR"] = HANDLERS["+GMR"] = _identity("revision")
HANDLERS["+CGSN"] = HANDLERS["+GSN"] = _identity("imei")
HANDLERS["+CIMI"] = _identity("imsi", needs_sim=True)


@handles("+CCID")
def ccid(session, command):
    if command.kind == TEST:
        return []
    if session.modem.sim.state == BLOCKED:
        raise cme(13)
    return ["+CCID: " + session.modem.config.iccid]


@handles("+CNUM")
def cnum(session, command):
    if command.kind == TEST:
        return []
    modem = session.modem
    modem.require_sim(sms=False)
    number = modem.config.own_number
    return [f'+CNUM: "","{modem.text_for_te(number)}",{145 if number.startswith("+") else 129}']


cmee = handles("+CMEE")(numeric_setting("+CMEE", "cmee", 2))


@handles("+CFUN")
def cfun(session, command):
    if command.kind == READ:
        return ["+CFUN: 1"]
    if command.kind == TEST:
        return ["+CFUN: (0,1,4),(0,1)"]
    if command.kind == SET:
        values = args(command)
        fun = integer(arg(values, 0), 0, 4)
        reset = arg(values, 1)
        if reset is not None and integer(reset, 0, 1) == 1:
            if fun != 1:
                raise cme(50)  # 27.007 8.2: <rst> 1 only with <fun> 1
            modem = session.modem
            modem.schedule(0.0, modem.reboot)  # after the OK, as a real modem answers first
    return []


@handles("+CPIN")
def cpin(session, command):
    modem = session.modem
    sim = modem.sim
    if command.kind == TEST:
        return []
    if command.kind == READ:
        if sim.state == BLOCKED:
            raise cme(13)
        if sim.busy(modem.clock()):
            raise cme(14)
        return ["+CPIN: " + sim.state]
    if command.kind != SET:
        raise plain()
    values = args(command, cme(50))
    code = arg(values, 0)
    if code is None:
        raise cme(50)
    busy = modem.config.sim_busy_seconds
    if sim.state == READY:
        raise cme(3)
    if sim.state == BLOCKED:
        raise cme(13)
    if sim.state == SIM_PIN:
        if not sim.enter_pin(code, modem.clock(), busy):
            raise cme(16)
    elif sim.state == SIM_PUK:
        new_pin = arg(values, 1)
        if new_pin is None:
            raise cme(12)
        if not sim.enter_puk(code, new_pin, modem.clock(), busy):
            raise cme(16)
    modem.pin_accepted()
    return []


def creg_urc(modem) -> str:
    stat = modem.registration()
    if modem.settings.creg == 2 and stat in (1, 5):
        return f'+CREG: {stat},"{modem.config.lac}","{modem.config.cell_id}"'
    return f"+CREG: {stat}"


@handles("+CREG")
def creg(session, command):
    modem = session.modem
    if command.kind == TEST:
        return ["+CREG: (0-2)"]
    if command.kind == READ:
        n = modem.settings.creg
        stat = modem.registration()
        if n == 2 and stat in (1, 5):
            return [f'+CREG: {n},{stat},"{modem.config.lac}","{modem.config.cell_id}"']
        return [f"+CREG: {n},{stat}"]
    modem.settings.creg = 0 if command.kind == EXEC else integer(command.args, 0, 2)
    return []


@handles("+COPS")
def cops(session, command):
    modem = session.modem
    config = modem.config
    if command.kind == TEST:
        return [f'+COPS: (2,"{config.operator}","{config.operator[:8]}","{config.operator_numeric}"'
                ",0),,(0-4),(0-2)"]
    if command.kind == READ:
        if not modem.registered():
            return ["+COPS: 0"]
        fmt = modem.settings.cops_format
        name = config.operator_numeric if fmt == 2 else (
            config.operator[:8] if fmt == 1 else config.operator)
        return [f'+COPS: 0,{fmt},"{name}",0']
    if command.kind == SET:
        values = args(command)
        mode = integer(arg(values, 0), 0, 4)
        if arg(values, 1) is not None:
            fmt = integer(arg(values, 1), 0, 2)
            if mode == 3 or mode in (0, 1, 4):
                modem.settings.cops_format = fmt
    return []


@handles("+CSQ")
def csq(session, command):
    if command.kind == TEST:
        return ["+CSQ: (0-31,99),(0-7,99)"]
    if command.kind != EXEC:
        raise plain()
    modem = session.modem
    if not modem.registered():
        return ["+CSQ: 99,99"]
    return [f"+CSQ: {modem.config.rssi},99"]


@handles("+CSCS")
def cscs(session, command):
    settings = session.modem.settings
    if command.kind == READ:
        return [f'+CSCS: "{settings.cscs}"']
    if command.kind == TEST:
        return ["+CSCS: (" + ",".join(f'"{c}"' for c in CHARSETS) + ")"]
    if command.kind != SET:
        raise plain()
    values = args(command)
    name = (arg(values, 0) or "").upper()
    if name not in CHARSETS:
        raise cme(4)
    settings.cscs = name
    return []


# -- USSD
_USSD_CODE = re.compile(r"^[*#0-9]+$")


def _ussd_request(text: str, dcs: int, cscs: str) -> str:
    """The USSD string: in the TE character set (27.007), or as packed GSM-7 hex the
    way Huawei-style modems take it."""
    if _USSD_CODE.match(text):
        return text
    if cscs == "UCS2":
        try:
            decoded = charset.decode(text.encode("latin-1"), "UCS2")
        except charset.CharsetError:
            decoded = ""
        if _USSD_CODE.match(decoded):
            return decoded
    if dcs == 15 and re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", text):
        raw = bytes.fromhex(text)
        count = len(raw) * 8 // 7
        try:
            decoded = alphabet.from_septets(alphabet.unpack_septets(raw, count)).rstrip("\r@")
        except ValueError:
            return text
        if _USSD_CODE.match(decoded):
            return decoded
    return text


def ussd_encode(text: str, encoding: str, cscs: str) -> tuple:
    """(string, dcs) of a +CUSD answer."""
    if encoding == "text":
        return charset.encode(text, cscs), 15
    if encoding == "gsm7" and alphabet.is_gsm7(text):
        septets = alphabet.to_septets(text)
        if len(septets) % 8 == 7:
            septets.append(0x0D)  # 23.038 6.1.2.3.1: CR instead of 7 spare zero bits
        return alphabet.pack_septets(septets).hex().upper(), 15
    return text.encode("utf-16-be").hex().upper(), 72


@handles("+CUSD")
def cusd(session, command):
    modem = session.modem
    settings = modem.settings
    if command.kind == TEST:
        return ["+CUSD: (0-2)"]
    if command.kind == READ:
        return [f"+CUSD: {settings.cusd}"]
    if command.kind == EXEC:
        settings.cusd = 0
        return []
    values = args(command)
    n = integer(arg(values, 0), 0, 2, default=0)
    if n == 2:
        return []
    settings.cusd = n
    request = arg(values, 1)
    if request is None:
        return []
    modem.require_sim(sms=False)
    if not modem.registered():
        raise cme(30)
    dcs = integer(arg(values, 2), 0, 255, default=15)
    code = _ussd_request(request, dcs, settings.cscs)
    answer = modem.config.ussd_responses.get(code, modem.config.ussd_unknown)

    def respond() -> None:
        if session.closed or modem.settings.cusd != 1:
            return
        if not answer:
            session.push_unsolicited(["+CUSD: 4"])
            return
        text, answer_dcs = ussd_encode(answer, modem.config.ussd_encoding, modem.settings.cscs)
        session.push_unsolicited([f'+CUSD: 0,"{text}",{answer_dcs}'])

    modem.schedule(modem.config.ussd_delay, respond)
    return []
