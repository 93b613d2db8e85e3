"""``smss check``: every problem of a broken configuration at once, each with its section
and key; the database and each transport reached without sending (the modem simulator,
node-smpp as the SMSC, the GoIP and Yeastar doubles); exit 1 on any problem."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import ExitStack

import pytest
from support_goip import running_goip
from support_sim import running_simulator
from support_smsc import running_smsc
from support_yeastar import running_yeastar

from smss.config import check_file, parse_text


def smss(*args, env=None):
    return subprocess.run([sys.executable, "-m", "smss.cli", *args], capture_output=True,
                          text=True, timeout=120, env=env)


BROKEN = """\
[server]
port = twenty
allow = 10.0.0.0/33
colour = blue

[modem]
baudrate = 0
baudrate = 9600

[dispatcher]
routes = +420 = gsm, +421 = nowhere, junk

[transport:gsm]
type = modem
device = {folder}/ttyUSB9
status_reports = maybe

[transport:gsm2]
type = modem
device = socket://127.0.0.1:9
name = gsm

[transport:fax]
type = fax

[transport:gw]
type = goip
lines = 1, x

[printer]
paper = A4

[database]
url = postgres://db/smss
"""


def test_a_broken_configuration_is_reported_whole(tmp_path):
    path = tmp_path / "smss.conf"
    path.write_text(BROKEN.format(folder=tmp_path))
    done = smss("check", "-c", str(path))
    where = str(path)
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        f"problem  {where}: [modem] baudrate: set twice (lines 7 and 8)",
        f"problem  {where}: [server] unknown key 'colour'",
        f"problem  {where}: unknown section [printer]",
        f"problem  {where}: [server] port: expected a whole number, got 'twenty'",
        f"problem  {where}: [server] allow: '10.0.0.0/33' does not appear to be an IPv4 or "
        "IPv6 network",
        f"problem  {where}: [transport:gsm] status_reports: expected yes or no, got 'maybe'",
        f"problem  {where}: [transport:fax] type must be one of goip, modem, smpp, yeastar, "
        "not 'fax'",
        f"problem  {where}: [dispatcher] routes: 'junk' is not PREFIX = TRANSPORT",
        f"problem  {where}: [dispatcher] routes: +421 goes to 'nowhere', which is no "
        "[transport:NAME] section",
        f"problem  {where}: [transport:gsm] device: {tmp_path}/ttyUSB9 does not exist",
        f"problem  {where}: no GoIP configured: set [transport:gw] url",
        "problem  database: [database] url: postgres://db/smss: unknown database URL (use "
        "sqlite:///PATH or mysql://…)",
        "problem  transport gsm2 (gsm): cannot open socket://127.0.0.1:9: Could not open port "
        "socket://127.0.0.1:9: [Errno 111] Connection refused",
        "13 problems",
    ]


def test_duplicates_among_transports(tmp_path):
    path = tmp_path / "smss.conf"
    path.write_text(f"[database]\nurl = sqlite://{tmp_path}/smss.db\n"
                    f"[transport:a]\ntype = modem\ndevice = socket://127.0.0.1:9\n"
                    f"[transport:b]\ntype = modem\ndevice = socket://127.0.0.1:9\nname = a\n")
    lines = smss("check", "-c", str(path)).stdout.splitlines()
    assert f"problem  {path}: [transport:b] name: 'a' is also the name of [transport:a]" in lines
    assert (f"problem  {path}: [transport:b] device: socket://127.0.0.1:9 is also the device "
            "of [transport:a]") in lines


def test_collecting_keeps_the_first_problem_message_of_a_plain_load(tmp_path):
    """smss run still stops at the first problem, with the same words check prints."""
    problems = []
    parse_text(BROKEN.format(folder=tmp_path), "x.conf", problems)
    with pytest.raises(Exception) as caught:
        parse_text("[server]\nport = twenty\ncolour = blue\n", "x.conf")
    assert str(caught.value) == "x.conf: [server] unknown key 'colour'"
    assert "x.conf: [server] unknown key 'colour'" in problems


def test_a_missing_file(tmp_path):
    config, problems = check_file(str(tmp_path / "nothing.conf"))
    assert problems == [f"{tmp_path}/nothing.conf: no such file"]
    done = smss("check", "-c", str(tmp_path / "nothing.conf"))
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == f"problem  {tmp_path}/nothing.conf: no such file"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A working site: a modem, an SMSC, a GoIP and a Yeastar (AMI and WebCGI alone)."""
    folder = tmp_path_factory.mktemp("site")
    with ExitStack() as stack:
        sim = stack.enter_context(running_simulator(pty=False))
        smsc = stack.enter_context(running_smsc())
        goip = stack.enter_context(running_goip(lines=4))
        tg = stack.enter_context(running_yeastar(ports=4))
        path = folder / "smss.conf"
        path.write_text(
            f"[database]\nurl = sqlite://{folder}/smss.db\n"
            f"[dispatcher]\nlockfile = {folder}/lock\nstate_dir = {folder}\n"
            f"[transport:gsm]\ntype = modem\ndevice = {sim.url}\ncommand_timeout = 3\n"
            f"[transport:link]\ntype = smpp\nhost = 127.0.0.1\nport = {smsc.port}\n"
            f"system_id = smss\npassword = secret\nspool = {folder}/link-inbox\n"
            f"[transport:goip1]\ntype = goip\nurl = {goip.url}\nlines = 2\n"
            f"[transport:tg]\ntype = yeastar\nurl = {tg.url}\nami = {tg.ami_address}\n"
            f"account = apiuser\npassword = s3cret\nports = 3\nspool = {folder}/tg-inbox\n"
            f"[transport:tg-web]\ntype = yeastar\nurl = {tg.url}\naccount = apiuser\n"
            f"password = s3cret\n", encoding="utf-8")
        yield path, sim, smsc, goip, tg


