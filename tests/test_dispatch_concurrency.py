"""Several dispatchers on one queue, and the per-SIM rate limit.

Two ``check_and_send`` processes, each with its own simulated modem, drain one
MariaDB queue at the same time: claims use FOR UPDATE SKIP LOCKED, so every
message goes out once, through the modem its ``sms`` row names.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from contextlib import ExitStack
from datetime import timedelta

import pytest
from support_dispatch import site

from smss.store import migrations, queue
from smss.store.database import as_datetime, connect, utcnow


def start_sites(stack, tmp_path, db_url, names, **sim_options):
    sites = []
    for name in names:
        folder = tmp_path / name
        folder.mkdir()
        sites.append(stack.enter_context(site(
            folder, db_url, settings={"modem": {"name": name},
                                      "dispatcher": {"batch_size": "5"}}, **sim_options)))
    return sites


@pytest.fixture(params=["mysql", "sqlite"])
def shared_url(request, tmp_path):
    if request.param == "mysql":
        return request.getfixturevalue("mariadb").create_database()
    return f"sqlite://{tmp_path}/shared.db"


def test_two_dispatchers_two_modems_one_queue(tmp_path, shared_url):
    with ExitStack() as stack:
        a, b = start_sites(stack, tmp_path, shared_url, ["modem-a", "modem-b"], latency=0.1)
        texts = {a.enqueue("+420608337726", f"shared queue {i}"): f"shared queue {i}"
                 for i in range(60)}
        processes = [a.start(), b.start()]
        for process in processes:
            assert process.wait(timeout=120) == 0, a.log() + b.log()
        # a message committed while both were finishing is picked up by one more run
        assert a.run().returncode == 0

        by_modem = {name: Counter(part["text"] for part in s.sim.control.sent())
                    for name, s in (("modem-a", a), ("modem-b", b))}
        union = by_modem["modem-a"] + by_modem["modem-b"]
        assert union == Counter(texts.values())  # every text exactly once, none twice
        assert by_modem["modem-a"] and by_modem["modem-b"], "one dispatcher sent everything"

        assert a.rows("msg") == []
        rows = a.rows("sms", "id, text, status, transport")
        assert sorted(r[0] for r in rows) == sorted(texts)
        for message_id, text, status, transport in rows:
            assert status == "sent"
            assert by_modem[transport][text] == 1, (message_id, transport)


def test_concurrent_claims_never_overlap_nor_deadlock(mariadb):
    """Eight claimers on their own connections take batches from one MariaDB queue and
    delete what they took, all at once: every message is claimed once, nothing fails
    (an UPDATE … WHERE id IN (…) in the claim deadlocked against the others)."""
    url = mariadb.create_database()
    conn = connect(url)
    migrations.prepare(conn)
    with conn.transaction():
        ids = queue.insert(conn, [queue.NewMessage("+420608337726", f"c{i}")
                                  for i in range(400)])
    conn.close()
    claimed, errors = [], []
    start = threading.Barrier(8)

    def claimer(number):
        mine = connect(url)
        try:
            start.wait()
            while True:
                batch = queue.claim(mine, f"claimer:{number}", 5)
                if not batch:
                    return
                claimed.extend(message.id for message in batch)
                for message in batch:  # "sent": gone from the queue, as a dispatcher does
                    with mine.transaction():
                        queue.delete(mine, message.id)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)
        finally:
            mine.close()

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(claimed) == sorted(ids)


def _seed_recent_sends(s, transport, ages):
    """Rows in ``sms`` as if ``transport`` had sent a message ``age`` seconds ago."""
    conn = s.connect()
    now = utcnow()
    try:
        with conn.transaction():
            for number, age in enumerate(ages, 1):
                moment = now - timedelta(seconds=age)
                conn.execute(
                    "INSERT INTO sms (id, phone, text, status, sent_at, parts, client,"
                    " created_at, attempts, transport, refs) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (900000 + number, "+420608337726", f"earlier {number}", "sent", moment, 1,
                     "", moment, 1, transport, ""),
                ).close()
    finally:
        conn.close()


def _windows_respected(times, limit, window=60.0):
    """No ``window`` seconds hold more than ``limit`` of the send times."""
    times = sorted(times)
    return all((times[i + limit] - times[i]).total_seconds() >= window
               for i in range(len(times) - limit))


def test_rate_limit_holds_every_sixty_second_window(tmp_path, shared_url):
    """Limit 3 per minute, 2 sends already 57-58 s old: of three new messages one goes
    at once and each other waits until an old send leaves the window."""
    with site(tmp_path, shared_url, settings={"modem": {"name": "slow-sim", "rate_limit": "3"},
                                              "dispatcher": {"pass_timeout": "60"}}) as s:
        _seed_recent_sends(s, "slow-sim", [58, 57])
        new_ids = [s.enqueue("+420608337726", f"limited {i}") for i in range(3)]
        assert s.run().returncode == 0, s.log()
        rows = s.rows("sms", "id, status, sent_at, transport")
        assert {r[1] for r in rows} == {"sent"} and len(rows) == 5
        times = [as_datetime(r[2]) for r in rows]
        assert _windows_respected(times, 3), sorted(times)
        new = sorted(as_datetime(r[2]) for r in rows if r[0] in new_ids)
        old = sorted(as_datetime(r[2]) for r in rows if r[0] not in new_ids)
        assert (new[1] - old[0]).total_seconds() >= 60
        assert (new[2] - old[1]).total_seconds() >= 60
        assert len(s.sim.control.sent()) == 3


def test_rate_limit_counts_only_its_own_sim(tmp_path):
    """Another modem's recent sends do not slow this one down."""
    with site(tmp_path, settings={"modem": {"name": "sim-1", "rate_limit": "2"}}) as s:
        _seed_recent_sends(s, "sim-2", [1, 2, 3, 4])
        ids = [s.enqueue("+420608337726", f"own limit {i}") for i in range(2)]
        assert s.run().returncode == 0, s.log()
        assert [r[0] for r in s.rows("sms", "id", "WHERE transport = 'sim-1'")] == ids
        assert "rate limit:" not in s.log()


