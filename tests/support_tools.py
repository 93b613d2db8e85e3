"""The independent tools the tests rely on (nc, telnet, socat, gammu, systemd-analyze,
MariaDB, node-smpp, Chromium, Wine, an old Python, atheris, schemathesis …).

Where one is missing a test is skipped on a developer's machine, but under ``CI=true``
it fails: ``.ci/run`` installs every one of them, so a missing tool there means the run
did not test what it claims to.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest


def missing(reason: str) -> None:
    """Skip (developer machine) or fail (CI) because a tool the test needs is absent."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (.ci/run installs it: under CI a missing tool is a failure)")
    pytest.skip(reason)


def program(name: str, package: str) -> str:
    """The path of the program ``name``, or skip/fail naming the Debian ``package``."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed (Debian package {package})")
    return path  # type: ignore[return-value]


def module(name: str, how: str) -> None:
    """The Python module ``name`` must import, or skip/fail saying ``how`` to get it."""
    if importlib.util.find_spec(name) is None:
        missing(f"the Python module {name} is not installed ({how})")
