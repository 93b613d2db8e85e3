"""The dispatcher's state files: the journal, the delete ledger and the SMPP inbox spool.

They live in ``[dispatcher] state_dir`` and survive a reboot (which empties /run,
where the lock file is); files an older version left beside the lock file are applied
once; a torn line never stops sending or receiving; they and the SQLite database are
private (0600) whatever the umask.

The database "outage" here is real: the test holds SQLite's write lock (BEGIN
EXCLUSIVE) while the dispatcher waits for the modem, so its commit after the send
fails once the busy timeout has passed.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager

from support_dispatch import site

from check_and_send.ledger import DeleteLedger, fingerprint
from smss.config import parse_text
from smss.smpp.settings import SmppSettings
from smss.smpp.spool import Spool
from smss.store import queue
from smss.store.database import utcnow
from smss.transports.base import InboundMessage


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s")


def sent_texts(s):
    return Counter(part["text"] for part in s.sim.control.sent())


def stored_texts(s):
    return [item["decoded"]["text"] for item in s.sim.control.storage()
            if item["kind"] == "deliver"]


def private(path) -> bool:
    return stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0


@contextmanager
def split_site(tmp_path, **options):
    """A site whose lock file is in run/ (emptied by a "reboot") and state in state/."""
    with site(tmp_path, **options) as s:
        s.write_config(dispatcher={"lockfile": f"{tmp_path}/run/check_and_send.lock",
                                   "state_dir": f"{tmp_path}/state"},
                       database={"connect_timeout": "1"})
        yield s


def reboot(tmp_path):
    """What a reboot does to /run: it is empty afterwards."""
    shutil.rmtree(tmp_path / "run", ignore_errors=True)
    (tmp_path / "run").mkdir()


def journal_outage(s, tmp_path):
    """Two messages; the database refuses the commit after the first send: its outcome
    goes to the journal and the pass ends (exit 1)."""
    ids = [s.enqueue("+420608337726", f"journaled {i}") for i in range(2)]
    process = s.start()
    wait_for(lambda: s.rows("msg", "id", "WHERE send_started_at IS NOT NULL"),
             what="the first send started")
    blocker = sqlite3.connect(f"{tmp_path}/smss.db", isolation_level=None, timeout=30)
    try:
        blocker.execute("BEGIN EXCLUSIVE")  # its +CMGS answer is 2 s away
        assert process.wait(timeout=60) == 1, s.log()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert f"outcome of message {ids[0]} kept in {tmp_path}/state/" in s.log()
    return ids


def test_a_journaled_send_survives_a_reboot(tmp_path):
    with split_site(tmp_path, latency=2.0) as s:
        ids = journal_outage(s, tmp_path)
        journal = tmp_path / "state" / "check_and_send.lock.journal"
        assert private(journal)
        reboot(tmp_path)
        assert s.run().returncode == 0, s.log()
        assert f"applied journaled outcome of message {ids[0]}" in s.log()
        assert not journal.exists()
        assert s.rows("sms", "id, status, attempts") == [(i, "sent", 1) for i in ids]
        assert sent_texts(s) == Counter({"journaled 0": 1, "journaled 1": 1})


def test_a_noted_receipt_survives_a_reboot(tmp_path):
    """The link drops at AT+CMGD after the rcv commit; after a reboot the next pass must
    still know the SMS on the SIM is stored, and only delete it."""
    with split_site(tmp_path) as s:
        s.sim.control.inject("+420777123456", "stored once")
        s.sim.control.set_fault("drop", at="command", command="+CMGD", count=1)
        s.run()
        assert s.rows("rcv", "text") == [("stored once",)]
        assert stored_texts(s) == ["stored once"]
        ledger = tmp_path / "state" / "check_and_send.lock.deleting"
        assert private(ledger)
        reboot(tmp_path)
        assert s.run().returncode == 0, s.log()
        assert s.rows("rcv", "text") == [("stored once",)]
        assert stored_texts(s) == []
        assert not ledger.exists()


def test_journal_and_ledger_an_older_version_left_beside_the_lock_are_applied_once(tmp_path):
    with split_site(tmp_path) as s:
        # a pass of an older version died after its send and an outage: its claim ...
        message = s.enqueue("+420608337726", "sent by the old version")
        conn = s.connect()
        queue.claim(conn, "old-host:999999", 1)
        queue.mark_sending(conn, message)
        # ... and the SMS it had stored but not deleted
        s.sim.control.inject("+420777123456", "stored by the old version")
        [item] = s.sim.control.storage()
        inbound = InboundMessage(handles=(item["index"],), phone="+420777123456",
                                 text="stored by the old version")
        noted = utcnow()
        from smss.store import received
        with conn.transaction():
            received.insert(conn, received.Incoming("+420777123456", "stored by the old version",
                                                    transport=f"modem:{s.sim.url}"))
        conn.close()
        (tmp_path / "run").mkdir()
        old_journal = tmp_path / "run" / "check_and_send.lock.journal"
        old_journal.write_text(json.dumps(
            {"id": message, "status": "sent", "attempts": 1, "references": ["17"],
             "error": None, "transport": f"modem:{s.sim.url}"}) + "\n")
        DeleteLedger(str(tmp_path / "run" / "check_and_send.lock.deleting")).note(
            fingerprint(f"modem:{s.sim.url}", inbound), noted)

        assert s.run().returncode == 0, s.log()
        assert f"applied journaled outcome of message {message}" in s.log()
        assert s.rows("sms", "id, status, refs") == [(message, "sent", "17")]
        assert s.sim.control.sent() == []  # never sent again
        assert s.rows("rcv", "text") == [("stored by the old version",)]  # not twice
        assert stored_texts(s) == []
        assert sorted(os.listdir(tmp_path / "run")) == []  # both adopted and removed
        assert s.run().returncode == 0, s.log()
        assert s.log().count(f"applied journaled outcome of message {message}") == 1


def test_a_torn_journal_line_does_not_stop_sending(tmp_path):
    with split_site(tmp_path) as s:
        message = s.enqueue("+420608337726", "after the crash")
        (tmp_path / "state").mkdir()
        journal = tmp_path / "state" / "check_and_send.lock.journal"
        journal.write_text('{"id": 1, "status": "sent", "attempts": 1, "refer')  # power cut
        assert s.run().returncode == 0, s.log()
        assert s.rows("sms", "id, status") == [(message, "sent")]
        assert sent_texts(s) == Counter({"after the crash": 1})
        assert "line 1 cannot be read" in s.log()
        assert not journal.exists()
        assert (tmp_path / "state" / "check_and_send.lock.journal.unreadable").read_text() == (
            '{"id": 1, "status": "sent", "attempts": 1, "refer\n')


def test_a_torn_ledger_line_does_not_stop_receiving(tmp_path):
    with split_site(tmp_path) as s:
        s.sim.control.inject("+420777123456", "after the crash")
        (tmp_path / "state").mkdir()
        ledger = tmp_path / "state" / "check_and_send.lock.deleting"
        ledger.write_text('{"fingerprint": "ab", "at": "2024-01-01 00:00:00.000000"}\n'
                          '{"fingerprint": "cd", "at": "2024-01-0')
        assert s.run().returncode == 0, s.log()
        assert s.run().returncode == 0, s.log()
        assert s.rows("rcv", "text") == [("after the crash",)]
        assert stored_texts(s) == []
        assert "line 2 cannot be read" in s.log()


def test_an_smpp_spool_an_older_version_left_is_taken_over(tmp_path):
    old, new = tmp_path / "old" / "cas.smpp-inbox", tmp_path / "state" / "cas.smpp-inbox"
    previous = Spool(str(old))
    previous.open()
    [kept] = previous.add([(b"\x00\x00\x00\x10pdu", "transceiver")])
    previous.set_meta("receipt_id_format", "hex")
    previous.close()
    spool = Spool(str(new), legacy=str(old))
    spool.open()
    try:
        assert [entry.handle for entry in spool.entries()] == [kept.handle]
        assert spool.get_meta("receipt_id_format") == "hex"
        assert not old.exists()
        assert private(new)
        spool.remove([kept.handle])
    finally:
        spool.close()
    again = Spool(str(new), legacy=str(old))
    again.open()
    try:
        assert again.entries() == []  # taken over once, not again
    finally:
        again.close()


def test_the_smpp_spool_lives_in_the_state_directory():
    settings = SmppSettings.from_config(parse_text(
        "[dispatcher]\ntransport = smpp\nlockfile = /run/smss/check_and_send\n"
        "state_dir = /srv/smss-state\n[smpp]\nhost = smsc.example\n"))
    assert settings.spool == "/srv/smss-state/check_and_send.smpp-inbox"
    assert settings.legacy_spool == "/var/lib/smss/check_and_send.smpp-inbox"
    default = SmppSettings.from_config(parse_text(
        "[dispatcher]\ntransport = smpp\n[smpp]\nhost = smsc.example\n"))
    assert default.spool == "/var/lib/smss/check_and_send.smpp-inbox"
    assert default.legacy_spool == ""  # the same place: nothing to take over


def test_sqlite_files_are_private_whatever_the_umask(tmp_path, server_factory):
    """`smss run` under a 022 umask creates the database, its -wal and -shm: none of them
    may be readable by group or others (texts, password hashes)."""
    old = os.umask(0o022)
    try:
        server = server_factory()
    finally:
        os.umask(old)
    assert server.send(b"#420608337726;private\n")[0].startswith("OK")
    path = server.db_url[len("sqlite://"):]
    for name in (path, path + "-wal", path + "-shm"):
        assert os.path.exists(name), name
        assert private(name), (name, oct(os.stat(name).st_mode))


def test_state_files_are_private_whatever_the_umask(tmp_path):
    with split_site(tmp_path) as s:
        s.sim.control.inject("+420777123456", "private")
        s.sim.control.set_fault("drop", at="command", command="+CMGD", count=1)
        code = ("import os, sys\nos.umask(0)\nfrom check_and_send.cli import main\n"
                "sys.exit(main(['-c', sys.argv[1]]))\n")
        subprocess.run([sys.executable, "-c", code, s.config_path], timeout=120)
        ledger = tmp_path / "state" / "check_and_send.lock.deleting"
        assert ledger.exists(), s.log()
        assert private(ledger)
