"""Several sites on one database (one MariaDB standing in for a cluster, and a 3-node Galera
cluster with each site on its own node):
a message accepted by a site whose dispatcher is down is sent by another site's
``check_and_send --loop`` within seconds, not at its ``poll_interval``; ``smss check``
refuses a transport name another live site uses.  Real processes throughout: `smss run`,
`check_and_send`, `smss check`, the modem simulator."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from support_dispatch import site

from smss.store.database import utcnow

pytestmark = pytest.mark.mariadb

POLL = "600"  # every wait below is far shorter: what was sent did not wait for the poll


def wait_for(predicate, timeout=90.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout}s")


def texts_sent(s):
    return [part["text"] for part in s.sim.control.sent()]


def smss_check(config_path):
    return subprocess.run([sys.executable, "-m", "smss.cli", "-c", config_path, "check"],
                          capture_output=True, text=True, timeout=120)


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(params=["mariadb", pytest.param("galera", marks=pytest.mark.slow)])
def site_urls(request):
    """(site A's database URL, site B's): one MariaDB, or a 3-node Galera cluster where
    each site lists its own node first."""
    if request.param == "mariadb":
        url = request.getfixturevalue("mariadb").create_database()
        return url, url
    cluster = request.getfixturevalue("galera")
    name = cluster.create_database().rsplit("/", 1)[1]
    nodes = cluster.nodes
    return cluster.url(name, nodes), cluster.url(name, nodes[1:] + nodes[:1])


def test_a_message_accepted_where_no_dispatcher_runs_is_sent_by_another_site(
        site_urls, server_factory, tmp_path):
    url_a, url_b = site_urls
    (tmp_path / "b").mkdir()
    settings = {"dispatcher": {"poll_interval": POLL, "site": "box-b"},
                "modem": {"name": "gsm-b"}}
    with site(tmp_path / "b", url_b, settings=settings) as b:
        loop = b.start("--loop")
        try:
            wait_for(lambda: "--loop started" in b.log(), what="B's loop starting")
            b.enqueue("+420608337726", "warm-up")
            b.run()  # a plain run pokes the loop (SIGUSR1), as site B's own server would
            wait_for(lambda: texts_sent(b) == ["warm-up"], what="B's loop sending its own")
            wait_for(lambda: b.rows("msg") == [], what="the warm-up leaving the queue")
            # site A: its spooler takes a record; its dispatcher is down (no kick command)
            a = server_factory(url_a, dispatcher={"site": "box-a"})
            assert a.send(b"#+420777123456;via A\n")[0].startswith("OK ")
            wait_for(lambda: texts_sent(b) == ["warm-up", "via A"],
                     what="site B sending what site A accepted")
            assert b.rows("sms", "id, text, transport, status")[1][1:] == (
                "via A", "gsm-b", "sent")
            assert b.rows("msg") == []
            assert loop.poll() is None
        finally:
            stop(loop)


def test_smss_check_refuses_a_transport_name_another_live_site_uses(mariadb, tmp_path):
    url = mariadb.create_database()
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    same = {"modem": {"name": "gsm"}}
    with site(tmp_path / "a", url, settings={**same, "dispatcher": {"site": "box-a"}}) as a, \
            site(tmp_path / "b", url, settings={**same, "dispatcher": {"site": "box-b"}}) as b:
        # before A ever ran, nobody uses the name
        before = smss_check(b.config_path)
        assert "unique among the sites" not in before.stdout, before.stdout
        assert before.returncode == 0, before.stdout

        a.enqueue("+420608337726", "from A")
        done = a.run()
        assert done.returncode == 0, done.stderr
        assert a.rows("transport_status", "name, site") == [("gsm", "box-a")]
        status = subprocess.run([sys.executable, "-m", "smss.cli", "-c", b.config_path,
                                 "status"], capture_output=True, text=True, timeout=120)
        assert any(line.startswith("transport gsm: ok at ") and line.endswith(", site box-a")
                   for line in status.stdout.splitlines()), status.stdout

        refused = smss_check(b.config_path)
        assert refused.returncode == 1
        problems = [line for line in refused.stdout.splitlines()
                    if line.startswith("problem")]
        assert len(problems) == 1, refused.stdout
        assert problems[0].startswith(
            "problem  [modem] name: 'gsm' is the name of a transport that site box-a runs "
            "(its last pass "), problems
        assert problems[0].endswith(
            "s ago); names must be unique among the sites sharing the database "
            "(this is site box-b)"), problems

        # A's own check is content: the row is its own
        own = smss_check(a.config_path)
        assert own.returncode == 0, own.stdout

        # under its own name B passes, and its passes keep A's row A's
        b.write_config(modem={"name": "gsm-b"})
        assert smss_check(b.config_path).returncode == 0
        assert b.run().returncode == 0
        assert sorted(b.rows("transport_status", "name, site")) == [
            ("gsm", "box-a"), ("gsm-b", "box-b")]

        # a site that has not run the name for a while no longer holds it
        b.write_config(modem={"name": "gsm"})
        conn = b.connect()
        try:
            with conn.transaction():
                conn.execute("UPDATE transport_status SET updated_at = ? WHERE name = 'gsm'",
                             (utcnow() - timedelta(hours=1),)).close()
        finally:
            conn.close()
        assert smss_check(b.config_path).returncode == 0


def test_a_dispatcher_warns_when_another_live_site_runs_its_transport(mariadb, tmp_path):
    url = mariadb.create_database()
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    same = {"modem": {"name": "gsm"}}
    with site(tmp_path / "a", url, settings={**same, "dispatcher": {"site": "box-a"}}) as a, \
            site(tmp_path / "b", url, settings={**same, "dispatcher": {"site": "box-b"}}) as b:
        assert a.run().returncode == 0
        assert b.run().returncode == 0
        assert ("transport gsm is also run by site box-a" in b.log()), b.log()
        assert b.rows("transport_status", "name, site") == [("gsm", "box-b")]
