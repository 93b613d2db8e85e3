"""The configuration file: typed keys, clear errors, and named transport sections."""

from __future__ import annotations

import pytest

from smss.config import ConfigError, parse_text


def test_defaults_and_types():
    config = parse_text("")
    assert config.get("server", "port") == 2021
    assert config.get("messages", "transliterate") is False
    assert [str(n) for n in config.get("server", "allow")] == ["127.0.0.0/8", "::1/128"]


@pytest.mark.parametrize("text,message", [
    ("[server]\nport = x\n", "[server] port"),
    ("[server]\nprot = 1\n", "unknown key 'prot'"),
    ("[nonsense]\n", "unknown section [nonsense]"),
    ("[messages]\nlegacy_encoding = cp9999\n", "legacy_encoding"),
    ("[server]\nallow = 10.0.0.0/33\n", "[server] allow"),
    ("[transport:gsm2]\ntype = fax\n", "type must be one of"),
    ("[transport:gsm2]\ntype = modem\nbogus = 1\n", "unknown key 'bogus'"),
    ("[transport:gsm2]\ntype = modem\nbaudrate = fast\n", "[transport:gsm2] baudrate"),
])
def test_errors_name_the_place(text, message):
    with pytest.raises(ConfigError) as error:
        parse_text(text, "smss.conf")
    assert message in str(error.value) and "smss.conf" in str(error.value)


def test_one_transport_is_the_dispatcher_transport():
    config = parse_text("[modem]\ndevice = /dev/ttyS0\n")
    assert config.transport_names() == ["modem"]
    assert config.for_transport("modem") is config


def test_named_transport_sections_read_like_their_type():
    config = parse_text(
        "[modem]\ndevice = /dev/ttyS0\nbaudrate = 9600\n"
        "[transport:office]\ntype = modem\ndevice = /dev/ttyUSB0\n"
        "[transport:router]\ntype = modem\ndevice = socket://127.0.0.1:8081\npin = 1234\n"
    )
    assert config.transport_names() == ["office", "router"]
    office = config.for_transport("office")
    assert office.get("modem", "device") == "/dev/ttyUSB0"
    assert office.get("modem", "name") == "office"
    assert office.get("modem", "baudrate") == 115200  # the section's own, not [modem]'s
    router = config.for_transport("router")
    assert (router.get("modem", "pin"), router.get("modem", "name")) == ("1234", "router")
    assert config.transport_type("router") == "modem"
