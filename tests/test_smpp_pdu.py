"""The SMPP PDU codec: known octets, round trips, framing one byte at a time, and random
bytes that must never raise anything but PduError."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smss.smpp import pdu as p
from smss.smpp.pdu import Framer, FramingError, Pdu, PduError

# bind_transceiver, system_id "esme", password "pw", system_type "", version 3.4, TON/NPI 0,
# address_range "": assembled by hand from SMPP 3.4 section 4.1.5
BIND_TRX = bytes.fromhex(
    "0000001d" "00000009" "00000000" "00000001"
    "65736d6500" "707700" "00" "34" "00" "00" "00")


def test_bind_transceiver_octets_by_hand():
    pdu = Pdu(p.BIND_TRANSCEIVER, 1, params={"system_id": "esme", "password": "pw",
                                             "interface_version": 0x34})
    assert p.encode(pdu) == BIND_TRX
    decoded = p.decode(BIND_TRX)
    assert decoded.name == "bind_transceiver"
    assert decoded.params == {"system_id": "esme", "password": "pw", "system_type": "",
                              "interface_version": 0x34, "addr_ton": 0, "addr_npi": 0,
                              "address_range": ""}


def test_submit_sm_with_tlvs_round_trip_and_layout():
    pdu = Pdu(p.SUBMIT_SM, 7, params={
        "source_addr_ton": 5, "source_addr": "Shop", "dest_addr_ton": 1, "dest_addr_npi": 1,
        "destination_addr": "420608337726", "esm_class": 0x40, "registered_delivery": 1,
        "data_coding": 8, "short_message": b"\x05\x00\x03\x01\x02\x01\x00A"},
        tlvs=[(p.TLV_SAR_MSG_REF_NUM, b"\x00\x2a")])
    data = p.encode(pdu)
    length, command, status, sequence = struct.unpack(">IIII", data[:16])
    assert (length, command, status, sequence) == (len(data), p.SUBMIT_SM, 0, 7)
    assert data.endswith(b"\x08" + b"\x05\x00\x03\x01\x02\x01\x00A" + b"\x02\x0c\x00\x02\x00\x2a")
    back = p.decode(data)
    assert back.get("short_message") == b"\x05\x00\x03\x01\x02\x01\x00A"
    assert back.get("source_addr") == "Shop"
    assert back.tlv_int(p.TLV_SAR_MSG_REF_NUM) == 42
    assert p.encode(back) == data


def test_error_response_without_body_reads_with_defaults():
    data = struct.pack(">IIII", 16, p.SUBMIT_SM | p.RESPONSE, p.ESME_RTHROTTLED, 3)
    pdu = p.decode(data)
    assert pdu.status == p.ESME_RTHROTTLED and pdu.get("message_id") == ""
    assert p.encode(Pdu(p.SUBMIT_SM | p.RESPONSE, 3, p.ESME_RTHROTTLED)) == data


def test_message_id_without_nul_is_tolerated_in_a_response():
    data = struct.pack(">IIII", 16 + 4, p.SUBMIT_SM | p.RESPONSE, 0, 3) + b"AB12"
    assert p.decode(data).get("message_id") == "AB12"


@pytest.mark.parametrize("body, status", [
    (b"esme", p.ESME_RINVSYSID),  # system_id never ends
    (b"esme\0pw\0\0\x34", p.ESME_RINVCMDLEN),  # ends before addr_ton
])
def test_broken_bodies_carry_their_status(body, status):
    data = struct.pack(">IIII", 16 + len(body), p.BIND_TRANSMITTER, 0, 1) + body
    with pytest.raises(PduError) as caught:
        p.decode(data)
    assert caught.value.status == status


def test_unknown_command_and_sm_length_overrun():
    with pytest.raises(PduError) as caught:
        p.decode(struct.pack(">IIII", 16, 0x00000099, 0, 1))
    assert caught.value.status == p.ESME_RINVCMDID
    submit = bytearray(p.encode(Pdu(p.DELIVER_SM, 1, params={"short_message": b"abc"})))
    submit[-4] = 200  # sm_length
    with pytest.raises(PduError) as caught:
        p.decode(bytes(submit))
    assert caught.value.status == p.ESME_RINVMSGLEN


def test_encoder_refuses_what_smpp_cannot_carry():
    with pytest.raises(PduError) as caught:
        p.encode(Pdu(p.SUBMIT_SM, 1, params={"source_addr": "x" * 21}))
    assert caught.value.status == p.ESME_RINVSRCADR
    with pytest.raises(PduError):
        p.encode(Pdu(p.SUBMIT_SM, 1, params={"short_message": b"x" * 255}))
    with pytest.raises(PduError):
        p.encode(Pdu(p.ENQUIRE_LINK, 1, tlvs=[(1, b"")]))


def test_response_of_unknown_command_is_generic_nack():
    assert Pdu(0x1234, 9).response(p.ESME_RINVCMDID).command_id == p.GENERIC_NACK
    assert Pdu(p.DELIVER_SM, 9).response().command_id == p.DELIVER_SM | p.RESPONSE


def test_status_names():
    assert p.status_name(0x58) == "ESME_RTHROTTLED (0x58)"
    assert p.status_name(0x401) == "command_status 0x401"


# -- framing

def _stream():
    return [p.encode(Pdu(p.ENQUIRE_LINK, 1)),
            p.encode(Pdu(p.DELIVER_SM, 2, params={"short_message": "Ahoj".encode("utf-16-be"),
                                                    "data_coding": 8})),
            p.encode(Pdu(p.SUBMIT_SM | p.RESPONSE, 3, params={"message_id": "1A"}))]


def test_framer_one_byte_at_a_time():
    frames = _stream()
    framer = Framer()
    out = []
    for octet in b"".join(frames):
        out.extend(framer.feed(bytes((octet,))))
    assert out == frames and framer.pending == 0


def test_framer_everything_at_once_and_split_anywhere():
    frames = _stream()
    data = b"".join(frames)
    for cut in range(len(data) + 1):
        framer = Framer()
        assert framer.feed(data[:cut]) + framer.feed(data[cut:]) == frames


@pytest.mark.parametrize("length", [0, 15, p.MAX_PDU_SIZE + 1])
def test_framer_refuses_impossible_lengths(length):
    with pytest.raises(FramingError):
        Framer().feed(struct.pack(">I", length) + bytes(12))


# -- properties

_cstr = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255), max_size=5)
_u8 = st.integers(0, 255)
_submit = st.builds(
    lambda command, seq, fields, sm, tlvs: Pdu(command, seq, params=dict(fields, short_message=sm),
                                               tlvs=tlvs),
    st.sampled_from([p.SUBMIT_SM, p.DELIVER_SM]),
    st.integers(1, 0x7FFFFFFF),
    st.fixed_dictionaries({
        "service_type": _cstr, "source_addr_ton": _u8, "source_addr_npi": _u8,
        "source_addr": _cstr, "dest_addr_ton": _u8, "dest_addr_npi": _u8,
        "destination_addr": _cstr, "esm_class": _u8, "protocol_id": _u8,
        "priority_flag": _u8, "registered_delivery": _u8, "data_coding": _u8,
        "sm_default_msg_id": _u8, "replace_if_present_flag": _u8,
        "schedule_delivery_time": _cstr, "validity_period": _cstr}),
    st.binary(max_size=254),
    st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=4),
)


@settings(max_examples=300, deadline=None)
@given(_submit)
def test_round_trip(pdu):
    data = p.encode(pdu)
    back = p.decode(data)
    assert back.params == pdu.params and back.tlvs == pdu.tlvs
    assert back.sequence == pdu.sequence and p.encode(back) == data


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_decoder(data):
    framed = struct.pack(">I", len(data) + 4) + data
    try:
        pdu = p.decode(framed)
        again = p.encode(pdu)  # may refuse what the lenient decoder let through
    except PduError:
        return
    assert p.encode(p.decode(again)) == again


def test_empty_ok_response_normalises_once():
    empty = struct.pack(">IIII", 16, p.SUBMIT_SM | p.RESPONSE, 0, 1)
    again = p.encode(p.decode(empty))
    assert p.decode(again).get("message_id") == "" and p.encode(p.decode(again)) == again


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_random_chunks_never_crash_the_framer(chunks):
    framer = Framer()
    try:
        for chunk in chunks:
            for frame in framer.feed(chunk):
                assert len(frame) == struct.unpack(">I", frame[:4])[0]
    except FramingError:
        pass
