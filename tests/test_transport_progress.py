"""``Progress``: how far a message in parts got, and the modem transport going on from it
(against the simulated modem over TCP)."""

from __future__ import annotations

import pytest
from support_sim import running_simulator

from smss.modem.session import ModemSettings
from smss.transports.base import TEMPORARY, Progress, SendFailed
from smss.transports.modem import ModemTransport

TEXT = ("Zaloha serveru db1 selhala, disk je plny. " * 8)[:400]  # GSM-7: 3 parts


def test_progress_is_kept_as_text_and_resumed_only_by_its_transport():
    saved = []
    progress = Progress("modem:gsm1", save=saved.append)
    progress.begin(77, 3)
    progress.confirm(1, "5")
    progress.begin(77, 3)  # the same split again: nothing changes
    assert len(saved) == 2 and progress.references() == ("5",)
    again = Progress.resume(progress.encode(), "modem:gsm1", saved.append)
    assert (again.concat_reference, again.parts, again.confirmed) == (77, 3, {1: "5"})
    other = Progress.resume(progress.encode(), "modem:gsm2", saved.append)
    assert (other.transport, other.concat_reference, other.confirmed) == ("modem:gsm2", None, {})
    assert Progress.decode(None) is None and Progress.decode("{broken") is None
    progress.begin(78, 4)  # split differently: nothing of the old split counts
    assert progress.confirmed == {} and saved[-1] is progress


@pytest.fixture
def modem():
    with running_simulator(pty=False) as sim:
        transport = ModemTransport(ModemSettings(device=sim.url, command_timeout=5.0,
                                                 register_timeout=5.0), name="modem:test")
        transport.open()
        try:
            yield sim, transport
        finally:
            transport.close()


def test_the_modem_sends_only_the_missing_parts_under_the_recorded_reference(modem):
    sim, transport = modem
    states = []
    progress = Progress("modem:test", 77, 3, {1: "5"},
                        save=lambda p: states.append(dict(p.confirmed)))
    sent = transport.send("+420608337726", TEXT, progress)
    parts = sim.control.sent()
    assert [(p["concat"]["reference"], p["concat"]["sequence"]) for p in parts] == [
        (77, 2), (77, 3)]
    assert sent.references == ("5", str(parts[0]["reference"]), str(parts[1]["reference"]))
    assert sent.parts == 3
    assert states == [{1: "5", 2: sent.references[1]}, {1: "5", 2: sent.references[1],
                                                         3: sent.references[2]}]


def test_a_failed_part_is_recorded_up_to_the_last_confirmed_one(modem):
    sim, transport = modem
    progress = Progress("modem:test")
    sim.control.set_fault("cms_error", code=42, count=1, skip=1)
    with pytest.raises(SendFailed) as info:
        transport.send("+420608337726", TEXT, progress)
    [first] = sim.control.sent()
    assert info.value.kind == TEMPORARY
    assert info.value.sent_references == (str(first["reference"]),)
    assert progress.confirmed == {1: str(first["reference"])}
    assert progress.concat_reference == first["concat"]["reference"] and progress.parts == 3
    sent = transport.send("+420608337726", TEXT, progress)
    parts = sim.control.sent()
    assert [p["concat"]["sequence"] for p in parts] == [1, 2, 3]
    assert len({p["concat"]["reference"] for p in parts}) == 1
    assert sent.references == tuple(str(p["reference"]) for p in parts)


def test_a_message_split_differently_now_is_sent_whole(modem):
    sim, transport = modem
    progress = Progress("modem:test", 77, 2, {1: "5"})  # recorded with another split
    sent = transport.send("+420608337726", TEXT, progress)
    parts = sim.control.sent()
    assert [p["concat"]["sequence"] for p in parts] == [1, 2, 3]
    assert progress.parts == 3 and progress.concat_reference == parts[0]["concat"]["reference"]
    assert sent.references == tuple(str(p["reference"]) for p in parts)


def test_a_single_part_message_needs_no_progress(modem):
    sim, transport = modem
    progress = Progress("modem:test")
    sent = transport.send("+420608337726", "short", progress)
    assert sent.parts == 1 and progress.concat_reference is None and progress.confirmed == {}
