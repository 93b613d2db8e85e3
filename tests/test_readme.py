"""The README and the manual keep their promises: every configuration key documented in
the configuration reference, the test command the one CI runs, the quick start the
command the end-to-end test exercises, and a README short enough to read."""

from __future__ import annotations

import os
import re

from conftest import REPO

from smss.config import KEYS

README = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
REFERENCE = open(os.path.join(REPO, "docs", "configuration.md"), encoding="utf-8").read()


def section_tables():
    """{section: set of keys} from the configuration reference tables."""
    tables, current = {}, None
    for line in REFERENCE.splitlines():
        heading = re.fullmatch(r"\*\*\[(\w+)\]\*\*", line.strip())
        if heading:
            current = tables.setdefault(heading.group(1), set())
            continue
        cell = re.match(r"\| `(\w+)` \|", line)
        if cell and current is not None:
            current.add(cell.group(1))
        elif line.startswith("## "):
            current = None
    return tables


def test_every_configuration_key_is_documented_in_its_section():
    tables = section_tables()
    missing = [f"[{section}] {key}" for section, key in KEYS if key not in tables.get(section, ())]
    assert missing == []
    unknown = [f"[{s}] {k}" for s, keys in tables.items() for k in keys if (s, k) not in KEYS]
    assert unknown == []


def test_ci_runs_the_readme_test_command():
    block = README.split("The whole test suite", 1)[1].split("```", 2)[1].strip()
    assert block == "python3 -m pytest"
    ci = open(os.path.join(REPO, ".ci", "run"), encoding="utf-8").read()
    assert any(line.strip() == block for line in ci.splitlines())


def test_quick_start_is_one_command():
    block = README.split("## Quick start", 1)[1].split("```", 2)[1].strip()
    assert block == "python3 -m pip install . && smss demo"


def test_readme_is_short_and_points_into_the_manual():
    assert len(README.splitlines()) <= 250
    for page in re.findall(r"\]\((docs/[\w.-]+\.md)", README):
        assert os.path.exists(os.path.join(REPO, page)), page
