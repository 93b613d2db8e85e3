"""Shell completion: the commands answer a completion request the way bash asks it
(argcomplete's protocol: the line in COMP_LINE, the cursor in COMP_POINT)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

IFS = "\013"


def complete(module: str, line: str, tmp_path) -> list:
    out = tmp_path / "completions"
    env = dict(os.environ, _ARGCOMPLETE="1", _ARGCOMPLETE_IFS=IFS, COMP_LINE=line,
               COMP_POINT=str(len(line)), _ARGCOMPLETE_STDOUT_FILENAME=str(out))
    result = subprocess.run([sys.executable, "-m", module], env=env, capture_output=True,
                            timeout=60, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    return sorted(word.strip() for word in out.read_text().split(IFS) if word.strip())


@pytest.mark.parametrize("module, line, expected", [
    ("smss.cli", "smss us", ["user", "ussd"]),
    ("smss.cli", "smss ussd --v", ["--via"]),
    ("smss.cli", "smss demo --p", ["--port"]),
    ("check_and_send.cli", "check_and_send --l", ["--loop"]),
    ("smss.sim.cli", "smss-modem-sim --pt", ["--pty"]),
])
def test_tab_completes_subcommands_and_their_own_options(module, line, expected, tmp_path):
    assert complete(module, line, tmp_path) == expected
