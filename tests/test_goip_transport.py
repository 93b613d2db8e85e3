"""The GoIP transport against the GoIP simulator (a real HTTP server): sending by GET and
POST, one job per line at a time, busy lines, wrong password, malformed answers, status
tracking to DONE / ERRORDONE, several lines at once, and USSD."""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from typing import Iterator

import pytest
from support_goip import GoipSim, running_goip

from smss import transports
from smss.config import parse_text
from smss.gsm.alphabet import plan_parts
from smss.transports.base import DOWN, OPERATOR, TEMPORARY, SendFailed, Sent
from smss.transports.goip import GoipTransport

PHONE = "+420608337726"
CZECH = "Příliš žluťoučký kůň úpěl ďábelské ódy & spol. #1; 50% \"ok\""


def config_for(goip: GoipSim, tmp_path, **keys: str):
    values = {"url": goip.url, "poll_interval": "0.02", "send_timeout": "5",
              "busy_timeout": "5", "http_timeout": "5"}
    values.update(keys)
    body = "".join(f"{key} = {value}\n" for key, value in values.items())
    return parse_text(f"[dispatcher]\ntransport = goip\nlockfile = {tmp_path}/lock\n"
                      f"[goip]\n{body}")


@contextmanager
def opened(goip: GoipSim, tmp_path, **keys: str) -> Iterator[GoipTransport]:
    transport = transports.from_config(config_for(goip, tmp_path, **keys))
    assert isinstance(transport, GoipTransport)
    transport.open()
    try:
        yield transport
    finally:
        transport.close()


def failure(call) -> SendFailed:
    with pytest.raises(SendFailed) as caught:
        call()
    return caught.value


@pytest.fixture
def goip() -> Iterator[GoipSim]:
    with running_goip(send_seconds=0.05, ussd_answers={
            "*100#": "Баланс: 57.2 р.",
            "*101#": "Остаток 10 Гб до 31.12 (Zůstatek)".encode("utf-16-be").hex().upper(),
    }) as sim:
        yield sim


# -- sending

def test_get_sends_and_waits_for_done(goip, tmp_path):
    with opened(goip, tmp_path) as transport:
        sent = transport.send(PHONE, CZECH)
        assert transport.state().registration == "L1 idle"
    [job] = goip.sent
    assert (job.line, job.phone, job.text, job.method) == (1, PHONE, CZECH, "GET")
    assert sent == Sent((job.id,), plan_parts(CZECH).count, "")
    assert any(r.startswith("GET /default/en_US/send.html?u=admin&p=admin&l=1&n=%2B420")
               for r in goip.requests)


def test_post_sends_with_our_own_smskey(goip, tmp_path):
    with opened(goip, tmp_path, send_method="post", lines="3") as transport:
        sent = transport.send(PHONE, "ahoj " * 50)
    [job] = goip.sent
    assert (job.line, job.text, job.method) == (3, "ahoj " * 50, "POST")
    assert sent.references == (job.id,) and re.fullmatch(r"[0-9a-f]{8}", job.id)
    assert sent.parts == 2


def test_a_line_busy_with_someone_elses_job_is_waited_for(goip, tmp_path):
    with opened(goip, tmp_path) as transport:
        goip.occupy(1, 0.3)
        transport.send(PHONE, "after the other one")
    assert goip.lost == [] and [job.text for job in goip.sent] == ["after the other one"]
    assert goip.accepted[0].text == "after the other one"


def test_messages_in_a_row_never_overlap_on_one_line(goip, tmp_path):
    goip.send_seconds = 0.15
    with opened(goip, tmp_path) as transport:
        for number in range(4):
            transport.send(PHONE, f"message {number}")
    assert goip.lost == []
    assert [job.text for job in goip.sent] == [f"message {n}" for n in range(4)]


def test_a_stop_request_ends_the_wait_for_a_busy_line(goip, tmp_path):
    stop = threading.Event()
    outcomes = []
    with opened(goip, tmp_path, busy_timeout="600") as transport:
        transport.stopping = stop.is_set
        goip.occupy(1, 600.0)
        worker = threading.Thread(target=lambda: outcomes.extend(transport.send_many(
            [(n, PHONE, f"m{n}") for n in range(2)])))
        worker.start()
        stop.set()
        worker.join(30)
        assert not worker.is_alive()
        assert "stopped before it was sent" in failure(lambda: transport.send(PHONE, "x")).reason
    assert outcomes == [] and goip.accepted == []  # nothing sent: nothing yielded


