"""The sans-I/O ESME session: what it answers by itself, what it hands out, one byte at a time."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smss.smpp import pdu as p
from smss.smpp.pdu import Pdu
from smss.smpp.session import (
    BOUND,
    CLOSED,
    Incoming,
    Notice,
    PeerUnbound,
    ProtocolViolation,
    Response,
    Session,
)


def feed_bytewise(session: Session, data: bytes):
    events = []
    for octet in data:
        events.extend(session.receive_data(bytes((octet,))))
    return events


def bound_session() -> Session:
    session = Session()
    sequence = session.send_request(Pdu(p.BIND_TRANSCEIVER, params={"system_id": "a"}))
    session.data_to_send()
    resp = p.encode(Pdu(p.BIND_TRANSCEIVER | p.RESPONSE, sequence, params={"system_id": "S"}))
    [event] = feed_bytewise(session, resp)
    assert isinstance(event, Response) and event.status == 0
    assert session.state == BOUND
    return session


def test_bind_and_submit_are_matched_by_sequence():
    session = bound_session()
    first = session.send_request(Pdu(p.SUBMIT_SM, params={"short_message": b"a"}))
    second = session.send_request(Pdu(p.SUBMIT_SM, params={"short_message": b"b"}))
    sent = session.data_to_send()
    assert [p.decode(f).sequence for f in p.Framer().feed(sent)] == [first, second]
    answers = (p.encode(Pdu(p.SUBMIT_SM | p.RESPONSE, second, params={"message_id": "2"}))
               + p.encode(Pdu(p.SUBMIT_SM | p.RESPONSE, first, p.ESME_RTHROTTLED)))
    events = feed_bytewise(session, answers)
    assert [(e.request.sequence, e.status) for e in events] == [(second, 0),
                                                                (first, p.ESME_RTHROTTLED)]
    assert session.outstanding == {}


def test_enquire_link_is_answered_without_an_event():
    session = bound_session()
    assert feed_bytewise(session, p.encode(Pdu(p.ENQUIRE_LINK, 77))) == []
    answer = p.decode(session.data_to_send())
    assert (answer.command_id, answer.sequence, answer.status) == (
        p.ENQUIRE_LINK | p.RESPONSE, 77, 0)


def test_peer_unbind_is_answered_and_closes():
    session = bound_session()
    assert feed_bytewise(session, p.encode(Pdu(p.UNBIND, 5))) == [PeerUnbound()]
    assert p.decode(session.data_to_send()).command_id == p.UNBIND | p.RESPONSE
    assert session.state == CLOSED
    with pytest.raises(p.PduError):
        session.send_request(Pdu(p.ENQUIRE_LINK))


def test_deliver_sm_goes_to_the_application_and_is_answered_by_it():
    session = bound_session()
    frame = p.encode(Pdu(p.DELIVER_SM, 9, params={"short_message": b"hi"}))
    [event] = feed_bytewise(session, frame)
    assert isinstance(event, Incoming) and event.pdu.get("short_message") == b"hi"
    assert event.frame == frame and session.data_to_send() == b""
    session.respond(event.command_id, event.sequence)
    answer = p.decode(session.data_to_send())
    assert (answer.command_id, answer.sequence, answer.get("message_id")) == (
        p.DELIVER_SM | p.RESPONSE, 9, "")


def test_undecodable_deliver_sm_is_still_handed_out_with_its_octets():
    session = bound_session()
    body = b"\0\0\0"  # ends inside the mandatory fields
    frame = struct.pack(">IIII", 16 + len(body), p.DELIVER_SM, 0, 4) + body
    [event] = session.receive_data(frame)
    assert isinstance(event, Incoming) and event.pdu is None and event.frame == frame
    assert event.error is not None


def test_unknown_request_gets_generic_nack_and_generic_nack_answers_a_request():
    session = bound_session()
    [notice] = session.receive_data(struct.pack(">IIII", 16, 0x00000222, 0, 8))
    assert isinstance(notice, Notice)
    nack = p.decode(session.data_to_send())
    assert (nack.command_id, nack.status, nack.sequence) == (p.GENERIC_NACK, p.ESME_RINVCMDID, 8)
    sequence = session.send_request(Pdu(p.SUBMIT_SM))
    [event] = session.receive_data(p.encode(Pdu(p.GENERIC_NACK, sequence, p.ESME_RINVCMDLEN)))
    assert isinstance(event, Response) and event.request.command_id == p.SUBMIT_SM
    assert event.status == p.ESME_RINVCMDLEN


def test_stray_response_is_a_notice():
    session = bound_session()
    [event] = session.receive_data(p.encode(Pdu(p.SUBMIT_SM | p.RESPONSE, 999,
                                                  params={"message_id": "x"})))
    assert isinstance(event, Notice)


def test_broken_length_is_a_protocol_violation():
    session = bound_session()
    with pytest.raises(ProtocolViolation):
        session.receive_data(struct.pack(">I", 3) + bytes(12))
    assert session.state == CLOSED


def test_sequence_numbers_wrap_and_skip_outstanding():
    session = Session()
    session._sequence = 0x7FFFFFFE
    first = session.send_request(Pdu(p.ENQUIRE_LINK))
    second = session.send_request(Pdu(p.ENQUIRE_LINK))
    assert (first, second) == (0x7FFFFFFF, 1)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=10))
def test_random_bytes_never_raise_anything_but_protocol_violation(chunks):
    session = bound_session()
    try:
        for chunk in chunks:
            session.receive_data(chunk)
            session.data_to_send()
    except ProtocolViolation:
        pass


_commands = st.one_of(st.sampled_from(sorted(p.COMMAND_NAMES)), st.integers(0, 0xFFFFFFFF))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(_commands, st.integers(0, 0xFFFF), st.binary(max_size=60)),
                max_size=6))
def test_random_well_framed_pdus_never_crash_the_session(frames):
    session = bound_session()
    for _ in range(3):
        session.send_request(Pdu(p.SUBMIT_SM))
    for command, status, body in frames:
        data = struct.pack(">IIII", 16 + len(body), command, status, 1) + body
        for event in session.receive_data(data):
            assert isinstance(event, (Response, Incoming, Notice, PeerUnbound))
        p.Framer().feed(session.data_to_send())  # whatever it answers is well framed
