"""The SMPP transport against node-smpp acting as the SMSC (tests/smsc/smsc.js): binds,
submits, windowing, throttling (one pause per episode, a rate learned from a per-second
limit), errors, receipts in every text form, mobile-originated messages, enquire_link,
unbind, dropped connections (bound again within the batch), submits that never reached
the socket, and a stop request during a throttle pause."""

from __future__ import annotations

import collections
import logging
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import pytest
from support_smsc import Smsc, mo, require_node, ucs2

from smss.smpp import pdu as p
from smss.smpp.settings import SmppSettings
from smss.transports.base import DOWN, OPERATOR, PERMANENT, TEMPORARY, SendFailed, Sent
from smss.transports.smpp import SmppTransport

PHONE = "+420608337726"


@pytest.fixture(scope="module")
def smsc_process() -> Iterator[Smsc]:
    require_node()
    smsc = Smsc()
    yield smsc
    smsc.close()


@pytest.fixture
def smsc(smsc_process: Smsc) -> Smsc:
    smsc_process.reset()
    return smsc_process


def make(smsc: Smsc, tmp_path, **overrides) -> SmppTransport:
    values = dict(host=smsc.host, port=smsc.port, system_id="smss", password="secret",
                  spool=str(tmp_path / "inbox"), response_timeout=5.0,
                  enquire_link_interval=30.0, throttle_delay=0.02, reconnect_delay=0.05)
    values.update(overrides)
    return SmppTransport(SmppSettings(**values))


@contextmanager
def opened(smsc: Smsc, tmp_path, **overrides) -> Iterator[SmppTransport]:
    transport = make(smsc, tmp_path, **overrides)
    transport.open()
    try:
        yield transport
    finally:
        transport.close()


