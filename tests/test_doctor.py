"""``smss doctor [--via NAME]``: what a device says about itself (the modem simulator, with
Debian's gammu as the oracle for the same fields; the Yeastar double; node-smpp), and a
modem that ``check_and_send --loop`` holds is left alone."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from support_sim import running_simulator
from support_smsc import running_smsc
from support_tools import program
from support_yeastar import running_yeastar


def smss(*args):
    return subprocess.run([sys.executable, "-m", "smss.cli", *args], capture_output=True,
                          text=True, timeout=120)


def facts(output: str) -> dict:
    return dict(re.findall(r"^  ([^:]+):\s+(.*)$", output, re.M))


def test_a_modem(tmp_path):
    with running_simulator(pty=False) as sim:
        path = tmp_path / "smss.conf"
        path.write_text(f"[modem]\ndevice = {sim.url}\ncommand_timeout = 3\n")
        done = smss("-c", str(path), "doctor")
        counts = sim.control.counts()
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == f"transport modem:{sim.url} (modem)"
    assert facts(done.stdout) == {
        "device": sim.url, "manufacturer": "SMSS", "model": "ModemSim",
        "revision": "smss-modem-sim 1.0", "IMEI": "356938035643809", "SIM": "READY",
        "IMSI": "230011234567890", "registration": "home", "operator": "T-Mobile CZ",
        "signal": "-73 dBm (CSQ 20, bit errors unknown)", "SMSC": "+420603052000",
        "storage SM": "0 of 30 used"}
    assert "AT+CMGS" not in counts and "AT+CPIN" in counts and "ATZ" not in counts


def test_the_same_modem_as_gammu_sees_it(tmp_path):
    """gammu identify on the same simulated modem names the same manufacturer, IMEI and
    IMSI (the oracle of tests/test_sim_gammu.py)."""
    program("gammu", "gammu")
    with running_simulator() as sim:
        rc = tmp_path / "gammurc"
        rc.write_text(f"[gammu]\ndevice = {sim.pty_path}\nconnection = at\n")
        gammu = subprocess.run(["gammu", "-c", str(rc), "identify"], capture_output=True,
                               text=True, timeout=180)
        path = tmp_path / "smss.conf"
        path.write_text(f"[modem]\ndevice = {sim.pty_path}\ncommand_timeout = 3\n")
        done = smss("-c", str(path), "doctor", "--via", "modem")
    assert gammu.returncode == 0, gammu.stdout + gammu.stderr
    ours = facts(done.stdout)
    theirs = dict(re.findall(r"^(\w[\w ]*?)\s+: (.*)$", gammu.stdout, re.M))
    assert theirs["Manufacturer"] == ours["manufacturer"]
    assert theirs["IMEI"] == ours["IMEI"]
    assert theirs["SIM IMSI"] == ours["IMSI"]
    assert ours["model"] in theirs["Model"]


def test_a_sim_that_wants_its_pin(tmp_path):
    with running_simulator(pin="1234", pty=False) as sim:
        path = tmp_path / "smss.conf"
        path.write_text(f"[modem]\ndevice = {sim.url}\ncommand_timeout = 3\n")
        done = smss("-c", str(path), "doctor")
        state = sim.control.status()["sim"]["state"]
    assert done.returncode == 0  # the modem answered: what it said is the finding
    assert facts(done.stdout)["SIM"] == "SIM PIN"
    assert "  problem: the SIM asks for its PIN and [modem] pin is empty" in done.stdout
    assert state == "SIM PIN"


def test_a_yeastar_and_an_smsc(tmp_path):
    with running_yeastar(ports=2, show_forms=("span",)) as tg, running_smsc() as smsc:
        path = tmp_path / "smss.conf"
        path.write_text(f"[transport:tg]\ntype = yeastar\nami = {tg.ami_address}\n"
                        f"account = apiuser\npassword = s3cret\nports = 2\n"
                        f"[transport:link]\ntype = smpp\nhost = 127.0.0.1\nport = {smsc.port}\n"
                        f"system_id = smss\npassword = secret\n")
        tg_done = smss("-c", str(path), "doctor", "--via", "tg")
        smpp_done = smss("-c", str(path), "doctor", "--via", "link")
    assert tg_done.returncode == 0, tg_done.stdout
    found = facts(tg_done.stdout)
    assert found["port 2"] == "Power on, Provisioned, Up, Active,Standard"
    assert found["  Model IMEI"] == "013227009596132"
    assert found["  Network Status"] == "Registered (Home network)"
    assert found["  Signal Quality (0,31)"] == "20"
    assert smpp_done.returncode == 0, smpp_done.stdout
    assert facts(smpp_done.stdout)["SMSC system_id"] == "nodesmsc"


def test_an_unknown_transport(tmp_path):
    path = tmp_path / "smss.conf"
    path.write_text("[modem]\ndevice = socket://127.0.0.1:9\n")
    done = smss("-c", str(path), "doctor", "--via", "nowhere")
    assert done.returncode == 1
    assert done.stdout == "transport nowhere: no transport 'nowhere': configured are modem\n"
    done = smss("-c", str(path), "doctor")
    assert done.returncode == 1
    assert "  cannot ask it: cannot open socket://127.0.0.1:9" in done.stdout


@pytest.mark.slow
def test_a_running_dispatcher_is_not_disturbed(tmp_path):
    with running_simulator(tcp=False) as sim:
        path = tmp_path / "smss.conf"
        path.write_text(f"[database]\nurl = sqlite://{tmp_path}/smss.db\n"
                        f"[dispatcher]\nlockfile = {tmp_path}/lock\nstate_dir = {tmp_path}\n"
                        "poll_interval = 0.5\n"
                        f"[modem]\ndevice = {sim.pty_path}\ncommand_timeout = 3\n"
                        f"register_timeout = 5\npin_guard_file = {tmp_path}/pins\n")
        subprocess.run([sys.executable, "-m", "smss.cli", "-c", str(path), "migrate"],
                       check=True, capture_output=True, timeout=60)
        loop = subprocess.Popen([sys.executable, "-m", "check_and_send.cli", "-c", str(path),
                                 "--loop"], stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while "AT+CNMI" not in sim.control.counts():  # the loop has the modem up
                assert loop.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
            before = sim.control.counts()
            done = smss("-c", str(path), "doctor")
            check = smss("-c", str(path), "check")
            after = sim.control.counts()
            sim.control.inject("+420777123456", "still here")
            while not os.path.exists(tmp_path / "smss.db") or not _received(tmp_path):
                assert loop.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        finally:
            loop.send_signal(signal.SIGTERM)
            loop.wait(30)
    assert done.returncode == 1
    assert (f"  check_and_send (pid {loop.pid}) has the modem open and is not disturbed; its "
            "last pass recorded:") in done.stdout
    assert (f"skipped  transport modem (modem:{sim.pty_path}): check_and_send (pid {loop.pid}) "
            "has it open; `smss status` shows what its last pass saw") in check.stdout
    assert check.returncode == 0, check.stdout
    assert after.get("AT+CGSN", 0) == before.get("AT+CGSN", 0)  # doctor asked nothing


def _received(folder) -> bool:
    import sqlite3

    with sqlite3.connect(folder / "smss.db") as conn:
        return conn.execute("SELECT COUNT(*) FROM rcv WHERE text = 'still here'").fetchone()[0]