def test_rate_limit_counts_parts(tmp_path):
    """Each part is one SMS for the operator: a 3-part message fills a limit of 3."""
    with site(tmp_path, settings={"modem": {"name": "parts-sim", "rate_limit": "3"}}) as s:
        _seed_recent_sends(s, "parts-sim", [58])
        long = s.enqueue("+420608337726", "z" * 400, parts=3)
        assert s.run().returncode == 0, s.log()
        [(sent_at,)] = s.rows("sms", "sent_at", f"WHERE id = {long}")
        [(earlier,)] = s.rows("sms", "sent_at", "WHERE id = 900001")
        # 1 + 3 > 3: it waited until the earlier SMS left the window
        assert (as_datetime(sent_at) - as_datetime(earlier)).total_seconds() >= 60
        assert "rate limit: 1 SMS in the last minute" in s.log()
        assert len(s.sim.control.sent()) == 3


def test_a_rate_limited_dispatcher_leaves_the_queue_to_the_others(tmp_path, mariadb):
    """While its SIM is at the limit a dispatcher holds no claims: the other modem sends
    the rest instead of waiting for it."""
    url = mariadb.create_database()
    with ExitStack() as stack:
        limited, free = start_sites(stack, tmp_path, url, ["limited", "free"])
        limited.write_config(modem={"rate_limit": "2"})
        _seed_recent_sends(limited, "limited", [56, 55])  # full for about four seconds
        ids = [limited.enqueue("+420608337726", f"spread {i}") for i in range(10)]
        waiting = limited.start()
        wait_for(lambda: "rate limit:" in limited.log(), what="the limited dispatcher waiting")
        assert free.run().returncode == 0, free.log()
        assert waiting.wait(timeout=120) == 0, limited.log()
        assert limited.rows("msg") == []
        by_transport = Counter(r[0] for r in limited.rows("sms", "transport",
                                                          "WHERE id < 900000"))
        assert sum(by_transport.values()) == len(ids)
        assert by_transport["limited"] <= 2  # all the limit allows in a minute
        assert by_transport["free"] >= 8
        texts = Counter(p["text"] for s in (limited, free) for p in s.sim.control.sent())
        assert texts == Counter(f"spread {i}" for i in range(10))


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s")