def test_a_working_site_passes_and_nothing_is_sent(site):
    path, sim, smsc, goip, tg = site
    smsc.clear()
    subprocess.run([sys.executable, "-m", "smss.cli", "-c", str(path), "migrate"], check=True,
                   capture_output=True, timeout=60)
    done = smss("-c", str(path), "check")
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines[0] == f"ok       configuration {path}"
    assert lines[1].startswith(f"ok       database sqlite://{path.parent}/smss.db: schema "
                               "version ")
    assert lines[2] == ("ok       transport gsm: ModemSim, READY, home, T-Mobile CZ, -73 dBm "
                        "(CSQ 20, bit errors unknown)")
    assert lines[3] == "ok       transport link: nodesmsc"
    assert lines[4].startswith("ok       transport goip1: 127.0.0.1:")
    assert lines[5].startswith(f"ok       transport tg: 127.0.0.1:{tg.ami_address.split(':')[1]},"
                               " Asterisk Call Manager/1.1, Power on, Provisioned, Up, Active")
    assert lines[6].startswith("ok       transport tg-web: the web server at 127.0.0.1:")
    assert lines[7:] == ["no problems"]
    assert sim.control.sent() == []
    assert [e["system_id"] for e in smsc.events("bind")] == ["smss"]
    assert [e["command"] for e in smsc.events("bind")] == ["bind_transmitter"]
    assert smsc.events("submit_sm") == [] and len(smsc.events("unbind")) == 1
    assert goip.accepted == [] and tg.sent == [] and tg.ussd == []
    assert not os.path.exists(path.parent / "link-inbox")  # no inbox opened, nothing taken
    assert not os.path.exists(path.parent / "tg-inbox")


@pytest.mark.parametrize("change, expected", [
    ({"link": "password = wrong"}, "problem  transport link: "),
    ({"goip1": "lines = 2, 7"}, "problem  transport goip1: the GoIP has no line 7 "
     "(its lines: 1, 2, 3, 4)"),
    ({"tg": "ports = 3, 9"}, "problem  transport tg: the TG has no GSM port 9 (span 10)"),
    ({"tg": "password = wrong"}, "problem  transport tg: tg: AMI login as 'apiuser' refused"),
])
def test_each_transport_problem(site, tmp_path, change, expected):
    path, sim, smsc, goip, tg = site
    text = path.read_text()
    for name, line in change.items():
        key = line.split(" = ")[0]
        section = text.split(f"[transport:{name}]\n", 1)[1].split("[", 1)[0]
        kept = "".join(f"{row}\n" for row in section.splitlines() if not row.startswith(key))
        text = text.replace(section, kept + line + "\n")
    changed = tmp_path / "smss.conf"
    changed.write_text(text)
    done = smss("-c", str(changed), "check")
    assert done.returncode == 1
    assert any(line.startswith(expected.format(smsc=smsc.port))
               for line in done.stdout.splitlines()), done.stdout
    assert done.stdout.splitlines()[-1] == "1 problem"


def test_a_yeastar_port_without_a_sim(tmp_path):
    with running_yeastar(ports=2, span_status={
            2: "Power on, Provisioned, Undetected SIM Card, Active,Standard"}) as tg:
        path = tmp_path / "smss.conf"
        path.write_text(f"[database]\nurl = sqlite://{tmp_path}/smss.db\n"
                        f"[dispatcher]\ntransport = yeastar\n"
                        f"[yeastar]\nami = {tg.ami_address}\naccount = apiuser\n"
                        f"password = s3cret\nports = 1, 2\nspool = {tg.url and tmp_path}/in\n")
        done = smss("-c", str(path), "check")
    assert done.returncode == 1
    assert ("problem  transport yeastar (yeastar:127.0.0.1/GSM1+GSM2): GSM port 2 is not up: "
            "Power on, Provisioned, Undetected SIM Card, Active,Standard; GSM port 2: "
            "Unregistered") in done.stdout.splitlines()


def test_a_sim_waiting_for_its_pin(tmp_path):
    with running_simulator(pin="1234", pty=False) as sim:
        path = tmp_path / "smss.conf"
        base = (f"[database]\nurl = sqlite://{tmp_path}/smss.db\n"
                f"[modem]\ndevice = {sim.url}\ncommand_timeout = 3\n"
                f"pin_guard_file = {tmp_path}/pins\n")
        path.write_text(base)
        without = smss("-c", str(path), "check")
        path.write_text(base + "pin = 1234\n")
        with_pin = smss("-c", str(path), "check")
        state = sim.control.status()["sim"]["state"]
    assert without.returncode == 1
    assert (f"problem  transport modem (modem:{sim.url}): the SIM asks for its PIN and "
            "[modem] pin is empty") in without.stdout.splitlines()
    assert with_pin.returncode == 0, with_pin.stdout  # the dispatcher will enter it
    assert state == "SIM PIN"  # check entered no PIN
