"""GoIP's answers parsed (pure): the send answer in the forms firmwares write it, refusals
and what they mean, send_status.xml as seed 004 shows it (and as other firmwares write it),
and pages that are not what they should be."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smss.gateways import goip
from smss.gateways.goip import (
    AUTH,
    BUSY,
    LINE_DOWN,
    OTHER,
    Accepted,
    GoipAnswerError,
    LineStatus,
    Refused,
    parse_send_answer,
    parse_status,
)

# seed 004, verbatim apart from the Cyrillic the page lost
SEED_STATUS = (
    '<?xml version="1.0" encoding="utf-8"?> <send-sms-status> <id1>57867a25</id1> '
    "<status1>DONE</status1> <error1></error1> <id2>57867277</id2> <status2>ERRORDONE</status2>"
    " <error2>send, but provider not reply.</error2> <id3>57876006</id3> <status3>DONE</status3>"
    " <error3>Баланс: 57.2 р.</error3> <id4></id4> <status4>DONE</status4> <error4></error4> "
    "<id5></id5> <status5></status5> <error5></error5> <id6></id6> <status6></status6> "
    "<error6></error6> <id7></id7> <status7></status7> <error7></error7> <id8></id8> "
    "<status8></status8> <error8></error8> </send-sms-status> "
)


@pytest.mark.parametrize("answer, expected", [
    ("Sending, L1 Send SMS to 89991234567; ID:55c489da", Accepted(1, "89991234567", "55c489da")),
    ("Sending,L1 Send SMS to:999999999; ID:00000e7c", Accepted(1, "999999999", "00000e7c")),
    ("Sending, L12 Send SMS to +420608337726; ID:1A2B\r\n", Accepted(12, "+420608337726", "1A2B")),
])
def test_accepted_answers(answer, expected):
    assert parse_send_answer(answer) == expected


@pytest.mark.parametrize("answer, reason, why", [
    ("ERROR,L2 GSM logout", "L2 GSM logout", LINE_DOWN),
    ("ERROR, username or password error", "username or password error", AUTH),
    ("ERROR, L1 is busy", "L1 is busy", BUSY),
    ("ERROR, invalid number", "invalid number", OTHER),
    ("ERROR", "no reason given", OTHER),
    ("error: L3 no SIM card", "L3 no SIM card", LINE_DOWN),
])
def test_refusals_and_what_they_mean(answer, reason, why):
    assert parse_send_answer(answer) == Refused(reason, why)


@pytest.mark.parametrize("answer", ["", "OK", "<html><body>Login</body></html>",
                                    "Sending, L1 Send SMS to 123", "Sending, Lx Send SMS; ID:1"])
def test_anything_else_is_a_clear_error(answer):
    with pytest.raises(GoipAnswerError, match="unexpected answer from the GoIP"):
        parse_send_answer(answer)


def test_the_seed_status_page():
    lines = parse_status(SEED_STATUS.encode("utf-8"))
    assert sorted(lines) == list(range(1, 9))
    assert lines[1] == LineStatus(1, "57867a25", "DONE", "")
    assert lines[2].failed and lines[2].error == "send, but provider not reply."
    assert lines[3].error == "Баланс: 57.2 р." and lines[3].final
    assert lines[4].idle and lines[5].idle and not lines[5].final
    assert goip.errordone_maybe_sent(lines[2].error)


def test_self_closing_elements_and_no_declaration():
    page = ("<send-sms-status>\n<id1>00000e7c</id1>\n<status1>STARTED</status1>\n<error1/>\n"
            "<id2/>\n<status2/>\n<error2/>\n</send-sms-status>")
    lines = parse_status(page)
    assert lines[1] == LineStatus(1, "00000e7c", "STARTED", "")
    assert not lines[1].idle and not lines[1].final
    assert lines[2] == LineStatus(2) and lines[2].idle


def test_a_job_with_an_id_and_no_status_yet_is_under_way():
    [line] = parse_status("<send-sms-status><id1>abc</id1><status1></status1>"
                          "<error1></error1></send-sms-status>").values()
    assert not line.idle


def test_escaped_text_is_unescaped():
    lines = parse_status("<send-sms-status><id1>a</id1><status1>DONE</status1>"
                         "<error1>Zbývá 10 Kč &amp; 5 SMS &lt;ok&gt;</error1></send-sms-status>")
    assert lines[1].error == "Zbývá 10 Kč & 5 SMS <ok>"


@pytest.mark.parametrize("page", [b"", b"<html><body>401 Unauthorized</body></html>",
                                  b"ERROR, username or password error",
                                  b"<send-sms-status></send-sms-status>"])
def test_a_page_that_is_not_the_status_page_is_an_error(page):
    with pytest.raises(GoipAnswerError):
        parse_status(page)


def test_a_truncated_page_keeps_only_whole_elements():
    text = SEED_STATUS[:SEED_STATUS.index("<status3>") + 12]
    lines = parse_status(text)
    assert lines[3].id == "57876006" and lines[3].status == ""  # not DONE: not idle
    assert not lines[3].idle


def test_form_answers():
    assert goip.parse_form_answer("<html><body><form>Sending...</form></body></html>") is None
    assert goip.parse_form_answer("<html><body>ERROR, L1 GSM logout</body></html>") == Refused(
        "L1 GSM logout", LINE_DOWN)


@pytest.mark.parametrize("error, maybe", [("send, but provider not reply.", True),
                                          ("SMS sent but no reply", True),
                                          ("invalid destination", False), ("", False)])
def test_errordone_texts_that_may_have_gone_out(error, maybe):
    assert goip.errordone_maybe_sent(error) is maybe


texts = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)


@given(st.dictionaries(st.integers(1, 32), st.tuples(
    st.text("0123456789abcdef", max_size=8), st.sampled_from(["", "DONE", "ERRORDONE", "STARTED"]),
    texts), min_size=1))
def test_status_pages_round_trip(lines):
    page = goip.render_status({n: LineStatus(n, i, s, e) for n, (i, s, e) in lines.items()})
    parsed = parse_status(page.encode("utf-8"))
    assert parsed == {n: LineStatus(n, i, s, e.strip()) for n, (i, s, e) in lines.items()}


@given(st.text(max_size=200))
def test_any_send_answer_parses_or_is_a_clear_error(text):
    try:
        result = parse_send_answer(text)
    except GoipAnswerError:
        return
    assert isinstance(result, (Accepted, Refused))


# -- hostile answers: every parser here reads what a device (or whatever answers in its
# place) sent, so each must take time linear in the answer.  The deadline below is a
# safety net, not a speed claim (bench/ measures speed): a linear parse of these pages
# takes milliseconds, a quadratic one minutes.

HOSTILE_SIZE = goip.MAX_STATUS_BYTES - 64
DEADLINE = 20.0


def _parse_quietly(parse, body) -> None:
    try:
        parse(body)
    except GoipAnswerError:
        pass


def finishes(parse, body) -> None:
    """``parse(body)`` returns or raises GoipAnswerError before DEADLINE seconds (in a
    child process: a regular expression holds the GIL, so a thread could not be timed)."""
    import multiprocessing

    child = multiprocessing.get_context("fork").Process(target=_parse_quietly,
                                                        args=(parse, body), daemon=True)
    child.start()
    child.join(DEADLINE)
    busy = child.is_alive()
    if busy:
        child.kill()
        child.join()
    assert not busy, f"{parse.__name__} still busy after {DEADLINE:g}s on {len(body)} bytes"
    assert child.exitcode == 0, f"{parse.__name__} raised something else than GoipAnswerError"


def _fill(head: str, unit: str, tail: str = "") -> str:
    return head + unit * ((HOSTILE_SIZE - len(head) - len(tail)) // len(unit)) + tail


@pytest.mark.parametrize("page", [
    _fill("<send-sms-status>", "<id1>x"),  # openers never closed: the reported case
    _fill("<send-sms-status>", "<"),
    _fill("<send-sms-status><id1>", "< "),
    _fill("<send-sms-status><id1", " "),
    _fill("<send-sms-status><", " /", "id1>"),
    _fill("<send-sms-status>" + "".join(f"<id{n}><status{n}>" for n in range(1, 1000)), "x",
          "".join(f"</id{n}></status{n}>" for n in range(1, 1000))),  # 2,000 elements overlap
], ids=["unclosed", "angles", "open-then-angles", "spaces-in-a-tag", "slashes",
        "overlapping"])
def test_a_hostile_status_page_is_read_in_linear_time(page):
    finishes(parse_status, page)
    finishes(parse_status, page.encode("utf-8"))


def test_a_status_page_larger_than_the_bound_is_refused_unread():
    page = _fill("<send-sms-status><id1>1</id1><status1>DONE</status1>", " ") + " " * 128
    with pytest.raises(GoipAnswerError, match="larger than"):
        parse_status(page)


@pytest.mark.parametrize("answer", [
    _fill("Sending, L1 Send SMS to ", " ", "x"),
    _fill("Sending, L1 Send SMS to ", ":", "x"),
    _fill("Sending, L1 Send SMS to 1", " ", "; ID: x"),
    _fill("ERROR", " ", "x"),
    _fill("ERROR,", ", ", "x"),
])
def test_a_hostile_send_answer_is_read_in_linear_time(answer):
    finishes(parse_send_answer, answer)


@pytest.mark.parametrize("answer", [_fill("", "<"), _fill("ERROR", " ", "<x"),
                                    _fill("<", "a")])
def test_a_hostile_form_answer_is_read_in_linear_time(answer):
    finishes(goip.parse_form_answer, answer)


def test_the_elements_of_a_page_are_found_however_they_nest_or_repeat():
    page = ("<send-sms-status><id1>a<b>c</b></id1><id1>second</id1><status1>DONE"
            "<status2>ERRORDONE</status2></status1><error1>x < y</error1><error2>"
            "</send-sms-status>")
    lines = parse_status(page)
    assert lines[1] == LineStatus(1, "ac", "DONEERRORDONE", "x < y")  # first of each wins
    assert lines[2] == LineStatus(2, "", "ERRORDONE", "")  # <error2> never closed
