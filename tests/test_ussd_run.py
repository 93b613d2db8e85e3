"""USSD for programs and people: ``smss.ussd.run`` and ``smss ussd [--via NAME] CODE``
through the modem (the modem simulator, AT+CUSD), a GoIP and a Yeastar (their simulators),
with a site configuring all three as [transport:NAME] sections."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import ExitStack

import pytest
from support_goip import running_goip
from support_sim import running_simulator
from support_yeastar import running_yeastar

from smss.config import load, parse_text
from smss.transports import from_config
from smss.transports.base import DOWN, OPERATOR, PERMANENT, SendFailed
from smss.ussd import run

MODEM_ANSWER = "Váš kredit je 123,45 Kč. Platnost do 31.12.2030."
GOIP_ANSWER = "Баланс: 57.2 р."
TG_ANSWER = "Ваш баланс 36.3 р."


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ussd")
    with ExitStack() as stack:
        sim = stack.enter_context(running_simulator(
            pty=False, ussd_encoding="ucs2", ussd_responses={"*100#": MODEM_ANSWER}))
        goip = stack.enter_context(running_goip(ussd_answers={"*100#": GOIP_ANSWER}))
        tg = stack.enter_context(running_yeastar(ussd_answers={"*100#": TG_ANSWER}))
        path = folder / "smss.conf"
        path.write_text(
            f"[dispatcher]\nlockfile = {folder}/lock\n"
            f"[transport:gsm]\ntype = modem\ndevice = {sim.url}\ncommand_timeout = 3\n"
            f"register_timeout = 3\npin_guard_file = {folder}/pins\n"
            f"[transport:goip1]\ntype = goip\nurl = {goip.url}\nlines = 2\npoll_interval = 0.02\n"
            f"[transport:tg]\ntype = yeastar\nurl = {tg.url}\nami = {tg.ami_address}\n"
            f"account = apiuser\npassword = s3cret\nports = 3\nspool = {folder}/tg-inbox\n"
            f"[transport:tg-web]\ntype = yeastar\nurl = {tg.url}\naccount = apiuser\n"
            f"password = s3cret\n"
            f"[transport:link]\ntype = smpp\nhost = 127.0.0.1\nport = 9\n",
            encoding="utf-8")
        yield path, sim, goip, tg


@pytest.mark.parametrize("via, answer", [("gsm", MODEM_ANSWER), ("goip1", GOIP_ANSWER),
                                         ("tg", TG_ANSWER), ("tg-web", TG_ANSWER),
                                         (None, MODEM_ANSWER), ("yeastar", TG_ANSWER),
                                         ("goip", GOIP_ANSWER)])
def test_run_through_each_transport(site, via, answer):
    path, sim, goip, tg = site
    assert run(load(str(path)), "*100#", via=via, timeout=10) == answer


def test_what_the_gateways_were_asked(site):
    path, sim, goip, tg = site
    run(load(str(path)), "*100#", via="goip1", timeout=10)
    run(load(str(path)), "*100#", via="tg", timeout=10)
    assert ("ussd", 2, "*100#") in [(j.kind, j.line, j.text) for j in goip.accepted]
    assert ("ami", 3, "*100#") in tg.ussd
    assert not (path.parent / "tg-inbox").exists()  # a USSD request takes no SMS


@pytest.mark.parametrize("via, code, kind, reason", [
    ("nowhere", "*100#", OPERATOR, "no transport 'nowhere'"),
    ("link", "*100#", PERMANENT, "USSD is not supported"),
    ("gsm", "*100#; AT+CFUN=0", PERMANENT, "not a USSD code"),
])
def test_run_failures(site, via, code, kind, reason):
    path = site[0]
    with pytest.raises(SendFailed) as caught:
        run(load(str(path)), code, via=via, timeout=10)
    assert caught.value.kind == kind and reason in caught.value.reason


def smss(path, *args):
    return subprocess.run([sys.executable, "-m", "smss.cli", "-c", str(path), *args],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONIOENCODING="utf-8"))


def test_the_command(site):
    path = site[0]
    done = smss(path, "ussd", "--via", "tg", "*100#")
    assert (done.returncode, done.stdout, done.stderr) == (0, TG_ANSWER + "\n", "")
    done = smss(path, "ussd", "*100#")
    assert (done.returncode, done.stdout) == (0, MODEM_ANSWER + "\n")


def test_the_command_failing(site):
    path = site[0]
    done = smss(path, "ussd", "--via", "link", "*100#")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == "smss ussd: USSD is not supported by this transport\n"
    done = smss(path, "ussd")
    assert done.returncode == 2 and "ussd takes one CODE" in done.stderr


def test_a_modem_in_use_is_not_disturbed(tmp_path):
    with running_simulator(tcp=False) as sim:
        config = parse_text(f"[modem]\ndevice = {sim.pty_path}\ncommand_timeout = 3\n"
                            f"register_timeout = 3\npin_guard_file = {tmp_path}/pins\n")
        holder = from_config(config)  # as check_and_send --loop holds it
        holder.open()
        try:
            with pytest.raises(SendFailed) as caught:
                run(config, "*100#", timeout=5)
            assert caught.value.kind == DOWN and "exclusively lock" in caught.value.reason
        finally:
            holder.close()
        assert run(config, "*100#", timeout=5).startswith("Vas kredit je 123,45 Kc.")
