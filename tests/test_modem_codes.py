"""The one table of +CMS / +CME codes: what each code does to a message, and the
documentation's table of codes says exactly the same."""

from __future__ import annotations

import glob
import os
import re

import pytest
from conftest import REPO

from smss.modem.errors import CME_CODES, CMS_CODES, error_for_result
from smss.transports.base import DOWN, OPERATOR, PERMANENT, TEMPORARY
from smss.transports.modem import failure

ROW = re.compile(r"^\| `\+(CMS|CME) (\d+)` \| (.+?) \| (\w+) \|$")


def code_kind(family: str, code: int) -> str:
    return failure(error_for_result(family, code, command="AT+CMGS=20")).kind


def documented_codes():
    """{(family, code): (meaning, kind)} from the table of codes in the documentation."""
    pages = [os.path.join(REPO, "README.md")] + sorted(
        glob.glob(os.path.join(REPO, "docs", "**", "*.md"), recursive=True))
    rows = {}
    for page in pages:
        with open(page, encoding="utf-8") as handle:
            for line in handle:
                match = ROW.match(line.strip())
                if match:
                    key = (match.group(1), int(match.group(2)))
                    assert key not in rows, f"{key} documented twice"
                    rows[key] = (match.group(3), match.group(4))
    return rows


def test_the_documented_table_is_the_code_table():
    expected = {("CMS", code): (reason, code_kind("CMS", code))
                for code, (reason, _) in CMS_CODES.items()}
    expected.update({("CME", code): (reason, code_kind("CME", code))
                     for code, (reason, _) in CME_CODES.items()})
    documented = documented_codes()
    missing = sorted(set(expected) - set(documented))
    unknown = sorted(set(documented) - set(expected))
    wrong = sorted(key for key in set(expected) & set(documented)
                   if expected[key] != documented[key])
    assert (missing, unknown, wrong) == ([], [], [])


@pytest.mark.parametrize("family,code,kind", [
    # the network says "not now" about this one submission: that message waits alone
    ("CMS", 38, TEMPORARY), ("CMS", 41, TEMPORARY), ("CMS", 42, TEMPORARY),
    ("CMS", 17, TEMPORARY), ("CMS", 27, TEMPORARY), ("CMS", 332, TEMPORARY),
    ("CME", 31, TEMPORARY), ("CMS", 500, TEMPORARY), ("CMS", 314, TEMPORARY),
    # refused and refused again
    ("CMS", 1, PERMANENT), ("CMS", 8, PERMANENT), ("CMS", 96, PERMANENT),
    ("CMS", 304, PERMANENT), ("CME", 50, PERMANENT),
    # nothing can be sent now, and no message is the cause
    ("CMS", 331, DOWN), ("CME", 30, DOWN), ("CME", 32, DOWN), ("CME", 113, DOWN),
    # a person must act
    ("CMS", 311, OPERATOR), ("CMS", 316, OPERATOR), ("CMS", 330, OPERATOR),
    ("CME", 16, OPERATOR), ("CME", 103, OPERATOR),
])
def test_what_a_code_does_to_the_message(family, code, kind):
    assert code_kind(family, code) == kind


def test_codes_outside_the_table_are_temporary():
    for family, code in (("CMS", 60), ("CMS", 230), ("CMS", 600), ("CME", 999)):
        assert code_kind(family, code) == TEMPORARY
    assert failure(error_for_result(None, None)).kind == TEMPORARY  # a bare ERROR
