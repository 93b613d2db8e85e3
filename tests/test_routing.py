"""Several transports in one dispatcher: pinned routes, prefix rules, failover."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support_sim import running_simulator

from smss.config import ConfigError, parse_text
from smss.spooler.protocol import INVALID, Record, RecordError
from smss.spooler.validate import Rules, check

TWO = ("[transport:gsm1]\ntype = modem\ndevice = /dev/ttyUSB0\n"
       "[transport:gsm2]\ntype = modem\ndevice = /dev/ttyUSB1\n")


def rules(extra: str = "") -> Rules:
    return Rules.from_config(parse_text(TWO + "[dispatcher]\nroutes = +42077 = gsm2\n" + extra))


def test_pinned_prefix_and_unrouted_messages():
    r = rules()
    assert check(Record("608337726@gsm2", "x"), r).route == "gsm2"  # pinned: gsm2 only
    assert check(Record("777123456", "x"), r).route == "~gsm2"  # prefers gsm2
    assert check(Record("608337726", "x"), r).route is None  # any transport
    assert check(Record("608337726@fax", "x"), r) == RecordError(
        INVALID, "unknown route 'fax' (routes: gsm1, gsm2)")


def test_route_to_an_unknown_transport_is_a_config_error():
    with pytest.raises(ConfigError, match="no \\[transport:NAME\\] section"):
        parse_text(TWO + "[dispatcher]\nroutes = +420 = gsm3\n")
    with pytest.raises(ConfigError, match="not PREFIX = TRANSPORT"):
        parse_text(TWO + "[dispatcher]\nroutes = +420 gsm1\n")


def test_without_named_transports_a_pin_is_refused():
    verdict = check(Record("608337726@gsm1", "x"), Rules())
    assert verdict == RecordError(INVALID, "unknown route 'gsm1' (routes: none configured)")


@pytest.fixture
def two_modems(tmp_path, server_factory):
    with running_simulator(pty=False) as first, running_simulator(pty=False) as second:
        common = {"command_timeout": "3", "send_timeout": "5", "register_timeout": "2"}
        sections = {
            "transport:gsm1": {"type": "modem", "device": first.url,
                               "pin_guard_file": f"{tmp_path}/pins1", **common},
            "transport:gsm2": {"type": "modem", "device": second.url,
                               "pin_guard_file": f"{tmp_path}/pins2", **common},
        }
        server = server_factory(
            dispatcher={"routes": "+42077 = gsm2", "lockfile": f"{tmp_path}/cas.lock",
                        "logfile": f"{tmp_path}/cas.log", "retry_delay": "0"},
            **sections)
        yield server, first, second


def run_pass(server):
    return subprocess.run([sys.executable, "-m", "check_and_send.cli", "-c", server.config_path],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, SMSS_CONFIG=server.config_path))


def texts(sim):
    return sorted(part["text"] for part in sim.control.sent())


def transports_of(server):
    from smss.store.database import connect

    conn = connect(server.db_url)
    try:
        return dict(conn.read().query("SELECT text, transport FROM sms"))
    finally:
        conn.close()


def test_each_message_goes_its_way(two_modems):
    server, first, second = two_modems
    replies = server.send(b"#608337726;anyone\n#777123456;prefers gsm2\n"
                          b"#608337726@gsm2;pinned to gsm2\n#777123456@gsm1;pinned to gsm1\n")
    assert [r.split()[0] for r in replies] == ["OK"] * 4
    assert run_pass(server).returncode == 0
    both = sorted(texts(first) + texts(second))
    assert both == ["anyone", "pinned to gsm1", "pinned to gsm2", "prefers gsm2"]
    assert "pinned to gsm1" in texts(first)
    assert {"pinned to gsm2", "prefers gsm2"} <= set(texts(second))
    took_anyone = "gsm1" if "anyone" in texts(first) else "gsm2"  # whichever lane was free
    assert transports_of(server) == {"anyone": took_anyone, "pinned to gsm1": "gsm1",
                                     "prefers gsm2": "gsm2", "pinned to gsm2": "gsm2"}


def test_failover_while_a_transport_is_down(two_modems):
    server, first, second = two_modems
    second.control.set_fault("no_network", stat=0)
    server.send(b"#777123456;prefers gsm2\n#608337726@gsm2;pinned to gsm2\n")
    result = run_pass(server)
    assert result.returncode == 1  # a transport is down: cron mails it
    assert texts(first) == ["prefers gsm2"]  # taken over by gsm1
    assert texts(second) == []
    assert [row[2] for row in server.queued()] == ["pinned to gsm2"]  # waits for gsm2
    second.control.clear_fault("no_network")
    assert run_pass(server).returncode == 0
    assert texts(second) == ["pinned to gsm2"]
    assert transports_of(server) == {"prefers gsm2": "gsm1", "pinned to gsm2": "gsm2"}


def test_the_http_api_routes_like_the_tcp_door(server_factory, tmp_path):
    from support_web import add_token, api, base_url, web_settings

    server = server_factory(
        web=web_settings(tmp_path),
        dispatcher={"routes": "+42077 = gsm2"},
        **{"transport:gsm1": {"type": "modem", "device": "/dev/null"},
           "transport:gsm2": {"type": "modem", "device": "/dev/null"}})
    token = add_token(server.config_path, "routes")
    with api(base_url(server), token) as client:
        answer = client.post("/api/v1/messages", json={"messages": [
            {"phone": "608337726@gsm2", "text": "pinned"},
            {"phone": "777123456", "text": "by prefix"},
            {"phone": "608337726@fax", "text": "unknown"}]})
    assert answer.status_code == 422
    from smss.store.database import connect

    conn = connect(server.db_url)
    try:
        assert dict(conn.read().query("SELECT text, route FROM msg")) == {
            "pinned": "gsm2", "by prefix": "~gsm2"}
    finally:
        conn.close()


@pytest.mark.parametrize("section,expected", [
    ("[modem]\nrate_limit = 7\n", 7),
    ("[dispatcher]\ntransport = goip\n[goip]\nrate_limit = 5\n", 5),
    ("[dispatcher]\ntransport = yeastar\n[yeastar]\nrate_limit = 4\n", 4),
    ("[dispatcher]\ntransport = smpp\n", 0),  # SMPP has its own throughput limit
])
def test_each_transport_type_has_its_rate_limit(section, expected):
    from check_and_send.dispatcher import Settings

    assert Settings.from_config(parse_text(section)).rate_limit == expected


def test_a_named_gateway_section_keeps_its_own_rate_limit():
    from check_and_send.dispatcher import Settings

    config = parse_text("[transport:sim1]\ntype = goip\nurl = http://127.0.0.1:1\n"
                        "rate_limit = 3\n[goip]\nrate_limit = 9\n")
    assert Settings.from_config(config.for_transport("sim1"), "sim1").rate_limit == 3
