"""The store's batch forms, which the windowed dispatcher path commits a round at a time:
``sent.record_many``, ``queue.delete_many``, ``Events.finished_many`` write exactly what the
one-message forms write (rows, parts, tallies, webhook and dlr-url events, dlr requests
forgotten), all in the caller's transaction; ``queue.claim_rows(sending=True)`` claims and
marks in one statement each, by primary key."""

from __future__ import annotations

import json
from typing import List

import pytest

from smss.events.record import Events
from smss.store import dlr_requests, migrations, queue, sent, tallies
from smss.store.database import connect

PHONE = "+420608337726"


def _prepared(url: str):
    conn = connect(url)
    migrations.prepare(conn)
    return conn


def _queued(conn, texts: List[str]) -> List[queue.Claimed]:
    with conn.transaction():
        ids = queue.insert(conn, [queue.NewMessage(PHONE, text, client="app") for text in texts])
        for message_id in ids[:2]:  # a Kannel dlr-url for the first two
            dlr_requests.add(conn, dlr_requests.DlrRequest(
                message_id, f"http://127.0.0.1:9/dlr?id={message_id}&type=%d", 31, "me", "app"))
    return queue.claim(conn, "test:1", len(texts))


def _outcomes(claimed: List[queue.Claimed]) -> List[sent.Outcome]:
    sent_one, sent_two, failed = claimed
    return [sent.Outcome(sent_one, sent.SENT, 1, "smpp:x", ("1a",), None, True),
            sent.Outcome(sent_two, sent.FAILED, 3, "smpp:x", (), "submit_sm refused", False),
            sent.Outcome(failed, sent.SENT, 2, "smpp:x", ("2b", "2c"), None, True)]


def _what_was_written(conn) -> dict:
    read = conn.read()
    return {
        "sms": read.query("SELECT phone, text, status, parts, client, attempts, transport,"
                          " refs, error, delivery FROM sms ORDER BY id"),
        "parts": read.query("SELECT part, transport, reference, delivery FROM sms_part"
                            " ORDER BY sms_id, part"),
        "queue": read.query("SELECT COUNT(*) FROM msg"),
        "dlr": read.query("SELECT COUNT(*) FROM dlr_request"),
        "tallies": sorted((t.name, t.transport, t.detail, t.value if t.name != "last_sent"
                           and t.name != "send_seconds_sum" else None)
                          for t in tallies.all_tallies(conn)),
        "outbox": sorted((target, kind, _stable(payload), url is not None)
                         for target, kind, payload, url
                         in read.query("SELECT target, kind, payload, url FROM outbox")),
    }


def _stable(payload: str) -> str:
    """An outbox payload without what differs from run to run (ids, times)."""
    try:
        body = json.loads(payload)
    except ValueError:
        return payload
    data = body.get("data", body)
    return json.dumps({k: v for k, v in data.items()
                       if k not in ("id", "created_at", "failed_at", "message")}, sort_keys=True)


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_a_group_commit_writes_what_one_commit_per_message_writes(backend, tmp_path, request):
    def url(name):
        if backend == "sqlite":
            return f"sqlite://{tmp_path}/{name}.db"
        return request.getfixturevalue("mariadb").create_database()

    events = Events((("app", frozenset({"failed", "received", "delivery"})),))
    one_by_one, grouped = _prepared(url("one")), _prepared(url("group"))
    for outcome in _outcomes(_queued(one_by_one, ["a", "b", "c"])):
        with one_by_one.transaction():
            sent.record(one_by_one, outcome.message, outcome.status, attempts=outcome.attempts,
                        transport=outcome.transport, references=outcome.references,
                        error=outcome.error, track_delivery=outcome.track_delivery)
            queue.delete(one_by_one, outcome.message.id)
            events.finished(one_by_one, outcome.message, outcome.status, outcome.attempts,
                            outcome.transport, outcome.references, outcome.error)
    outcomes = _outcomes(_queued(grouped, ["a", "b", "c"]))
    with grouped.transaction():
        sent.record_many(grouped, outcomes)
        queue.delete_many(grouped, [o.message.id for o in outcomes])
        events.finished_many(grouped, outcomes)
    first, second = _what_was_written(one_by_one), _what_was_written(grouped)
    assert first == second
    assert [row[2] for row in second["sms"]] == ["sent", "failed", "sent"]
    assert second["queue"][0][0] == 0 and second["dlr"][0][0] == 1  # the failed one's: gone
    assert {kind for _, kind, _, _ in second["outbox"]} == {"failed", "dlr"}
    one_by_one.close()
    grouped.close()


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_a_round_that_fails_leaves_nothing_behind(backend, tmp_path, request):
    url = (request.getfixturevalue("mariadb").create_database() if backend == "mysql"
           else f"sqlite://{tmp_path}/smss.db")
    conn = _prepared(url)
    outcomes = _outcomes(_queued(conn, ["a", "b", "c"]))
    events = Events((("app", frozenset({"failed"})),))
    with pytest.raises(RuntimeError):
        with conn.transaction():
            sent.record_many(conn, outcomes)
            queue.delete_many(conn, [o.message.id for o in outcomes])
            events.finished_many(conn, outcomes)
            queue.claim_rows(conn, "test:1", 10, sending=True)
            raise RuntimeError("the round's commit never came")
    written = _what_was_written(conn)
    assert written["sms"] == [] and written["outbox"] == [] and written["tallies"] == []
    assert written["queue"][0][0] == 3
    conn.close()


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_claim_rows_sending_claims_and_marks_by_primary_key(backend, tmp_path, request):
    url = (request.getfixturevalue("mariadb").create_database() if backend == "mysql"
           else f"sqlite://{tmp_path}/smss.db")
    conn = _prepared(url)
    with conn.transaction():
        ids = queue.insert(conn, [queue.NewMessage(PHONE, f"m{n}") for n in range(6)])
    with conn.transaction():
        first = queue.claim_rows(conn, "one", 2, sending=True)
        second = queue.claim_rows(conn, "two", 2)
    assert [m.id for m in first] == ids[:2] and [m.id for m in second] == ids[2:4]
    claims = dict(queue.claims(conn))
    assert {i: (c.owner, c.started) for i, c in claims.items()} == {
        ids[0]: ("one", True), ids[1]: ("one", True), ids[2]: ("two", False),
        ids[3]: ("two", False)}
    with conn.transaction():
        queue.set_sending(conn, ids[2:4])
        queue.release_rows(conn, ids[:2])
    claims = dict(queue.claims(conn))
    assert set(claims) == set(ids[2:4]) and all(c.started for c in claims.values())
    with conn.transaction():
        queue.delete_many(conn, ids[2:4])
    assert sorted(r[0] for r in conn.read().query("SELECT id FROM msg")) == ids[:2] + ids[4:]
    conn.close()
