"""Test helpers for the web interface and HTTP API (tests/test_web_*.py).

    server = server_factory(web=web_settings(tmp_path))   # `smss run` with [web] enabled
    url = base_url(server)                                 # http://127.0.0.1:PORT
    add_user(server.config_path, "alice", "correct horse")
    token = add_token(server.config_path, "app")
    client = login(url, "alice", "correct horse")          # an httpx.Client with the cookie

    with chromium() as browser:                            # Debian's chromium via Playwright
        page = browser.new_page()

``chromium()`` skips when Playwright or /usr/bin/chromium is missing, and fails
instead when ``CI`` is set (CI installs both).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from contextlib import contextmanager
from typing import Dict, Iterator, Optional

import httpx
from support_tools import missing as _missing

CHROMIUM = os.environ.get("SMSS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PASSWORD = "correct horse battery"

_WEB_LINE = re.compile(r"\[(\d+)\] INFO web interface on (http://[^\s]+?)/?$", re.M)
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def web_settings(folder, **extra: str) -> Dict[str, str]:
    settings = {"enabled": "yes", "listen": "127.0.0.1", "port": "0",
                "secret_file": f"{folder}/web-secret", "timezone": "UTC"}
    settings.update(extra)
    return settings


def base_url(server) -> str:
    """The web interface's URL from the log of a started ServerProcess."""
    for pid, url in _WEB_LINE.findall(server.log()):
        if server.process is not None and int(pid) == server.process.pid:
            return url
    raise AssertionError(f"no web interface in the log:\n{server.log()}")


def smss(config_path: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smss.cli", "-c", config_path, *args],
                          input=stdin, capture_output=True, text=True, timeout=60)


def add_user(config_path: str, name: str, password: str = PASSWORD,
             role: Optional[str] = None) -> None:
    """``smss user add`` (the first user is an admin, the next ones operators, unless
    ``role`` says otherwise)."""
    extra = ["--role", role] if role else []
    result = smss(config_path, "user", "add", name, *extra, stdin=password + "\n")
    assert result.returncode == 0, result.stderr


def add_token(config_path: str, name: str) -> str:
    result = smss(config_path, "token", "add", name)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF field in the page"
    return match.group(1)


def login(url: str, name: str, password: str = PASSWORD) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30)
    form = client.get("/login")
    answer = client.post("/login", data={"name": name, "password": password,
                                         "csrf": csrf_of(form.text), "next": "/"})
    assert answer.status_code == 303, answer.text
    return client


def api(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"})


@contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium (Debian's) driven by Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright Python package is not installed")
    if not os.access(CHROMIUM, os.X_OK):
        _missing(f"{CHROMIUM} is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
