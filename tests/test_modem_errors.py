"""Classification of +CMS / +CME codes into temporary, permanent and SIM errors."""

from __future__ import annotations

import pytest

from smss.modem.errors import (
    CME_REASONS,
    CMS_REASONS,
    ModemError,
    NoNetwork,
    NoSim,
    NoSmsc,
    PermanentError,
    PinRequired,
    PukRequired,
    SimBusy,
    SimError,
    SimRejected,
    TemporaryError,
    WrongPin,
    code_for_text,
    error_for_result,
    reason_for,
)


@pytest.mark.parametrize("code", [17, 27, 28, 38, 41, 42, 47, 127, 332, 500, 515, 22, 192, 322,
                                  600])
def test_temporary_cms_codes(code):
    error = error_for_result("CMS", code, command="AT+CMGS=20")
    assert error.temporary and not error.needs_operator
    assert isinstance(error, TemporaryError)


@pytest.mark.parametrize("code", [1, 8, 10, 21, 29, 96, 304, 305, 195, 196])
def test_permanent_cms_codes(code):
    error = error_for_result("CMS", code)
    assert isinstance(error, PermanentError)
    assert error.permanent and not error.temporary and not error.needs_operator


@pytest.mark.parametrize("family,code,kind", [
    ("CMS", 310, NoSim), ("CMS", 311, PinRequired), ("CMS", 316, PukRequired),
    ("CME", 10, NoSim), ("CME", 11, PinRequired), ("CME", 12, PukRequired),
    ("CME", 16, WrongPin), ("CME", 13, NoSim), ("CMS", 330, NoSmsc), ("CME", 103, SimRejected),
])
def test_sim_errors_need_an_operator(family, code, kind):
    error = error_for_result(family, code)
    assert isinstance(error, kind) and isinstance(error, SimError)
    assert error.needs_operator and not error.temporary


def test_sim_busy_and_network():
    assert isinstance(error_for_result("CME", 14), SimBusy)
    assert isinstance(error_for_result("CMS", 314), SimBusy)
    assert error_for_result("CMS", 314).temporary
    for family, code in (("CMS", 331), ("CME", 30), ("CME", 32), ("CME", 111)):
        assert isinstance(error_for_result(family, code), NoNetwork)
    for family, code in (("CMS", 332), ("CME", 31)):  # one request timed out, not the network
        error = error_for_result(family, code)
        assert type(error) is TemporaryError


def test_reasons_and_messages():
    error = error_for_result("CMS", 1, command="AT+CMGS=20")
    assert (error.family, error.code, error.command) == ("CMS", 1, "AT+CMGS=20")
    assert str(error) == "+CMS ERROR 1: unassigned (unallocated) number (after AT+CMGS=20)"
    assert reason_for("CMS", 17) == "network failure"
    assert reason_for("CMS", 60) == "network (RP) cause 60"
    assert reason_for("CMS", 230) == "SMSC application specific error 230"
    assert reason_for("CME", 999) == "unknown code 999"
    assert error_for_result("CME", 999, text="vendor says no").reason == "vendor says no"
    bare = error_for_result(None, None, command="AT+X")
    assert isinstance(bare, TemporaryError) and bare.code is None
    assert "ERROR" in str(bare)
    assert ModemError("x").sent_references == [] and ModemError("x").pdu_sent is None


def test_verbose_texts_map_back_to_codes():
    assert code_for_text("CME", "SIM PIN required") == 11
    assert code_for_text("CME", "incorrect password") == 16
    assert code_for_text("CME", "SIM busy") == 14
    assert code_for_text("CMS", "(U)SIM busy") == 314
    assert code_for_text("CMS", "SIM busy") == 314
    assert code_for_text("CMS", "memory full") == 322
    assert code_for_text("CME", "no such thing") is None


def test_tables_cover_the_spec_ranges():
    assert set(range(300, 306)) | {310, 311, 312, 313, 314, 315, 316, 320, 321, 322, 330,
                                   331, 332, 500} <= set(CMS_REASONS)
    assert set(range(0, 8)) | set(range(10, 19)) | set(range(20, 28)) | {30, 31, 32,
                                                                         100} <= set(CME_REASONS)
