"""The windowed SMPP path of two dispatchers on two nodes of a Galera cluster: both drain
one queue into node-smpp at the same time.  Each round of the bookkeeper (outcomes and the
next claim in one transaction) can lose at COMMIT to the other node's round, since SKIP
LOCKED sees only its own node's locks; that lost race is tried again, never reported as a
database outage, and every message reaches the SMSC once."""

from __future__ import annotations

import collections

import pytest
from support_dispatch import Site
from support_smsc import Smsc, require_node

from smss.store import queue
from smss.store.database import connect

pytestmark = [pytest.mark.slow, pytest.mark.mariadb]

PHONE = "+420608337726"


def test_two_nodes_drain_one_queue_through_smpp_each_message_once(galera, tmp_path):
    require_node()
    name = galera.create_database().rsplit("/", 1)[1]
    urls = [galera.url(name, galera.nodes[i:] + galera.nodes[:i]) for i in (0, 1)]
    smsc = Smsc(timeout=60)
    try:
        sites = []
        for number, url in enumerate(urls):
            folder = tmp_path / f"site{number}"
            folder.mkdir()
            sites.append(Site(folder, url, None, {
                "dispatcher": {"transport": "smpp", "loglevel": "INFO", "max_attempts": "20"},
                "smpp": {"url": smsc.url, "spool": f"{folder}/smpp-inbox", "window": "10",
                         "response_timeout": "10", "reconnect_delay": "0.1",
                         "registered_delivery": "no", "name": f"smpp{number}"}}))
        texts = []
        for round_number in range(10):  # 1,000 messages, half inserted through each node
            for number, url in enumerate(urls):
                conn = connect(url)
                try:
                    batch = [f"s{number} r{round_number} m{n}" for n in range(50)]
                    with conn.transaction():
                        queue.insert(conn, [queue.NewMessage(PHONE, text) for text in batch])
                    texts += batch
                finally:
                    conn.close()
        smsc.set(respDelayMs=2)  # slow enough that the two drains overlap
        processes = [site.start() for site in sites]
        codes = [process.wait(timeout=300) for process in processes]
        logs = [site.log() for site in sites]
        assert codes == [0, 0], [log[-3000:] for log in logs]
        assert not any("database unavailable" in log for log in logs), logs
        rows = sites[0].rows("sms", "text, status, transport")
        assert sorted(row[0] for row in rows) == sorted(texts)
        assert {row[1] for row in rows} == {"sent"}
        by_site = collections.Counter(row[2] for row in rows)
        submits = collections.Counter(event["text"] for event in smsc.events("submit_sm")
                                      if event["status"] == 0)
        assert set(submits) == set(texts) and set(submits.values()) == {1}
        retried = sum(log.count("lost a race to another node") for log in logs)
        print(f"sent per transport {dict(by_site)}; rounds tried again after a conflict: "
              f"{retried}")
    finally:
        smsc.close()
