"""The units in systemd/ pass `systemd-analyze verify` and keep their promises."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess

from conftest import REPO
from support_tools import program

UNITS = ["smss.service", "check_and_send.service", "check_and_send.timer",
         "check_and_send-loop.service"]
ANALYZE = shutil.which("systemd-analyze")


def installed_copy(tmp_path, name: str, text: str = "") -> str:
    """The unit with ExecStart pointing at the commands installed here."""
    source = text or open(os.path.join(REPO, "systemd", name), encoding="utf-8").read()
    for command in ("smss", "check_and_send"):
        source = source.replace(f"/usr/local/bin/{command} ", f"{shutil.which(command)} ")
    path = tmp_path / name
    path.write_text(source)
    return str(path)


def verify(paths) -> subprocess.CompletedProcess:
    """systemd-analyze verify, with the project's man pages where man looks (it checks
    that each man: page in Documentation= exists)."""
    manpath = os.path.join(os.path.dirname(paths[0]), "man")
    for page in os.listdir(os.path.join(REPO, "man")):
        os.makedirs(os.path.join(manpath, f"man{page[-1]}"), exist_ok=True)
        shutil.copy(os.path.join(REPO, "man", page), os.path.join(manpath, f"man{page[-1]}"))
    return subprocess.run([ANALYZE, "verify", *paths], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, MANPATH=manpath))


def test_units_verify_clean(tmp_path):
    program("systemd-analyze", "systemd")
    result = verify([installed_copy(tmp_path, name) for name in UNITS])
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stderr


def test_verify_catches_a_broken_unit(tmp_path):
    program("systemd-analyze", "systemd")
    text = open(os.path.join(REPO, "systemd", "smss.service"), encoding="utf-8").read()
    broken = installed_copy(tmp_path, "smss.service", text.replace("Type=simple", "Type=bogus"))
    assert "bogus" in verify([broken]).stderr


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(os.path.join(REPO, "systemd", name))
    return parser


def test_spooler_runs_in_the_foreground_unprivileged_with_hardening():
    service = unit("smss.service")["Service"]
    assert service["ExecStart"].endswith(" run")
    assert service["User"] == "smss" and service["SupplementaryGroups"] == "dialout"
    assert service["RuntimeDirectory"] == "smss"
    for key in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp"):
        assert key in service


def test_timer_runs_the_pass_every_minute():
    assert unit("check_and_send.timer")["Timer"]["OnCalendar"] == "minutely"
    assert unit("check_and_send.service")["Service"]["Type"] == "oneshot"
    assert unit("check_and_send-loop.service")["Service"]["ExecStart"].endswith("--loop")


def test_cron_example_runs_every_minute_as_smss():
    lines = [line.split() for line in open(os.path.join(REPO, "systemd", "smss.cron"))
             if line.strip() and not line.startswith("#") and "=" not in line.split()[0]]
    assert lines == [["*", "*", "*", "*", "*", "smss", "/usr/local/bin/check_and_send", "-c",
                      "/etc/smss/smss.conf"]]