def test_without_waiting_the_simulator_would_lose_the_message(goip, tmp_path):
    """The check that the test above relies on: a job handed to a busy line is lost."""
    goip.occupy(1, 5.0)
    from urllib.request import urlopen

    urlopen(f"{goip.url}/default/en_US/send.html?u=admin&p=admin&l=1&n=1&m=x", timeout=5).read()
    assert [job.text for job in goip.lost] == ["x"]


def test_a_line_busy_for_too_long_is_a_temporary_failure_and_nothing_is_sent(goip, tmp_path):
    with opened(goip, tmp_path, busy_timeout="0.3") as transport:
        goip.occupy(1, 5.0)
        problem = failure(lambda: transport.send(PHONE, "waits in vain"))
    assert problem.kind == TEMPORARY and not problem.maybe_sent
    assert "L1 still busy" in problem.reason
    assert goip.accepted == []


def test_several_lines_carry_one_job_each_at_a_time(goip, tmp_path):
    goip.send_seconds = 0.2
    with opened(goip, tmp_path, lines="1, 2") as transport:
        assert transport.window == 2
        outcomes = dict(transport.send_many([(n, PHONE, f"batch {n}") for n in range(6)]))
    assert all(isinstance(outcome, Sent) for outcome in outcomes.values())
    assert sorted(outcomes) == list(range(6)) and goip.lost == []
    assert {job.line for job in goip.sent} == {1, 2}
    assert {job.id for job in goip.sent} == {o.references[0] for o in outcomes.values()}


def test_a_gsm_logout_line_is_skipped_for_another(goip, tmp_path):
    goip.set_fault("logout")
    with opened(goip, tmp_path, lines="1, 2") as transport:
        transport.send(PHONE, "via the other line")
    assert [job.line for job in goip.sent] == [2]


def test_a_gsm_logout_on_the_only_line_is_down(goip, tmp_path):
    goip.set_fault("logout")
    with opened(goip, tmp_path) as transport:
        problem = failure(lambda: transport.send(PHONE, "x"))
    assert problem.kind == DOWN and not problem.maybe_sent and "GSM logout" in problem.reason


def test_a_busy_refusal_is_waited_out(goip, tmp_path):
    goip.set_fault("refuse_busy")
    with opened(goip, tmp_path) as transport:
        transport.send(PHONE, "second try")
    assert [job.text for job in goip.sent] == ["second try"]


# -- failures

def test_wrong_password_needs_a_person(tmp_path):
    with running_goip(password="secret") as goip:
        for method in ("get", "post"):
            transport = transports.from_config(config_for(goip, tmp_path, send_method=method))
            problem = failure(transport.open)
            assert problem.kind == OPERATOR and "check [goip] user and password" in problem.reason


def test_wrong_password_on_the_form_needs_a_person(goip, tmp_path):
    with opened(goip, tmp_path, send_method="post") as transport:
        goip.password = "changed"  # the status page is read with the old one first: it fails
        problem = failure(lambda: transport.send(PHONE, "x"))
    assert problem.kind == OPERATOR and goip.accepted == []


def test_a_line_the_goip_does_not_have(goip, tmp_path):
    transport = transports.from_config(config_for(goip, tmp_path, lines="9"))
    problem = failure(transport.open)
    assert problem.kind == OPERATOR and "no line 9" in problem.reason


def test_no_goip_listening_is_down(tmp_path):
    with running_goip() as goip:
        config = config_for(goip, tmp_path)
    problem = failure(transports.from_config(config).open)
    assert problem.kind == DOWN and "cannot connect" in problem.reason


def test_a_malformed_send_answer_may_have_been_sent(goip, tmp_path):
    goip.set_fault("malformed_send")
    with opened(goip, tmp_path) as transport:
        problem = failure(lambda: transport.send(PHONE, "x"))
    assert problem.kind == TEMPORARY and problem.maybe_sent
    assert "unexpected answer from the GoIP: 'OK " in problem.reason


