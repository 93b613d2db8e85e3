"""The [smpp] configuration: the URL and the keys, automatic TON/NPI, what cannot work, and
``[dispatcher] transport`` choosing the transport."""

from __future__ import annotations

import pytest

from smss import transports
from smss.config import ConfigError, parse_text
from smss.smpp.settings import SmppSettings, destination, parse_version, source_ton_npi
from smss.transports.base import OPERATOR, SendFailed
from smss.transports.modem import ModemTransport
from smss.transports.smpp import SmppTransport


def settings(text: str) -> SmppSettings:
    return SmppSettings.from_config(parse_text(text))


def test_url_gives_account_and_address_and_keys_override_it():
    found = settings("[smpp]\nurl = smpp://goip%2B01:p%40ss@gw.example:7777\n"
                     "[dispatcher]\nlockfile = /run/smss/goip1\n")
    assert (found.host, found.port, found.system_id, found.password) == (
        "gw.example", 7777, "goip+01", "p@ss")
    assert found.spool == "/var/lib/smss/goip1.smpp-inbox"
    assert found.transport_name == "smpp:goip+01@gw.example:7777"
    found = settings("[smpp]\nurl = smpp://a:b@h\nsystem_id = goip02\nport = 2776\n"
                     "spool = /tmp/x\nname = goip channel 2\n")
    assert (found.host, found.port, found.system_id, found.password, found.spool) == (
        "h", 2776, "goip02", "b", "/tmp/x")
    assert found.transport_name == "goip channel 2"
    named = settings("[smpp]\nhost = h\nname = operator/1\n")
    assert named.spool == "/var/lib/smss/check_and_send.operator_1.smpp-inbox"


def test_defaults():
    found = settings("[smpp]\nhost = smsc.example\n")
    assert (found.port, found.bind, found.interface_version, found.window, found.binds) == (
        2775, "transceiver", 0x34, 10, 1)
    assert settings("[smpp]\nhost = h\nbinds = 4\n").binds == 4
    with pytest.raises(ConfigError, match=r"\[smpp\] binds: must be at least 1"):
        settings("[smpp]\nhost = h\nbinds = 0\n")
    assert (found.long_messages, found.registered_delivery, found.default_alphabet) == (
        "udh", True, "gsm")
    assert (found.source_addr, found.source_addr_ton, found.source_addr_npi) == ("", 0, 0)


@pytest.mark.parametrize("source, expected", [
    ("MyShop", (5, 0, "MyShop")), ("+420608337726", (1, 1, "420608337726")),
    ("4603", (0, 1, "4603")), ("", (0, 0, "")),
])
def test_source_address_ton_npi_by_its_form(source, expected):
    assert source_ton_npi(source, None, None) == expected
    assert source_ton_npi(source, 3, 9)[:2] == (3, 9)


def test_destination_ton_npi():
    assert destination("+420608337726", None, None) == (1, 1, "420608337726")
    assert destination("4603", None, None) == (0, 1, "4603")
    assert destination("+420608337726", 0, 0) == (0, 0, "420608337726")


@pytest.mark.parametrize("text, value", [("3.4", 0x34), ("0x34", 0x34), ("34", 0x34),
                                         ("52", 0x34), ("5.0", 0x50), ("3.3", 0x33)])
def test_interface_versions(text, value):
    assert parse_version(text) == value


@pytest.mark.parametrize("text, problem", [
    ("[smpp]\nsystem_id = x\n", "no SMSC"),
    ("[smpp]\nurl = http://h\n", "smpp://"),
    ("[smpp]\nhost = h\nbind = both\n", "bind must be"),
    ("[smpp]\nhost = h\nlong_messages = split\n", "long_messages"),
    ("[smpp]\nhost = h\nsource_addr = VeryLongShopName\n", "11 characters"),
    ("[smpp]\nhost = h\nsystem_id = far_too_long_system_id\n", "system_id"),
    ("[smpp]\nhost = h\ninterface_version = 3.3\n", "transceiver"),
    ("[smpp]\nhost = h\nreceipt_id_format = octal\n", "receipt_id_format"),
    ("[smpp]\nhost = h\nsource_addr_ton = 300\n", "0..255"),
])
def test_what_cannot_work_is_refused_with_the_key(text, problem):
    with pytest.raises(ValueError) as caught:
        settings(text)
    assert problem in str(caught.value)


def test_dispatcher_transport_chooses(tmp_path):
    smpp = parse_text("[dispatcher]\ntransport = smpp\n[smpp]\nhost = h\n"
                      f"spool = {tmp_path}/inbox\n")
    assert isinstance(transports.from_config(smpp), SmppTransport)
    modem = parse_text("[modem]\ndevice = /dev/null\n")
    assert isinstance(transports.from_config(modem), ModemTransport)
    for text in ("[dispatcher]\ntransport = goip\n", "[dispatcher]\ntransport = smpp\n"):
        with pytest.raises(SendFailed) as caught:
            transports.from_config(parse_text(text))
        assert caught.value.kind == OPERATOR
