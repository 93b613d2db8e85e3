"""The modem driver against the bundled modem simulator, over a real pty and over TCP,
with every fault the simulator can inject."""

from __future__ import annotations

import time

import pytest
from support_sim import running_simulator

from smss.gsm.pdu import Deliver, StatusReport
from smss.modem.errors import (
    LinkDown,
    ModemTimeout,
    NoNetwork,
    PermanentError,
    PinRequired,
    TemporaryError,
    WrongPin,
)
from smss.modem.link import Link
from smss.modem.pinguard import PinGuard
from smss.modem.session import ModemSession, ModemSettings

TRANSPORTS = ["pty", "tcp"]


def url_of(sim, transport: str) -> str:
    return sim.pty_path if transport == "pty" else sim.url


def session(sim, transport: str = "tcp", **overrides) -> ModemSession:
    values = dict(device=url_of(sim, transport), command_timeout=5.0, send_timeout=10.0,
                  read_timeout=0.05, quiet_time=0.1, register_timeout=10.0, poll_interval=0.1,
                  sim_busy_timeout=10.0, reset_wait=0.2)
    guard = overrides.pop("pin_guard", None)
    values.update(overrides)
    return ModemSession(ModemSettings(**values), pin_guard=guard)


def wait_until(predicate, timeout: float = 10.0):
    """Poll ``predicate`` until it returns something true (a safety-net timeout only)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_send_receive_report_ussd_status(transport):
    with running_simulator() as sim, session(sim, transport) as modem:
        text = "Žluťoučký kůň úpěl ďábelské ódy " * 3
        result = modem.send("+420608337726", text)
        assert (result.parts, result.encoding) == (2, "ucs2")
        sent = sim.control.sent()
        assert [s["number"] for s in sent] == ["+420608337726"] * 2
        assert "".join(s["text"] for s in sent) == text
        assert [s["reference"] for s in sent] == result.references
        lines = [entry["line"] for entry in sim.control.lines()]
        assert sum(line.startswith("AT+CMGS=") for line in lines) == 2
        assert lines.count("ATZ") == 1

        # status reports are stored on the SIM (AT+CNMI ds=2) and listed with the messages
        stored = wait_until(lambda: len(modem.list_stored()) == 2 and modem.list_stored())
        assert all(isinstance(m.decoded, StatusReport) and m.decoded.delivered for m in stored)
        assert {m.decoded.reference for m in stored} == set(result.references)
        assert len(modem.take_unsolicited(["+CDSI"])) == 2
        for message in stored:
            modem.delete(message.index)

        sim.control.inject("+420777123456", "Ahoj, tady modem")
        assert wait_until(lambda: modem.take_unsolicited(["+CMTI"]))
        stored = modem.list_stored()
        assert len(stored) == 1 and isinstance(stored[0].decoded, Deliver)
        assert (stored[0].decoded.sender, stored[0].decoded.text) == (
            "+420777123456", "Ahoj, tady modem")
        modem.delete(stored[0].index)
        assert modem.list_stored() == []

        assert modem.ussd("*100#") == "Vas kredit je 123,45 Kc. Platnost do 31.12.2030."
        status = modem.status()
        assert (status.rssi, status.registration, status.operator) == (20, "home", "T-Mobile CZ")
        assert status.storage_total == 30 and status.smsc == "+420603052000"


@pytest.mark.parametrize("encoding", ["ucs2", "text"])
def test_ussd_in_other_encodings(encoding):
    with running_simulator(ussd_encoding=encoding) as sim, session(sim) as modem:
        assert modem.ussd("*100#") == "Vas kredit je 123,45 Kc. Platnost do 31.12.2030."


@pytest.mark.parametrize("with_smsc", [True, False])
def test_status_reports_routed_as_cds(with_smsc):
    routed = ("+CNMI=2,1,0,1,0",)  # a modem that can only route reports (+CDS)
    with running_simulator(cds_with_smsc=with_smsc) as sim, session(
        sim, init_commands=routed
    ) as modem:
        result = modem.send("+420608337726", "x" * 200)
        modem.take_unsolicited()  # does not swallow the reports
        reports = wait_until(modem.take_status_reports)
        reports += wait_until(modem.take_status_reports, 1) if len(reports) < 2 else []
        assert sorted(r.reference for r in reports) == sorted(result.references)
        assert all(r.delivered for r in reports)
        assert modem.list_stored() == []


def test_multipart_inbound_and_undecodable_pdu():
    with running_simulator() as sim, session(sim) as modem:
        sim.control.inject("+420777123456", "dlouha zprava " * 20, order=[2, 1])
        sim.control.inject_pdu("0791247030501F00040C91247077214365000042")  # truncated
        stored = wait_until(lambda: len(modem.list_stored()) == 3 and modem.list_stored())
        decoded = [m for m in stored if m.decoded is not None]
        broken = [m for m in stored if m.decoded is None]
        assert len(decoded) == 2 and len(broken) == 1
        assert {m.decoded.concat.sequence for m in decoded} == {1, 2}
        assert broken[0].error and broken[0].pdu_hex.startswith("0791")


@pytest.mark.parametrize("code,kind", [(38, TemporaryError), (42, TemporaryError),
                                       (1, PermanentError), (21, PermanentError)])
def test_cms_errors_are_classified(code, kind):
    with running_simulator() as sim, session(sim) as modem:
        sim.control.set_fault("cms_error", code=code, count=1)
        with pytest.raises(kind) as info:
            modem.send("+420608337726", "x")
        assert info.value.code == code and info.value.family == "CMS"
        assert sim.control.sent() == []
        assert modem.send("+420608337726", "x").parts == 1  # the session goes on
        assert len(sim.control.sent()) == 1


def test_cms_error_on_a_later_part_reports_the_parts_that_went_out():
    class FaultOnSecondPart(Link):
        """Sets a +CMS fault in the simulator just before the second AT+CMGS line."""

        cmgs = 0

        def write(self, data: bytes) -> None:
            if data.startswith(b"AT+CMGS="):
                self.cmgs += 1
                if self.cmgs == 2:
                    sim.control.set_fault("cms_error", code=42, count=1)
            super().write(data)

    with running_simulator() as sim:
        link = FaultOnSecondPart(sim.url, read_timeout=0.05)
        modem = ModemSession(ModemSettings(device=sim.url, command_timeout=5.0), link=link)
        modem.open()
        with pytest.raises(TemporaryError) as info:
            modem.send("+420608337726", "x" * 400)
        sent = sim.control.sent()
        assert len(sent) == 1
        assert info.value.sent_references == [sent[0]["reference"]]
        assert info.value.code == 42
        modem.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_link_dropped_while_sending_then_recovered(transport):
    with running_simulator() as sim:
        modem = session(sim, transport)
        modem.open()
        sim.control.set_fault("drop", at="body")
        with pytest.raises(LinkDown) as info:
            modem.send("+420608337726", "x")
        assert info.value.temporary
        assert sim.control.sent() == []
        modem.recover()
        assert modem.send("+420608337726", "x").parts == 1
        assert len(sim.control.sent()) == 1
        modem.close()


def test_link_dropped_after_the_message_went_out_says_maybe_sent():
    with running_simulator() as sim:
        modem = session(sim)
        modem.open()
        sim.control.set_fault("drop", at="after_send")
        with pytest.raises(LinkDown) as info:
            modem.send("+420608337726", "x")
        assert info.value.pdu_sent is True
        assert len(sim.control.sent()) == 1  # it did go out: the caller must know "maybe"
        modem.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_hung_modem_times_out_and_comes_back(transport):
    with running_simulator() as sim:
        modem = session(sim, transport, command_timeout=0.5, send_timeout=1.0)
        modem.open()
        sim.control.set_fault("hang", at="now")
        with pytest.raises(ModemTimeout):
            modem.status()
        sim.control.clear_fault("hang")
        assert modem.status().registered  # the engine re-synchronises by itself
        sim.control.set_fault("hang", at="body")
        with pytest.raises(ModemTimeout) as info:
            modem.send("+420608337726", "x")
        assert info.value.pdu_sent is True
        sim.control.clear_fault("hang")
        modem.recover()
        assert modem.send("+420608337726", "x").parts == 1
        modem.close()


def test_no_network_at_start_and_while_sending():
    with running_simulator() as sim:
        sim.control.set_fault("no_network", stat=2)
        modem = session(sim, register_timeout=0.5)
        with pytest.raises(NoNetwork) as info:
            modem.open()
        assert info.value.temporary and "searching" in str(info.value)
        sim.control.clear_fault("no_network")
        modem.open()
        sim.control.set_fault("no_network", stat=3)
        with pytest.raises(NoNetwork) as info:
            modem.send("+420608337726", "x")
        assert info.value.code == 331
        status = modem.status()
        assert (status.registered, status.registration) == (False, "denied")
        modem.close()


def test_full_sim_is_seen_and_emptied():
    with running_simulator(capacity=2) as sim, session(sim) as modem:
        sim.control.inject("+420777123456", "one")
        sim.control.inject("+420777123456", "two")
        sim.control.inject("+420777123456", "three")  # waits in the network
        assert wait_until(lambda: modem.status().storage_full)
        assert len(modem.list_stored()) == 2
        assert modem.send("+420608337726", "sending still works").parts == 1
        for message in modem.list_stored():
            modem.delete(message.index)
        texts = wait_until(lambda: [m.decoded.text for m in modem.list_stored()])
        assert texts == ["three"]
        sim.control.set_fault("sim_full")
        assert modem.send("+420608337726", "and with the fault too").parts == 1


def test_pin_entered_once_and_sim_busy_waited_out(tmp_path):
    guard = PinGuard(str(tmp_path / "pins"))
    with running_simulator(pin="7391", sim_busy_seconds=0.5) as sim:
        with session(sim, pin="7391", pin_guard=guard) as modem:
            assert modem.send("+420608337726", "x").parts == 1
        lines = [entry["line"] for entry in sim.control.lines()]
        assert sum(line.startswith("AT+CPIN=") for line in lines) == 1
        sim.control.set_fault("pin_required")  # as after a power cut
        with session(sim, pin="7391", pin_guard=guard) as modem:
            assert modem.status().registered


def test_pin_required_but_none_configured():
    with running_simulator(pin="7392") as sim:
        with pytest.raises(PinRequired):
            session(sim).open()
        lines = [entry["line"] for entry in sim.control.lines()]
        assert not any(line.startswith("AT+CPIN=") for line in lines)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_wrong_pin_is_sent_once_only(tmp_path, transport):
    guard_file = str(tmp_path / "rejected")
    with running_simulator(pin="7393") as sim:
        for _ in range(3):  # three dispatcher runs
            with pytest.raises(WrongPin):
                session(sim, transport, pin="0000", pin_guard_file=guard_file).open()
        lines = [entry["line"] for entry in sim.control.lines()]
        assert sum(line.startswith("AT+CPIN=") for line in lines) == 1
        assert sim.control.status()["sim"]  # the SIM is not blocked
        # the operator fixes the PIN: a different PIN is tried
        with session(sim, transport, pin="7393", pin_guard_file=guard_file) as modem:
            assert modem.status().registered
    PinGuard(guard_file).forget("0000")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_noise_everywhere(transport):
    with running_simulator(seed=7) as sim, session(sim, transport) as modem:
        sim.control.set_fault("noise", probability=0.6, interval=0.05)
        results = [modem.send("+420608337726", f"zprava {i} " * (i * 10 + 1)) for i in range(4)]
        assert [r.parts for r in results] == [1, 1, 2, 2]
        sim.control.inject("+420777123456", "Ahoj")
        # (the four sends' status reports may be stored on the SIM too, whenever they come)
        assert wait_until(lambda: [m.decoded.text for m in modem.list_stored()
                                   if isinstance(m.decoded, Deliver)]) == ["Ahoj"]
        assert modem.status().operator == "T-Mobile CZ"
        assert modem.ussd("*100#").startswith("Vas kredit")
        assert len(sim.control.sent()) == 6


def test_echo_left_on_and_huawei_like_numbering():
    with running_simulator(first_index=0) as sim, session(sim, init_commands=("E1",)) as modem:
        assert modem.send("+420608337726", "x").parts == 1
        sim.control.inject("+420777123456", "nula")
        stored = wait_until(modem.list_stored)
        assert [(m.index, m.decoded.text) for m in stored] == [(0, "nula")]
        modem.delete(0)
        assert modem.list_stored() == []


def test_the_real_simulator_program_over_its_pty():
    with running_simulator(subprocess=True) as sim, session(sim, "pty") as modem:
        result = modem.send("+420608337726", "z programu")
        assert result.parts == 1
        assert sim.control.sent()[0]["text"] == "z programu"
