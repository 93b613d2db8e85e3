"""The commands: `smss web` alone, `smss start` with the web interface enabled,
`smss user …` and `smss token …`, and a bad [web] setting reported at start."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
from support_web import PASSWORD, add_token, add_user, api, login, smss


def write_config(tmp_path, **web) -> str:
    settings = {"enabled": "no", "listen": "127.0.0.1", "port": str(free_port()),
                "secret_file": f"{tmp_path}/web-secret", "timezone": "UTC"}
    settings.update(web)
    path = tmp_path / "smss.conf"
    web_lines = "".join(f"{key} = {value}\n" for key, value in settings.items())
    path.write_text(
        f"[server]\nlisten = 127.0.0.1\nport = {free_port()}\npidfile = {tmp_path}/smss.pid\n"
        f"kick_command =\nlogfile = {tmp_path}/smss.log\n"
        f"[database]\nurl = sqlite://{tmp_path}/smss.db\n[web]\n{web_lines}")
    return str(path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def web_url(config_path: str) -> str:
    port = re.search(r"^port = (\d+)$", open(config_path).read().split("[web]")[1], re.M)
    return f"http://127.0.0.1:{port.group(1)}"


def wait_up(url: str, process=None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"exited {process.returncode}")
        try:
            httpx.get(url + "/login", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not come up")


def test_smss_web_serves_alone_and_stops_on_sigterm(tmp_path):
    config = write_config(tmp_path)
    url = web_url(config)
    process = subprocess.Popen([sys.executable, "-m", "smss.cli", "-c", config, "web"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_up(url, process)
        add_user(config, "alice")
        token = add_token(config, "app")
        with api(url, token) as client:
            answer = client.post("/api/v1/messages", json={"messages": [
                {"phone": "608337726", "text": "via smss web"}]})
            assert answer.status_code == 200, answer.text
            message_id = answer.json()["results"][0]["id"]
            assert client.get(f"/api/v1/messages/{message_id}").json()["state"] == "queued"
        assert "via smss web" in login(url, "alice").get("/queue").text
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = (tmp_path / "smss.log").read_text()
    assert "web interface on http://127.0.0.1:" in log and "web interface stopped" in log


def test_smss_start_keeps_the_web_socket_across_the_fork(tmp_path):
    config = write_config(tmp_path, enabled="yes")
    url = web_url(config)
    started = smss(config, "start")
    try:
        assert started.returncode == 0, started.stderr
        wait_up(url)
        token = add_token(config, "app")
        with api(url, token) as client:
            assert client.get("/api/v1/received").status_code == 200
    finally:
        assert smss(config, "stop").returncode == 0


def test_a_busy_web_port_or_a_bad_setting_stops_the_start(tmp_path):
    config = write_config(tmp_path, enabled="yes")
    port = int(web_url(config).rsplit(":", 1)[1])
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen(1)
        result = smss(config, "start")
    assert result.returncode == 1 and "in use" in result.stderr
    config = write_config(tmp_path, enabled="yes", timezone="Mars/Olympus")
    result = smss(config, "start")
    assert result.returncode == 1 and "unknown time zone 'Mars/Olympus'" in result.stderr


def test_user_and_token_commands(tmp_path):
    config = write_config(tmp_path)
    assert smss(config, "user").returncode == 2
    assert smss(config, "user", "add").returncode == 2
    assert smss(config, "user", "frobnicate", "x").returncode == 2
    assert smss(config, "user", "add", "bad name!").returncode == 2
    assert smss(config, "run", "extra").returncode == 2
    short = smss(config, "user", "add", "alice", stdin="short\n")
    assert short.returncode == 1 and "at least 8" in short.stderr
    assert smss(config, "user", "passwd", "alice", stdin=PASSWORD + "\n").returncode == 1
    add_user(config, "alice")
    again = smss(config, "user", "add", "alice", stdin=PASSWORD + "\n")
    assert again.returncode == 1 and "exists" in again.stderr
    listed = smss(config, "user", "list")
    assert listed.returncode == 0 and listed.stdout.startswith("alice\t")
    stored = open(os.path.join(tmp_path, "smss.db"), "rb").read()
    assert PASSWORD.encode() not in stored and b"$argon2id$" in stored
    token = add_token(config, "nagios")
    assert token.startswith("smss_") and len(token) > 40
    assert smss(config, "token", "add", "nagios").returncode == 1
    assert token.encode() not in open(os.path.join(tmp_path, "smss.db"), "rb").read()
    assert smss(config, "token", "list").stdout.startswith("nagios\t")
    assert smss(config, "token", "delete", "nagios").returncode == 0
    assert smss(config, "token", "delete", "nagios").returncode == 1
    assert smss(config, "user", "delete", "alice").returncode == 0
    assert smss(config, "user", "list").stdout == ""
