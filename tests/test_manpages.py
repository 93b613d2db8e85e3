"""The man pages: made from the argument parsers and the KEYS table (never out of date),
lint clean under mandoc, rendered by man, installed by pip into share/man, and named by
the systemd units."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import zipfile

import pytest
from conftest import REPO
from support_tools import program

from smss import manpages
from smss.config import KEYS

PAGES = ["smss.8", "check_and_send.8", "smss-client.1", "smss-modem-sim.1", "smss.conf.5"]


def test_the_pages_and_tables_are_made_from_the_current_sources():
    assert manpages.stale(REPO) == [], "run: python3 -m smss.manpages"
    assert sorted(os.listdir(os.path.join(REPO, "man"))) == sorted(PAGES)


def test_a_changed_help_text_makes_a_page_stale(tmp_path):
    for folder in ("man", "docs"):
        os.makedirs(tmp_path / folder)
    for page in PAGES:
        text = open(os.path.join(REPO, "man", page), encoding="utf-8").read()
        (tmp_path / "man" / page).write_text(text.replace("Keep running", "Keep going"))
    reference = open(os.path.join(REPO, "docs", "configuration.md"), encoding="utf-8").read()
    (tmp_path / "docs" / "configuration.md").write_text(reference.replace("| TCP port |",
                                                                          "| a port |"))
    assert manpages.stale(str(tmp_path)) == ["docs/configuration.md", "man/check_and_send.8"]


@pytest.mark.parametrize("page", PAGES)
def test_mandoc_finds_nothing(page):
    mandoc = program("mandoc", "mandoc")
    done = subprocess.run([mandoc, "-T", "lint", "-W", "style", os.path.join(REPO, "man", page)],
                          capture_output=True, text=True, timeout=60)
    # (the other pages are not installed where mandoc looks while testing from a checkout)
    said = [line for line in (done.stdout + done.stderr).splitlines()
            if "referenced manual not found" not in line]
    assert said == []


@pytest.mark.parametrize("page, expected", [
    ("smss.8", ["smss [-c FILE] [--version] command [arguments]", "doctor", "--via NAME",
                "--control-port PORT", "EXIT STATUS", "smss.conf(5)"]),
    ("check_and_send.8", ["--loop", "the SIM needs a person (PIN, PUK)", "SMSS_CONFIG"]),
    ("smss-client.1", ["-n PHONE, --number PHONE", "EXAMPLES",
                       "smss-client -a sms.example.net"]),
    ("smss-modem-sim.1", ["--pty PATH", "--latency LATENCY"]),
    ("smss.conf.5", ["[server]", "[transport:NAME]", "kick_command (default: check_and_send)"]),
])
def test_man_renders_the_page(page, expected):
    man = program("man", "man-db")
    done = subprocess.run([man, "-l", os.path.join(REPO, "man", page)], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, MANPAGER="cat",
                                                          PAGER="cat", MANWIDTH="100"))
    assert done.returncode == 0, done.stderr
    for text in expected:
        assert text in done.stdout, text


def test_the_configuration_page_has_every_key():
    page = open(os.path.join(REPO, "man", "smss.conf.5"), encoding="utf-8").read()
    for section, key in KEYS:
        assert f".It Cm {key} Pq" in page.split(f".Ss \\&[{section}\\&]")[1], (section, key)


@pytest.mark.slow
def test_pip_installs_the_pages(tmp_path):
    """A wheel built from the checkout carries them, and pip puts them in share/man."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path / "wheel"), REPO], check=True, timeout=600, capture_output=True)
    [wheel] = glob.glob(str(tmp_path / "wheel" / "smss-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for page in PAGES:
        assert any(name.endswith(f".data/data/share/man/man{page[-1]}/{page}")
                   for name in names), page
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")],
                   check=True, timeout=120)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(tmp_path / "venv" / "bin" /
                    "python"), "install", "-q", "--no-deps", wheel], check=True, timeout=600,
                   capture_output=True)
    for page in PAGES:
        assert os.path.isfile(tmp_path / "venv" / "share" / "man" / f"man{page[-1]}" / page)


@pytest.mark.parametrize("unit, pages", [
    ("smss.service", "man:smss(8) man:smss.conf(5)"),
    ("check_and_send.service", "man:check_and_send(8) man:smss.conf(5)"),
    ("check_and_send-loop.service", "man:check_and_send(8) man:smss.conf(5)"),
])
def test_the_units_point_at_the_pages(unit, pages):
    text = open(os.path.join(REPO, "systemd", unit), encoding="utf-8").read()
    assert f"Documentation={pages}\n" in text
