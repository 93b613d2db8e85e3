"""How the clients are built and what they need at run time.

SMSSClient.exe must run on a bare Windows: it may import only system DLLs.
``make`` in clients/windows builds both programs warning-free.  smss_client.py
must run on Python 3.8 with nothing but the standard library.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys

import pytest
from support_client import (
    CLIENT_PY,
    SAFETY_TIMEOUT,
    WINDOWS_DIR,
    ScriptedPeer,
    answer_after_eof,
)
from support_tools import missing as _missing
from support_tools import program

SYSTEM_DLLS = {"kernel32.dll", "ws2_32.dll", "msvcrt.dll", "shell32.dll"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``make`` (the default target) with warnings as errors; the output folder."""
    if not shutil.which("x86_64-w64-mingw32-gcc"):
        _missing("x86_64-w64-mingw32-gcc not found (Debian: apt-get install gcc-mingw-w64-x86-64)")
    out = tmp_path_factory.mktemp("client-make")
    completed = subprocess.run(
        ["make", "-C", WINDOWS_DIR, f"OUT={out}", "CFLAGS=-O2 -Wall -Wextra -Werror"],
        capture_output=True, text=True, timeout=SAFETY_TIMEOUT,
    )
    assert completed.returncode == 0, completed.stderr
    assert "warning" not in completed.stderr
    return out


def test_make_builds_the_exe_and_the_native_program(built):
    assert sorted(os.listdir(built)) == ["SMSSClient.exe", "smssclient"]


def test_the_exe_is_a_64_bit_console_program_that_needs_only_system_dlls(built):
    objdump = shutil.which("x86_64-w64-mingw32-objdump")
    if objdump is None:
        _missing("x86_64-w64-mingw32-objdump not found (Debian: binutils-mingw-w64-x86-64)")
    headers = subprocess.run([objdump, "-p", str(built / "SMSSClient.exe")], capture_output=True,
                             text=True, check=True, timeout=SAFETY_TIMEOUT).stdout
    assert "file format pei-x86-64" in headers
    assert re.search(r"^Subsystem\s+00000003\s", headers, re.M), "not a console program"
    dlls = {name.lower() for name in re.findall(r"DLL Name: (\S+)", headers)}
    assert "ws2_32.dll" in dlls
    assert dlls <= SYSTEM_DLLS, dlls - SYSTEM_DLLS


def _pythons():
    """Every CPython 3.8 or newer on this machine besides the one running the tests
    (PATH, then pyenv's versions): the client runs on each one found."""
    found = {}
    candidates = [shutil.which(f"python3.{minor}") for minor in range(8, 20)]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3")))
    for path in filter(None, candidates):
        try:
            probe = subprocess.run(
                [path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True, text=True, timeout=SAFETY_TIMEOUT,
            )
        except OSError:
            continue
        version = probe.stdout.strip()
        if probe.returncode == 0 and tuple(map(int, version.split("."))) >= (3, 8):
            found.setdefault(version, path)
    found.pop(f"{sys.version_info[0]}.{sys.version_info[1]}", None)
    return [sys.executable] + [found[version] for version in sorted(found)]


def test_the_client_needs_nothing_newer_than_python_3_8():
    """vermin reads the file and names the oldest Python each construct needs: the claim
    "3.8 or newer" holds without a 3.8 interpreter on the test machine."""
    vermin = os.path.join(os.path.dirname(sys.executable), "vermin")
    if not os.path.exists(vermin):
        _missing("vermin is not installed (pip install -e '.[test]')")
    result = subprocess.run([vermin, "--target=3.8-", "--violations", "--no-tips",
                             "--eval-annotations", CLIENT_PY],
                            capture_output=True, text=True, timeout=SAFETY_TIMEOUT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("python", _pythons())
def test_the_client_file_runs_alone_on_python(python, tmp_path):
    copy = tmp_path / "smss_client.py"  # copied away from the package: no smss imports
    shutil.copy(CLIENT_PY, copy)
    with ScriptedPeer(answer_after_eof("OK 41")) as peer:
        completed = subprocess.run(
            [python, "-I", str(copy), "-p", str(peer.port), "-n", "+420608337726", "-m", "Příliš"],
            capture_output=True, timeout=SAFETY_TIMEOUT,
            env={"LANG": "C.UTF-8", "PATH": "/usr/bin:/bin"},
        )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == b"OK 41\n"
    assert peer.received == ["#+420608337726;Příliš".encode()]


def test_the_systemd_notify_unit_is_valid(tmp_path):
    analyze = program("systemd-analyze", "systemd")
    template = os.path.join(os.path.dirname(WINDOWS_DIR), "systemd", "smss-notify@.service")
    instance = tmp_path / "smss-notify@backup.service.service"
    shutil.copy(template, instance)
    completed = subprocess.run([analyze, "verify", "--man=no", str(instance)],
                               capture_output=True, text=True, timeout=SAFETY_TIMEOUT)
    assert completed.returncode == 0, completed.stderr
    assert "smss-notify" not in completed.stderr, completed.stderr  # no warning about it