def test_a_malformed_status_page(goip, tmp_path):
    goip.set_fault("malformed_status")
    problem = failure(lambda: opened(goip, tmp_path).__enter__())
    assert problem.kind == OPERATOR and "not a send_status.xml page" in problem.reason
    with opened(goip, tmp_path) as transport:
        goip.set_fault("malformed_status")
        problem = failure(lambda: transport.send(PHONE, "first"))
        assert problem.kind == DOWN and not problem.maybe_sent
        assert goip.accepted == []
        transport.send(PHONE, "second")  # one bad page while a job runs is waited out
        goip.send_seconds = 0.3
        threading.Timer(0.1, goip.set_fault, ("malformed_status",)).start()
        transport.send(PHONE, "third")
    assert [job.text for job in goip.sent] == ["second", "third"]


def test_errordone_fails_with_the_goips_text(goip, tmp_path):
    goip.set_fault("errordone")
    with opened(goip, tmp_path) as transport:
        problem = failure(lambda: transport.send(PHONE, "x"))
    [job] = goip.accepted
    assert problem.kind == TEMPORARY and problem.maybe_sent
    assert problem.reason.endswith("L1: send, but provider not reply.")
    assert problem.sent_references == (job.id,)


def test_a_job_that_never_ends(goip, tmp_path):
    goip.set_fault("stuck")
    with opened(goip, tmp_path, send_timeout="0.3", busy_timeout="0.3") as transport:
        problem = failure(lambda: transport.send(PHONE, "stuck"))
        assert problem.kind == TEMPORARY and problem.maybe_sent
        assert "no DONE" in problem.reason and problem.sent_references == (goip.accepted[0].id,)
        problem = failure(lambda: transport.send(PHONE, "behind it"))  # the line stays busy
        assert problem.kind == TEMPORARY and not problem.maybe_sent
    assert [job.text for job in goip.accepted] == ["stuck"] and goip.lost == []


def test_the_goip_vanishing_mid_job(goip, tmp_path):
    goip.send_seconds = 5.0
    with opened(goip, tmp_path) as transport:
        threading.Timer(0.2, goip.close).start()
        problem = failure(lambda: transport.send(PHONE, "x"))
    assert problem.kind == DOWN and problem.maybe_sent
    assert problem.sent_references == (goip.accepted[0].id,)


# -- USSD

def test_ussd_answer_from_the_status_page(goip, tmp_path):
    with opened(goip, tmp_path, lines="2") as transport:
        assert transport.ussd("*100#", 5) == "Баланс: 57.2 р."
        assert transport.ussd("*101#", 5) == "Остаток 10 Гб до 31.12 (Zůstatek)"
    assert [(job.kind, job.line, job.text) for job in goip.accepted] == [
        ("ussd", 2, "*100#"), ("ussd", 2, "*101#")]


def test_ussd_waits_for_a_busy_line_and_times_out(goip, tmp_path):
    with opened(goip, tmp_path) as transport:
        goip.occupy(1, 0.2)
        assert transport.ussd("*100#", 5) == "Баланс: 57.2 р."
        goip.set_fault("stuck")
        problem = failure(lambda: transport.ussd("*100#", 0.3))
    assert problem.kind == TEMPORARY and "no USSD answer" in problem.reason


def test_transliteration_goes_as_the_parts_were_counted(goip, tmp_path):
    """[messages] transliterate = yes: the GoIP gets the plain letters, and the parts are
    the ones smss.spooler.validate stored in msg (and the web form's counter showed)."""
    from smss.spooler.protocol import Record
    from smss.spooler.validate import Rules, check

    config = config_for(goip, tmp_path).with_overrides(messages={"transliterate": "yes"})
    text = "Příliš žluťoučký kůň úpěl ďábelské ódy. " * 3  # 120 characters: 2 UCS2 SMS
    counted = check(Record(PHONE, text), Rules.from_config(config)).parts
    transport = transports.from_config(config)
    transport.open()
    try:
        sent = transport.send(PHONE, text)
    finally:
        transport.close()
    [job] = goip.sent
    assert job.text == "Prilis zlutoucky kun upel dabelské ody. " * 3  # é is GSM-7
    assert sent.parts == counted == 1
