"""GoIP receiving through its SMPP server: one bind per line (system_id + two-digit channel),
UTF-16BE text as the GoIP sends it, multipart, the line each SMS came in on, a bind refused
while sending goes on; node-smpp (tests/smsc) plays the GoIP's SMPP server."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

import pytest
from support_goip import GoipSim, running_goip
from support_smsc import Smsc, mo, require_node, ucs2

from smss import transports
from smss.config import parse_text
from smss.transports.base import OPERATOR, SendFailed
from smss.transports.goip import GoipTransport


@pytest.fixture(scope="module")
def smsc_process() -> Iterator[Smsc]:
    require_node()
    smsc = Smsc()
    yield smsc
    smsc.close()


@pytest.fixture
def smsc(smsc_process: Smsc) -> Smsc:
    smsc_process.reset()
    smsc_process.set(users={"goip01": "smpppw", "goip02": "smpppw"})
    return smsc_process


@pytest.fixture
def goip() -> Iterator[GoipSim]:
    with running_goip(send_seconds=0.05) as sim:
        yield sim


def config_for(goip: GoipSim, smsc: Smsc, tmp_path, **keys: str):
    values = {"url": goip.url, "poll_interval": "0.02", "lines": "1, 2",
              "smpp_port": str(smsc.port), "smpp_system_id": "goip",
              "smpp_password": "smpppw", "spool": str(tmp_path / "inbox")}
    values.update(keys)
    body = "".join(f"{key} = {value}\n" for key, value in values.items())
    return parse_text(f"[dispatcher]\nlockfile = {tmp_path}/lock\n"
                      f"[transport:goip-a]\ntype = goip\n{body}")


@contextmanager
def opened(goip, smsc, tmp_path, **keys) -> Iterator[GoipTransport]:
    transport = transports.from_config(config_for(goip, smsc, tmp_path, **keys))
    assert isinstance(transport, GoipTransport) and transport.name == "goip-a"
    transport.open()
    try:
        yield transport
    finally:
        transport.close()


def fetch_until(transport, count: int):
    """The messages ``fetch`` hands out (each once: undeleted ones come again) once there
    are ``count`` (15 s at most, a safety net)."""
    found = {}
    deadline = time.monotonic() + 15
    while len(found) < count and time.monotonic() < deadline:
        for message in transport.fetch().messages:
            found.setdefault(message.handles, message)
        time.sleep(0.01)
    return list(found.values())


def test_one_bind_per_line_and_which_sim_got_what(goip, smsc, tmp_path):
    with opened(goip, smsc, tmp_path) as transport:
        binds = {e["system_id"] for e in smsc.wait_events("bind", 2)}
        assert binds == {"goip01", "goip02"}
        assert smsc.deliver([mo(ucs2("Příliš žluťoučký kůň"), recipient="goip01")],
                            system_id="goip01")["statuses"] == [0]
        assert smsc.deliver([mo(ucs2("Привет из второй SIM"), sender="79991234567",
                                recipient="goip02")], system_id="goip02")["statuses"] == [0]
        messages = fetch_until(transport, 2)
        by_line = {m.handles[0].split(":")[0]: m for m in messages}
        assert by_line["L1"].text == "Příliš žluťoučký kůň"
        assert by_line["L1"].phone == "+420608337726"
        assert by_line["L2"].text == "Привет из второй SIM"
        transport.delete([h for m in messages for h in m.handles])
        assert transport.fetch().messages == []


def test_multipart_utf16(goip, smsc, tmp_path):
    text = "Dobrý den, tohle je dlouhá zpráva z GoIP, ve třech částech. " * 3
    data = text.encode("utf-16-be")
    chunks = [data[i:i + 134] for i in range(0, len(data), 134)]
    udh = [bytes([5, 0, 3, 0x42, len(chunks), n]).hex() for n in range(1, len(chunks) + 1)]
    parts = [mo(udh[n] + chunks[n].hex(), esm_class=0x40, recipient="goip02")
             for n in range(len(chunks))]
    with opened(goip, smsc, tmp_path) as transport:
        smsc.deliver([parts[2], parts[0], parts[1]], system_id="goip02")
        [message] = fetch_until(transport, 1)
    assert message.text == text and message.parts == len(chunks) == 3
    assert all(handle.startswith("L2:") for handle in message.handles)


def test_wait_wakes_on_an_sms_on_any_line(goip, smsc, tmp_path):
    with opened(goip, smsc, tmp_path) as transport:
        smsc.wait_events("bind", 2)
        assert transport.wait(0.05) is False
        threading.Timer(0.2, lambda: smsc.deliver([mo(ucs2("wake"), recipient="goip02")],
                                                  system_id="goip02")).start()
        assert transport.wait(20) is True


def test_a_refused_bind_does_not_stop_sending(goip, smsc, tmp_path):
    with opened(goip, smsc, tmp_path, smpp_password="wrong") as transport:
        transport.send("+420608337726", "still goes")
        with pytest.raises(SendFailed) as caught:
            transport.fetch()
        assert caught.value.kind == OPERATOR and "L1 receiving (SMPP)" in caught.value.reason
        assert "SMPP down" in transport.state().registration
    assert [job.text for job in goip.sent] == ["still goes"]


def test_messages_wait_in_the_spool_for_the_next_process(goip, smsc, tmp_path):
    with opened(goip, smsc, tmp_path) as transport:
        smsc.deliver([mo(ucs2("keep me"), recipient="goip01")], system_id="goip01")
        fetch_until(transport, 1)  # not deleted: the pass died before
    with opened(goip, smsc, tmp_path) as transport:
        [message] = transport.fetch().messages
    assert message.text == "keep me"


def test_no_receiving_without_smpp_port(goip, smsc, tmp_path):
    with opened(goip, smsc, tmp_path, smpp_port="0") as transport:
        assert transport.fetch().messages == []
    assert smsc.events("bind") == []