def until(condition, timeout: float = 10.0):
    """Poll ``condition`` until it is true and return its value; fail the test when it is
    not within ``timeout`` (a safety net, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout:g}s: {condition}")
        time.sleep(0.01)


def failure(call) -> SendFailed:
    with pytest.raises(SendFailed) as caught:
        call()
    return caught.value


def fetch_until(transport: SmppTransport, count: int, kind: str = "messages"):
    found = []

    def more():
        inbox = transport.fetch()
        found.extend(getattr(inbox, kind))
        return len(found) >= count

    until(more)
    return found


# -- binds

def test_bind_with_good_credentials_tells_the_smsc_who_we_are(smsc, tmp_path):
    with opened(smsc, tmp_path, system_type="VMA", interface_version=0x34,
                address_range="420*") as transport:
        state = transport.state()
        assert state.registration == "trx up" and state.operator == "nodesmsc"
    bind = smsc.wait_event("bind")
    assert (bind["command"], bind["system_id"], bind["password"], bind["system_type"],
            bind["interface_version"], bind["address_range"], bind["status"]) == (
        "bind_transceiver", "smss", "secret", "VMA", 0x34, "420*", 0)
    smsc.wait_event("unbind")  # close() unbinds


def test_bad_password_needs_a_person(smsc, tmp_path):
    transport = make(smsc, tmp_path, password="wrong")
    with pytest.raises(SendFailed) as caught:
        transport.open()
    assert caught.value.kind == OPERATOR and "ESME_RINVPASWD" in caught.value.reason
    assert smsc.wait_event("bind")["status"] == p.ESME_RINVPASWD


def test_no_smsc_listening_is_down(tmp_path):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = SmppTransport(SmppSettings(host="127.0.0.1", port=port, system_id="smss",
                                           spool=str(tmp_path / "inbox"), response_timeout=2))
    with pytest.raises(SendFailed) as caught:
        transport.open()
    assert caught.value.kind == DOWN


def test_transmitter_and_receiver_binds(smsc, tmp_path):
    with opened(smsc, tmp_path, bind="transmitter+receiver") as transport:
        commands = sorted(e["command"] for e in smsc.wait_events("bind", 2))
        assert commands == ["bind_receiver", "bind_transmitter"]
        transport.send(PHONE, "over the transmitter")
        submit = smsc.wait_event("submit_sm")
        transmitter = next(e["session"] for e in smsc.wait_events("bind", 2)
                           if e["command"] == "bind_transmitter")
        assert submit["session"] == transmitter
        assert smsc.deliver([mo(ucs2("over the receiver"))])["statuses"] == [0]
        [message] = fetch_until(transport, 1)
        assert message.text == "over the receiver"


# -- sending

def test_gsm7_ucs2_and_an_alphanumeric_sender(smsc, tmp_path):
    with opened(smsc, tmp_path, source_addr="Shop", source_addr_ton=5,
                source_addr_npi=0) as transport:
        gsm = transport.send(PHONE, "Cena 10€ {ok} @home")
        czech = transport.send(PHONE, "Příliš žluťoučký kůň")
    first, second = smsc.wait_events("submit_sm", 2)
    assert (first["data_coding"], first["text"], gsm.encoding) == (0, "Cena 10€ {ok} @home", "gsm7")
    assert (second["data_coding"], second["text"], czech.encoding) == (
        8, "Příliš žluťoučký kůň", "ucs2")
    assert (first["source_addr"], first["source_addr_ton"], first["source_addr_npi"]) == (
        "Shop", 5, 0)
    assert (first["destination_addr"], first["dest_addr_ton"], first["dest_addr_npi"]) == (
        "420608337726", 1, 1)
    assert first["registered_delivery"] == 1
    assert gsm.references == (first["message_id"].lower(),)


def test_transliteration_goes_as_the_parts_were_counted(smsc, tmp_path):
    """[messages] transliterate = yes: the SMSC gets GSM-7 plain letters, in the parts
    smss.spooler.validate stored in msg (and the web form's counter showed)."""
    from smss import transports
    from smss.config import parse_text
    from smss.spooler.protocol import Record
    from smss.spooler.validate import Rules, check

    config = parse_text(f"[dispatcher]\ntransport = smpp\nlockfile = {tmp_path}/lock\n"
                        f"[messages]\ntransliterate = yes\n"
                        f"[smpp]\nurl = {smsc.url}\nspool = {tmp_path}/inbox\n")
    text = "Příliš žluťoučký kůň úpěl ďábelské ódy. " * 3  # 120 characters: 2 UCS2 SMS
    counted = check(Record(PHONE, text), Rules.from_config(config)).parts
    transport = transports.from_config(config)
    transport.open()
    try:
        sent = transport.send(PHONE, text)
    finally:
        transport.close()
    [submit] = smsc.wait_events("submit_sm", 1)
    assert (submit["data_coding"], submit["text"]) == (
        0, "Prilis zlutoucky kun upel dabelské ody. " * 3)  # é is GSM-7
    assert sent.parts == counted == 1 and sent.encoding == "gsm7"


@pytest.mark.parametrize("mode", ["udh", "sar", "payload"])
def test_long_messages(smsc, tmp_path, mode):
    text = "Dlouhá zpráva: " + "ěščřžýáíé " * 20
    with opened(smsc, tmp_path, long_messages=mode) as transport:
        sent = transport.send(PHONE, text)
    submits = smsc.wait_events("submit_sm", 1 if mode == "payload" else 4)
    assert sent.parts == 4
    if mode == "payload":
        [submit] = submits
        assert submit["payload_text"] == text and len(sent.references) == 1
        return
    assert len(submits) == 4 and len(sent.references) == 4
    assert "".join(s["text"] for s in submits) == text
    if mode == "udh":
        assert [s["udh"][0][-4:] for s in submits] == ["0401", "0402", "0403", "0404"]
        assert all(s["esm_class"] & 0x40 for s in submits)
    else:
        assert [s["tlvs"]["sar_segment_seqnum"] for s in submits] == [1, 2, 3, 4]
        assert len({s["tlvs"]["sar_msg_ref_num"] for s in submits}) == 1


@pytest.mark.parametrize("window", [1, 4])
def test_window_limits_submits_in_flight(smsc, tmp_path, window):
    smsc.set(respDelayMs=60)
    items = [(n, PHONE, f"message {n}") for n in range(12)]
    with opened(smsc, tmp_path, window=window) as transport:
        outcomes = dict(transport.send_many(items))
    assert sorted(outcomes) == list(range(12))
    assert all(isinstance(o, Sent) for o in outcomes.values())
    assert len({o.references[0] for o in outcomes.values()}) == 12
    most = smsc.stats()["max_outstanding"]
    assert most == 1 if window == 1 else 2 <= most <= window


def test_several_binds_send_at_once_each_with_its_window(smsc, tmp_path):
    """binds = 3, window = 4: three transceivers bound, the submits spread over them,
    up to 12 in flight at once (4 per session); the state names them."""
    smsc.set(respDelayMs=60)
    items = [(n, PHONE, f"message {n}") for n in range(36)]
    with opened(smsc, tmp_path, window=4, binds=3) as transport:
        assert transport.window == 12
        assert transport.state().registration == "trx 3/3 up"
        outcomes = dict(transport.send_many(items))
    assert sorted(outcomes) == list(range(36))
    assert all(isinstance(o, Sent) for o in outcomes.values())
    binds = smsc.events("bind")
    assert len(binds) == 3 and {b["command"] for b in binds} == {"bind_transceiver"}
    by_session = collections.Counter(e["session"] for e in smsc.wait_events("submit_sm", 36))
    assert len(by_session) == 3 and min(by_session.values()) >= 6, by_session
    assert 4 < smsc.stats()["max_outstanding"] <= 12


def test_transmitters_beside_one_receiver(smsc, tmp_path):
    with opened(smsc, tmp_path, bind="transmitter+receiver", binds=2) as transport:
        assert transport.state().registration == "tx 2/2 up, rx up"
        assert isinstance(transport.send(PHONE, "hello"), Sent)
    commands = collections.Counter(b["command"] for b in smsc.events("bind"))
    assert commands == {"bind_transmitter": 2, "bind_receiver": 1}


def test_a_dropped_bind_is_bound_again_while_the_others_go_on(smsc, tmp_path):
    """Every 8th PDU the SMSC reads cuts its session: with two binds each drop costs
    only what was in flight on that session (maybe sent), the batch goes on, and every
    message the SMSC took is taken once."""
    smsc.set(dropEvery=8)
    items = [(n, PHONE, f"m{n:02}") for n in range(40)]
    with opened(smsc, tmp_path, window=5, binds=2) as transport:
        outcomes = dict(transport.send_many(items))
    assert sorted(outcomes) == list(range(40))  # no DOWN: every drop was bound over
    taken = taken_texts(smsc, sum(isinstance(o, Sent) for o in outcomes.values()))
    for key, outcome in outcomes.items():
        if isinstance(outcome, Sent):
            assert taken[f"m{key:02}"] == 1 and outcome.references
        else:
            assert outcome.kind == TEMPORARY and outcome.maybe_sent
            assert taken[f"m{key:02}"] == 0
    assert smsc.events("drop")


def test_a_bind_refused_again_leaves_the_batch_to_the_other(smsc, tmp_path):
    """One of two sessions is cut and the SMSC then refuses binds: that bind leaves the
    batch, the other sends the rest."""
    smsc.set(respDelayMs=200)
    items = [(n, PHONE, f"m{n}") for n in range(12)]
    with opened(smsc, tmp_path, window=2, binds=2) as transport:
        def cut_one():
            first = smsc.wait_event("submit_sm")
            smsc.set(bindStatus=p.ESME_RSYSERR)
            smsc.command("drop_session", session=first["session"])

        threading.Thread(target=cut_one).start()
        outcomes = dict(transport.send_many(items))
    assert sorted(outcomes) == list(range(12))
    lost = [k for k, o in outcomes.items() if not isinstance(o, Sent)]
    assert 1 <= len(lost) <= 2  # in flight on the cut session
    assert all(outcomes[k].kind == TEMPORARY and outcomes[k].maybe_sent for k in lost)
    assert [b["status"] for b in smsc.events("bind")] == [0, 0, p.ESME_RSYSERR]


def test_throughput_limit_spaces_submits(smsc, tmp_path):
    with opened(smsc, tmp_path, throughput=20.0) as transport:
        start = time.monotonic()
        outcomes = list(transport.send_many([(n, PHONE, "x") for n in range(6)]))
        elapsed = time.monotonic() - start
    assert len(outcomes) == 6
    assert elapsed >= 5 / 20.0  # a lower bound: a slow machine only makes it longer


def test_throttled_submits_are_retried(smsc, tmp_path):
    smsc.set(throttle=3)
    with opened(smsc, tmp_path) as transport:
        sent = transport.send(PHONE, "patience")
    submits = smsc.wait_events("submit_sm", 4)
    assert [e["status"] for e in submits] == [p.ESME_RTHROTTLED] * 3 + [0]
    assert sent.references == (submits[-1]["message_id"].lower(),)


def test_throttled_for_too_long_is_temporary(smsc, tmp_path):
    smsc.set(throttle=1000)
    with opened(smsc, tmp_path, throttle_delay=0.001) as transport:
        with pytest.raises(SendFailed) as caught:
            transport.send(PHONE, "no way")
    assert caught.value.kind == TEMPORARY and not caught.value.maybe_sent


def taken_texts(smsc, count: int) -> collections.Counter:
    """How often the SMSC took each text, once it reported ``count`` taken submit_sm (its
    reports on stdout may lag behind its answers on the socket)."""
    smsc.wait_event("submit_sm", lambda e: e["status"] == 0, count=count)
    return collections.Counter(e["text"] for e in smsc.events("submit_sm") if e["status"] == 0)


def pauses(caplog) -> list:
    """The throttle pauses the transport logged, in seconds."""
    import re

    return [float(m.group(1)) for m in (re.search(r"throttled by the SMSC; pausing ([\d.]+)s",
                                                  r.getMessage()) for r in caplog.records) if m]


def test_one_throttle_episode_pauses_once(smsc, tmp_path, caplog):
    """Five submits in flight are all refused: one pause, not five doubling ones (Kannel
    pauses one second after ESME_RTHROTTLED and goes on, gw/smsc/smsc_smpp.c)."""
    caplog.set_level(logging.INFO, "smss.transports.smpp")
    smsc.set(throttle=5, respDelayMs=20)
    items = [(n, PHONE, f"m{n}") for n in range(5)]
    with opened(smsc, tmp_path, window=5, throttle_delay=0.2) as transport:
        outcomes = dict(transport.send_many(items))
    assert all(isinstance(o, Sent) for o in outcomes.values()) and len(outcomes) == 5
    assert pauses(caplog) == [0.2]
    assert taken_texts(smsc, 5) == {f"m{n}": 1 for n in range(5)}


def test_the_pause_grows_only_while_throttling_repeats_after_resuming(smsc, tmp_path, caplog):
    caplog.set_level(logging.INFO, "smss.transports.smpp")
    smsc.set(throttle=7, respDelayMs=20)  # the five in flight, then two of the next round
    with opened(smsc, tmp_path, window=5, throttle_delay=0.2) as transport:
        first = dict(transport.send_many([(n, PHONE, f"m{n}") for n in range(5)]))
        assert pauses(caplog) == [0.2, 0.4]  # nothing taken in between: doubled
        smsc.set(throttle=1)
        second = dict(transport.send_many([(5, PHONE, "m5")]))
    assert pauses(caplog) == [0.2, 0.4, 0.2]  # the SMSC took some since: back to the start
    assert all(isinstance(o, Sent) for o in [*first.values(), *second.values()])


@pytest.mark.parametrize("error_share", [0, 0.2])
def test_a_per_second_limit_is_learned_not_fought(smsc, tmp_path, caplog, error_share):
    """An SMSC that takes 5 submit_sm a second and throttles the rest (an account's TPS
    limit; Jasmin's smpps_throughput), a fifth of them answered ESME_RSYSERR: every
    message reaches it once, the pause never doubles (sending resumed each time and the
    SMSC took some), and there are few pauses: the rate is learned.  How long it takes
    is printed by bench/smpp.py --throttled."""
    caplog.set_level(logging.INFO, "smss.transports.smpp")
    smsc.set(rate=5, errorShare=error_share)
    items = [(n, PHONE, f"m{n:02}") for n in range(20)]
    with opened(smsc, tmp_path, window=10, throttle_delay=1.0) as transport:
        outcomes = dict(transport.send_many(items))
        learned = transport.pacer.rate
    assert sorted(outcomes) == list(range(20))
    taken = taken_texts(smsc, sum(isinstance(o, Sent) for o in outcomes.values()))
    if error_share:
        smsc.wait_event("submit_sm", lambda e: e["status"] == p.ESME_RSYSERR,
                        count=sum(not isinstance(o, Sent) for o in outcomes.values()))
    refused = collections.Counter(e["text"] for e in smsc.events("submit_sm")
                                  if e["status"] == p.ESME_RSYSERR)
    for key, outcome in outcomes.items():
        text = f"m{key:02}"
        if isinstance(outcome, Sent):
            assert taken[text] == 1 and not refused[text]
        else:  # ESME_RSYSERR: the dispatcher retries it later
            assert outcome.kind == TEMPORARY and not outcome.maybe_sent
            assert refused[text] == 1 and not taken[text]
    assert sum(refused.values()) == round(20 * error_share)
    # a pause per episode, never doubled, and few episodes: the rate was learned (a
    # window of 10 against 5 a second without it throttles every second)
    assert set(pauses(caplog)) == {1.0} and 1 <= len(pauses(caplog)) <= 3
    assert learned is not None


def test_a_stop_request_ends_a_throttle_pause(smsc, tmp_path):
    smsc.set(throttle=1)
    stop = threading.Event()
    outcomes = []
    with opened(smsc, tmp_path, window=1, throttle_delay=600.0) as transport:
        transport.stopping = stop.is_set
        worker = threading.Thread(target=lambda: outcomes.extend(transport.send_many(
            [(n, PHONE, f"m{n}") for n in range(3)])))
        worker.start()
        smsc.wait_event("submit_sm")  # refused: a 600 s pause begins
        stop.set()
        worker.join(30)
        assert not worker.is_alive()
    assert outcomes == []  # nothing was taken: every message stays queued, no attempt
    assert len(smsc.events("submit_sm")) == 1


@pytest.mark.parametrize("status, kind", [
    (p.ESME_RINVDSTADR, PERMANENT), (p.ESME_RSYSERR, TEMPORARY), (p.ESME_RMSGQFUL, TEMPORARY),
    (p.ESME_RINVSRCADR, OPERATOR), (0x0401, TEMPORARY),
])
def test_refusals_map_to_kinds(smsc, tmp_path, status, kind):
    smsc.set(failStatus=status, failCount=1)
    with opened(smsc, tmp_path) as transport:
        with pytest.raises(SendFailed) as caught:
            transport.send(PHONE, "refused")
    assert caught.value.kind == kind and not caught.value.maybe_sent


def test_operator_refusal_ends_a_batch_after_what_was_in_flight(smsc, tmp_path):
    smsc.set(failStatus=p.ESME_RINVSRCADR, failCount=1)
    items = [(n, PHONE, f"m{n}") for n in range(5)]
    with opened(smsc, tmp_path, window=1) as transport:
        outcomes = list(transport.send_many(items))
    assert [(key, o.kind) for key, o in outcomes] == [(0, OPERATOR)]
    smsc.reset()
    smsc.set(failStatus=p.ESME_RINVSRCADR, failCount=1, respDelayMs=30)
    with opened(smsc, tmp_path, window=3) as transport:
        outcomes = list(transport.send_many(items))
    *rest, (last_key, last) = outcomes
    assert last_key == 0 and last.kind == OPERATOR
    assert [key for key, _ in rest] == [1, 2] and all(isinstance(o, Sent) for _, o in rest)


def test_a_refused_second_part_fails_with_the_first_parts_reference(smsc, tmp_path):
    smsc.set(failStatus=p.ESME_RX_P_APPN, failOn=[2])
    with opened(smsc, tmp_path, window=1) as transport:
        with pytest.raises(SendFailed) as caught:
            transport.send(PHONE, "y" * 300)
    first, second = smsc.wait_events("submit_sm", 2)
    assert caught.value.kind == PERMANENT
    assert caught.value.sent_references == (first["message_id"].lower(),)
    assert second["status"] == p.ESME_RX_P_APPN


def test_response_timeout_is_maybe_sent_and_the_next_send_binds_again(smsc, tmp_path):
    smsc.set(silent=1)
    with opened(smsc, tmp_path, response_timeout=0.5) as transport:
        with pytest.raises(SendFailed) as caught:
            transport.send(PHONE, "into the void")
        assert caught.value.kind == TEMPORARY and caught.value.maybe_sent
        assert "no submit_sm_resp" in caught.value.reason
        sent = transport.send(PHONE, "again")
    assert len(smsc.wait_events("bind", 2)) == 2
    assert sent.references == (smsc.wait_events("submit_sm", 2)[-1]["message_id"].lower(),)


def test_drop_with_submits_in_flight_binds_again_and_goes_on(smsc, tmp_path):
    smsc.set(respDelayMs=1500)
    items = [(n, PHONE, f"m{n}") for n in range(4)]
    with opened(smsc, tmp_path, window=2) as transport:
        threading.Thread(target=lambda: (smsc.wait_event("submit_sm", count=2),
                                         smsc.command("drop"))).start()
        outcomes = list(transport.send_many(items))
    (k0, first), (k1, second), *rest = outcomes
    assert {k0, k1} == {0, 1}  # in flight when the link went: they may have been sent
    assert all(o.kind == TEMPORARY and o.maybe_sent for o in (first, second))
    assert [key for key, _ in rest] == [2, 3] and all(isinstance(o, Sent) for _, o in rest)
    assert len(smsc.wait_events("bind", 2)) == 2  # bound again at once, in the batch
    assert [e["text"] for e in smsc.wait_events("submit_sm", 4)] == ["m0", "m1", "m2", "m3"]


def test_drop_with_the_rebind_refused_ends_the_batch(smsc, tmp_path):
    smsc.set(respDelayMs=1500)
    items = [(n, PHONE, f"m{n}") for n in range(4)]
    with opened(smsc, tmp_path, window=2) as transport:
        def drop():
            smsc.wait_event("submit_sm", count=2)
            smsc.set(bindStatus=p.ESME_RSYSERR)  # the SMSC takes no session now
            smsc.command("drop")

        threading.Thread(target=drop).start()
        outcomes = list(transport.send_many(items))
        assert "next attempt in" in failure(lambda: transport.send(PHONE, "x")).reason
    *in_flight, (last_key, last) = outcomes
    assert sorted(key for key, _ in in_flight) == [0, 1]
    assert all(o.kind == TEMPORARY and o.maybe_sent for _, o in in_flight)
    assert last_key == 2 and last.kind == DOWN and not last.maybe_sent  # 3: never yielded
    assert "ESME_RSYSERR" in last.reason
    assert len(smsc.wait_events("submit_sm", 2)) == 2


def test_drop_every_eighth_pdu_each_message_taken_at_most_once(smsc, tmp_path):
    """dropEvery: the SMSC cuts the connection instead of processing every 8th PDU it
    reads, so it never takes that submit_sm; what was in flight may have gone."""
    smsc.set(dropEvery=8)
    items = [(n, PHONE, f"m{n:02}") for n in range(20)]
    with opened(smsc, tmp_path, window=10) as transport:
        outcomes = dict(transport.send_many(items))
    assert sorted(outcomes) == list(range(20))  # no DOWN: every drop was bound over
    taken = taken_texts(smsc, sum(isinstance(o, Sent) for o in outcomes.values()))
    for key, outcome in outcomes.items():
        if isinstance(outcome, Sent):
            assert taken[f"m{key:02}"] == 1 and outcome.references
        else:
            assert outcome.kind == TEMPORARY and outcome.maybe_sent
            assert taken[f"m{key:02}"] == 0  # cut before the SMSC took it
    drops = smsc.events("drop")
    # bound again after each drop that left something to send (a last drop that only
    # cut answers leaves the binding to the next send or fetch)
    assert drops and len(drops) <= len(smsc.wait_events("bind", len(drops))) <= len(drops) + 1


def test_a_submit_that_never_reached_the_socket_is_submitted_again(smsc, tmp_path):
    """An SMSC that hangs reads nothing: what we write piles up in the TCP buffers, and
    the rest of the window stays in our own.  When the link goes, the submits that were
    written may have gone (an attempt); the ones still in our buffer cannot have, and go
    again after the new bind, costing nothing."""
    smsc.set(stopReading=True)
    text = "x" * 15000  # message_payload: 15 kB per submit_sm (node-smpp takes 16 kB PDUs)
    count = 800  # 12 MB: loopback TCP buffers took 4 MB here (Linux's tcp_wmem maximum)
    items = [(n, PHONE, f"{n:04}{text}") for n in range(count)]
    with opened(smsc, tmp_path, window=count, long_messages="payload",
                response_timeout=60.0) as transport:
        link = transport._links["transceiver"]
        threading.Thread(target=lambda: (smsc.wait_event("stopped_reading"),
                                         until(lambda: _stalled(link), 60),
                                         smsc.command("drop"))).start()
        outcomes = dict(transport.send_many(items))
    sent = [key for key, o in outcomes.items() if isinstance(o, Sent)]
    maybe = [key for key, o in outcomes.items() if not isinstance(o, Sent)]
    assert sorted(sent + maybe) == list(range(count))
    assert all(outcomes[key].kind == TEMPORARY and outcomes[key].maybe_sent for key in maybe)
    assert sent and maybe  # both kinds: written (maybe sent) and never written (sent now)
    smsc.wait_event("submit_sm", count=len(sent))  # its reports may lag behind its answers
    taken = collections.Counter(e["payload_text"][:4] for e in smsc.events("submit_sm"))
    assert all(taken[f"{key:04}"] == 1 for key in sent)
    assert all(taken[f"{key:04}"] == 0 for key in maybe)


def _stalled(link) -> bool:
    """The peer stopped reading: our write buffer is not draining."""
    before = link._flushed
    time.sleep(0.5)
    return link._flushed == before and len(link._wbuf) > 0


def test_drop_while_idle_then_send_binds_again(smsc, tmp_path):
    with opened(smsc, tmp_path) as transport:
        transport.send(PHONE, "before")
        smsc.command("drop")
        until(lambda: "down" in transport.state().registration)
        transport.send(PHONE, "after")
    assert [e["text"] for e in smsc.wait_events("submit_sm", 2)] == ["before", "after"]
    assert len(smsc.wait_events("bind", 2)) == 2


# -- receipts

def sent_and_report(smsc, tmp_path, **overrides):
    with opened(smsc, tmp_path, **overrides) as transport:
        sent = transport.send(PHONE, "track me")
        [report] = fetch_until(transport, 1, "reports")
        transport.delete(report.handles)
        assert transport.fetch().reports == []
    return sent, report


@pytest.mark.parametrize("id_format, text_id, tlv", [
    ("hex", "same", True), ("hex0", "same", False), ("hex0", "lower", False),
    ("dec0", "dec", False), ("hex", "dec", False), ("hex0", "dec0", False),
])
def test_receipts_match_whatever_form_the_id_takes(smsc, tmp_path, id_format, text_id, tlv):
    smsc.set(receipts="after", idFormat=id_format, receiptTextId=text_id, receiptTlv=tlv)
    sent, report = sent_and_report(smsc, tmp_path)
    assert report.reference == sent.references[0]
    assert (report.delivered, report.status_code, report.recipient) == (True, 2, PHONE)


@pytest.mark.parametrize("form", ["spec", "dlvr", "upper", "seconds", "minimal"])
@pytest.mark.parametrize("id_format, text_id", [("hex0", "same"), ("dec0", "dec0")])
def test_receipt_texts_in_every_form_without_tlvs(smsc, tmp_path, form, id_format, text_id):
    """The receipt text alone names the message and its state, in SMPP 3.4 Appendix B's
    form and the variants SMSCs write (tests/smsc/smsc.js receiptFor)."""
    smsc.set(receipts="after", idFormat=id_format, receiptTextId=text_id, receiptTlv=False,
             receiptForm=form, receiptStat="UNDELIV")
    sent, report = sent_and_report(smsc, tmp_path)
    assert report.reference == sent.references[0]
    assert (report.delivered, report.status_code) == (False, 5)


def test_configured_receipt_id_format(smsc, tmp_path):
    smsc.set(receipts="after", idFormat="hex", receiptTextId="dec0", receiptTlv=False)
    sent, report = sent_and_report(smsc, tmp_path, receipt_id_format="decimal")
    assert report.reference == sent.references[0]


def test_a_learned_receipt_id_format_is_remembered_for_later_processes(smsc, tmp_path):
    smsc.set(receipts="after", idFormat="hex", receiptTextId="dec", receiptTlv=False)
    sent_and_report(smsc, tmp_path)  # this one teaches it
    with opened(smsc, tmp_path, bind="transmitter") as transport:
        later = transport.send(PHONE, "receipt for another process")
    with opened(smsc, tmp_path) as transport:  # knows no id from submit_sm_resp
        [report] = fetch_until(transport, 1, "reports")
    assert report.reference == later.references[0]


def test_failed_receipt(smsc, tmp_path):
    smsc.set(receipts="after", receiptStat="UNDELIV")
    _, report = sent_and_report(smsc, tmp_path)
    assert (report.delivered, report.status_code) == (False, 5)


def test_receipt_before_its_submit_sm_resp_is_held_until_the_send_is_answered(smsc, tmp_path):
    smsc.set(receipts="before", respDelayMs=1500)
    with opened(smsc, tmp_path) as transport:
        result = {}
        worker = threading.Thread(target=lambda: result.update(sent=transport.send(PHONE, "x")))
        worker.start()
        smsc.wait_event("deliver_sm_resp")  # the receipt is stored; the submit is unanswered
        assert not result and transport.fetch().reports == []
        worker.join(30)
        [report] = fetch_until(transport, 1, "reports")
    assert report.reference == result["sent"].references[0]


def test_receipts_wait_at_the_smsc_for_the_next_bind(smsc, tmp_path):
    smsc.set(receipts="after")
    with opened(smsc, tmp_path, bind="transmitter") as transport:
        sent = transport.send(PHONE, "receipt later")
        assert transport.fetch().reports == []
    until(lambda: smsc.stats()["waiting"].get("smss"))
    with opened(smsc, tmp_path) as transport:
        [report] = fetch_until(transport, 1, "reports")
    assert report.reference == sent.references[0]


# -- mobile-originated messages

def test_goip_ucs2_gsm7_and_latin1(smsc, tmp_path):
    with opened(smsc, tmp_path) as transport:
        statuses = smsc.deliver([
            mo(ucs2("Привет, это GoIP")),
            mo(bytes([0x48, 0x1B, 0x65, 0x20, 0x00]).hex(), data_coding=0),
            mo("café".encode("latin-1").hex(), data_coding=3),
        ])["statuses"]
        assert statuses == [0, 0, 0]
        messages = fetch_until(transport, 3)
        assert [m.text for m in messages] == ["Привет, это GoIP", "H€ @", "café"]
        assert all(m.phone == "+420608337726" and m.error is None for m in messages)
        transport.delete([h for m in messages for h in m.handles])
        assert transport.fetch().messages == []


def test_multipart_ucs2_out_of_order_and_sar(smsc, tmp_path):
    text = "Dobrý den, " + "😀" + " tohle je dlouhá zpráva " * 6
    data = text.encode("utf-16-be")
    chunks = [data[i:i + 134] for i in range(0, len(data), 134)]
    udh = [bytes([6, 8, 4, 0x30, 0x39, len(chunks), n]).hex() for n in range(1, len(chunks) + 1)]
    parts = [mo(udh[n] + chunks[n].hex(), esm_class=0x40) for n in range(len(chunks))]
    sar = [mo(chunk.hex(), sar_msg_ref_num=7, sar_total_segments=len(chunks),
              sar_segment_seqnum=n + 1) for n, chunk in enumerate(chunks)]
    with opened(smsc, tmp_path) as transport:
        smsc.deliver(list(reversed(parts)) + sar[1:])
        [first] = transport.fetch().messages  # the SAR one lacks its first part
        transport.delete(first.handles)
        smsc.deliver(sar[:1])
        [second] = fetch_until(transport, 1)
    assert len(chunks) == 3 and first.text == second.text == text
    assert first.parts == second.parts == 3 and first.references == (0x3039,)


def test_wait_wakes_on_an_incoming_message(smsc, tmp_path):
    with opened(smsc, tmp_path) as transport:
        assert transport.wait(0.05) is False
        threading.Timer(0.2, lambda: smsc.deliver([mo(ucs2("wake up"))])).start()
        assert transport.wait(20) is True
        [message] = transport.fetch().messages
        assert message.text == "wake up"


def test_stored_messages_survive_the_process(smsc, tmp_path):
    with opened(smsc, tmp_path) as transport:
        smsc.deliver([mo(ucs2("keep me"))])
        fetch_until(transport, 1)  # fetched but never deleted: the pass died before
    with opened(smsc, tmp_path) as transport:
        [message] = transport.fetch().messages
        assert message.text == "keep me"
        transport.delete(message.handles)
    with opened(smsc, tmp_path) as transport:
        assert transport.fetch().messages == []


def test_messages_sent_while_unbound_arrive_after_the_next_bind(smsc, tmp_path):
    assert smsc.deliver([mo(ucs2("while you were away"))])["queued"] == 1
    with opened(smsc, tmp_path) as transport:
        [message] = fetch_until(transport, 1)
    assert message.text == "while you were away"


# -- keeping the session alive

def test_enquire_link_both_ways(smsc, tmp_path):
    with opened(smsc, tmp_path, enquire_link_interval=0.2) as transport:
        assert smsc.command("enquire")["statuses"] == [0]
        smsc.wait_event("enquire_link")
        assert transport.state().registration == "trx up"


def test_unanswered_enquire_link_drops_the_link_and_wait_binds_again(smsc, tmp_path):
    smsc.set(answerEnquire=False)
    with opened(smsc, tmp_path, enquire_link_interval=0.1, response_timeout=0.3) as transport:
        until(lambda: "down" in transport.state().registration)
        assert "no enquire_link_resp" in transport.last_drop
        smsc.set(answerEnquire=True)
        until(lambda: (transport.wait(0.05), len(smsc.events("bind")) >= 2)[1])
        until(lambda: transport.state().registration == "trx up")
        transport.send(PHONE, "still here")


def test_smsc_unbind_then_bind_again(smsc, tmp_path):
    with opened(smsc, tmp_path) as transport:
        assert smsc.command("unbind")["statuses"] == [0]
        until(lambda: "down" in transport.state().registration)
        transport.send(PHONE, "rebound")
    assert len(smsc.wait_events("bind", 2)) == 2


def test_reopen_delay_is_at_once_then_reconnect_delay_doubling_to_the_maximum(tmp_path):
    """What check_and_send --loop waits before opening the transport again after the
    ``failures``-th failure in a row (Transport.reopen_delay)."""
    transport = SmppTransport(SmppSettings(host="127.0.0.1", system_id="smss",
                                           spool=str(tmp_path / "inbox"), reconnect_delay=0.5,
                                           reconnect_max_delay=3.0))
    assert [transport.reopen_delay(n) for n in range(1, 7)] == [0.0, 0.5, 1.0, 2.0, 3.0, 3.0]
