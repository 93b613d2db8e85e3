"""on_receive: the program run for each received SMS (check_and_send/hooks.py).

Real passes against the simulator: the variables the program gets, text that
never meets a shell, the exit status in rcv.handler_status, a slow program
that does not hold the pass up, and the manual's meter-reading handler
answering through a real ``smss run`` server.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
import time
from datetime import datetime, timezone

from support_dispatch import site

from smss.gsm.pdu import encode_deliver

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Writes its environment and arguments to OUTDIR/<rcv id>.json; exits with $EXIT_WITH.
DUMP = r'''
import json, os, sys
outdir, rcv_id = sys.argv[1], sys.argv[-1]
with open(os.path.join(outdir, rcv_id + ".json.tmp"), "w", encoding="utf-8") as handle:
    json.dump({"env": dict(os.environ), "argv": sys.argv[1:]}, handle)
os.rename(os.path.join(outdir, rcv_id + ".json.tmp"), os.path.join(outdir, rcv_id + ".json"))
sys.exit(int(sys.argv[2]) if len(sys.argv) > 3 else 0)
'''

# Says it started, then waits until RELEASE exists (a program slower than the pass).
WAITER = r'''
import os, sys, time
started, release = sys.argv[1], sys.argv[2]
open(started, "w").close()
while not os.path.exists(release):
    time.sleep(0.05)
'''


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s")


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def hook_site(tmp_path, command, db_url=None, **dispatcher):
    settings = {"dispatcher": dict(on_receive=command, **dispatcher)}
    return site(tmp_path, db_url, settings=settings)


def handler_status(s, rcv_id):
    return s.rows("rcv", "handler_status", f"WHERE id = {rcv_id}")[0][0]


def finished(s):
    """The rcv rows whose program has finished, as (id, handler_status)."""
    return s.rows("rcv", "id, handler_status", "WHERE handler_status IS NOT NULL")


def class_1_pdu(sender, text):
    """An SMS-DELIVER with message class 1 (TP-DCS 0x11)."""
    pdu = bytearray.fromhex(encode_deliver(sender, text, timestamp=datetime.now(timezone.utc)))
    at = 1 + pdu[0] + 1  # SMSC field, first octet
    at += 2 + (pdu[at] + 1) // 2 + 1  # sender address, TP-PID
    assert pdu[at] == 0x00
    pdu[at] = 0x11
    return pdu.hex().upper()


def test_program_gets_the_message_in_its_environment(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dump = write(tmp_path / "dump.py", DUMP)
    with hook_site(tmp_path, f"{sys.executable} {dump} {out}") as s:
        s.sim.control.inject("+420777123456", "Stav vodoměru 4521")
        long_text = "Показания счётчика: лицевой счёт 100200, значение 4521. " * 3
        s.sim.control.inject("+79991234567", long_text, concat_reference=77, order=[2, 1, 3])
        s.sim.control.inject_pdu(class_1_pdu("+420608337726", "class one"))
        assert s.run().returncode == 0, s.log()
        rows = {r[2]: r for r in s.rows("rcv", "id, phone, text, parts, received_at, sent_at,"
                                         " transport")}
        assert len(rows) == 3
        wait_for(lambda: len(finished(s)) == 3, what="three programs finished")
        assert {status for _, status in finished(s)} == {0}

        def env_of(text):
            rcv_id = rows[text][0]
            data = json.loads((out / f"{rcv_id}.json").read_text(encoding="utf-8"))
            assert data["argv"] == [str(out), str(rcv_id)]  # the rcv id comes last
            return data["env"]

        plain = env_of("Stav vodoměru 4521")
        row = rows["Stav vodoměru 4521"]
        assert {k: plain[k] for k in plain if k.startswith(("SMS_", "DECODED_"))} == {
            "SMS_MESSAGES": "1", "SMS_1_NUMBER": "+420777123456",
            "SMS_1_TEXT": "Stav vodoměru 4521", "SMS_1_CLASS": "-1", "SMS_1_REFERENCE": "0",
            "DECODED_PARTS": "1", "DECODED_1_TEXT": "Stav vodoměru 4521",
        }
        assert plain["SMSS_RCV_ID"] == str(row[0])
        assert plain["SMSS_PARTS"] == "1"
        assert plain["SMSS_TRANSPORT"] == row[6] and row[6].startswith("modem:")
        assert plain["SMSS_RECEIVED_AT"] and plain["SMSS_SENT_AT"]
        assert plain["SMSS_ERROR"] == ""
        assert plain["SMSS_CONFIG"] == s.config_path

        multipart = env_of(long_text)
        assert multipart["SMS_1_TEXT"] == multipart["DECODED_1_TEXT"] == long_text
        assert multipart["SMS_1_NUMBER"] == "+79991234567"
        assert multipart["SMS_1_REFERENCE"] == "77"
        assert multipart["SMSS_PARTS"] == "3" and multipart["DECODED_PARTS"] == "1"

        flash = env_of("class one")
        assert flash["SMS_1_CLASS"] == "1"


def test_text_is_data_never_shell(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    keep = tmp_path / "keep"
    keep.mkdir()
    dump = write(tmp_path / "dump.py", DUMP)
    text = (f"$(touch {tmp_path}/a); `touch {tmp_path}/b` | rm -rf {keep} & "
            f"touch {tmp_path}/c > {tmp_path}/d; \"'\\")
    with hook_site(tmp_path, f"{sys.executable} {dump} {out}") as s:
        s.sim.control.inject("+420777123456", text)
        s.sim.control.inject("+420777123456", "$(touch /tmp/x); `id` | rm")
        assert s.run().returncode == 0, s.log()
        wait_for(lambda: len(finished(s)) == 2, what="programs finished")
        texts = sorted(json.loads(p.read_text(encoding="utf-8"))["env"]["SMS_1_TEXT"]
                       for p in out.glob("*.json"))
        assert texts == sorted([text, "$(touch /tmp/x); `id` | rm"])
        assert sorted(r[0] for r in s.rows("rcv", "text")) == texts
        assert keep.is_dir()
        assert not any((tmp_path / name).exists() for name in "abcd")


def test_exit_status_is_recorded(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dump = write(tmp_path / "dump.py", DUMP)
    with hook_site(tmp_path, f"{sys.executable} {dump} {out} 7") as s:
        s.sim.control.inject("+420777123456", "exit seven")
        assert s.run().returncode == 0, s.log()
        [(rcv_id,)] = s.rows("rcv", "id")
        wait_for(lambda: finished(s), what="the program finished")
        assert handler_status(s, rcv_id) == 7
        assert "exited with 7" in s.log()


def test_a_slow_program_does_not_hold_the_pass_up(tmp_path):
    started, release = tmp_path / "started", tmp_path / "release"
    waiter = write(tmp_path / "waiter.py", WAITER)
    with hook_site(tmp_path, f"{sys.executable} {waiter} {started} {release}",
                   on_receive_timeout="120") as s:
        s.sim.control.inject("+420777123456", "take your time")
        s.enqueue("+420608337726", "sent in the same pass")
        assert s.run().returncode == 0, s.log()
        # the pass is over while the program still waits for us
        [(rcv_id, status)] = s.rows("rcv", "id, handler_status")
        assert status is None
        assert [p["text"] for p in s.sim.control.sent()] == ["sent in the same pass"]
        assert not os.path.exists(f"{tmp_path}/check_and_send.lock")
        wait_for(started.exists, what="the program running")
        assert handler_status(s, rcv_id) is None
        release.touch()
        wait_for(lambda: finished(s), what="the program finished")
        assert handler_status(s, rcv_id) == 0


def test_a_program_over_its_time_is_killed(tmp_path):
    with hook_site(tmp_path, "sleep 30", on_receive_timeout="1") as s:
        s.sim.control.inject("+420777123456", "too slow")
        assert s.run().returncode == 0, s.log()
        [(rcv_id,)] = s.rows("rcv", "id")
        wait_for(lambda: finished(s), timeout=25, what="the program killed")
        assert handler_status(s, rcv_id) == -9
        assert "ran longer than 1s" in s.log()


def test_a_missing_program_records_127(tmp_path):
    with hook_site(tmp_path, f"{tmp_path}/no-such-program --flag") as s:
        s.sim.control.inject("+420777123456", "nobody listens")
        assert s.run().returncode == 0, s.log()
        [(rcv_id,)] = s.rows("rcv", "id")
        wait_for(lambda: finished(s), what="the status recorded")
        assert handler_status(s, rcv_id) == 127
        assert s.sim.control.storage() == []  # the SMS itself was stored and removed


# The example handler of docs/dispatcher.md (seed 001: people text "ACCOUNT VALUE" readings).
METER_HANDLER = r'''#!/usr/bin/env python3
"""smss on_receive handler: a meter reading "ACCOUNT VALUE" by SMS.

Stores the first two numbers of the text (account, reading) in a CSV file and
answers the sender by queueing an SMS through the smss server (smss-client).
Configure:  [dispatcher] on_receive = /usr/local/bin/meter-reading
"""
import csv
import os
import re
import subprocess
import sys

READINGS = os.environ.get("METER_READINGS", "/var/lib/smss/readings.csv")
CLIENT = os.environ.get("SMSS_CLIENT", "smss-client").split()

number = os.environ["SMS_1_NUMBER"]
text = os.environ["SMS_1_TEXT"]
found = re.findall(r"\d+", text)
if len(found) < 2:
    reply = "Send the account number and the reading, e.g.: 12345 678"
    status = 2
else:
    account, value = found[:2]
    with open(READINGS, "a", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerow(
            [os.environ.get("SMSS_RECEIVED_AT", ""), number, account, value])
    reply = f"Accepted: account {account}, reading {value}"
    status = 0
# -n/-m: smss-client escapes the text; host and port from $SMSS_HOST/$SMSS_PORT
# or smss-client's -c FILE ([client] host, port), else 127.0.0.1:2021
answer = subprocess.run([*CLIENT, "-q", "-n", number, "-m", reply], check=False)
sys.exit(status if answer.returncode == 0 else 1)
'''


def test_meter_reading_handler_stores_and_answers(tmp_path, server_factory, monkeypatch):
    db_url = f"sqlite://{tmp_path}/smss.db"
    readings = tmp_path / "readings.csv"
    handler = tmp_path / "meter-reading"
    write(handler, METER_HANDLER)
    handler.chmod(0o755)
    with hook_site(tmp_path, str(handler)) as s:
        server = server_factory(db_url)  # the same database as the dispatcher
        monkeypatch.setenv("SMSS_PORT", str(server.port))
        monkeypatch.setenv("SMSS_HOST", "127.0.0.1")
        monkeypatch.setenv("METER_READINGS", str(readings))
        monkeypatch.setenv("SMSS_CLIENT",
                           f"{sys.executable} {os.path.join(REPO, 'clients', 'smss_client.py')}")
        s.sim.control.inject("+420777123456", "Лицевой счёт 100200, показание 4521")
        s.sim.control.inject("+420608337726", "hello?")
        assert s.run().returncode == 0, s.log()

        wait_for(lambda: len(finished(s)) == 2, what="both handlers finished")
        statuses = dict(s.rows("rcv", "phone, handler_status"))
        assert statuses == {"+420777123456": 0, "+420608337726": 2}
        with open(readings, newline="", encoding="utf-8") as handle:
            [row] = list(csv.reader(handle))
        assert row[1:] == ["+420777123456", "100200", "4521"]

        # the replies were queued through the server; this pass or the next sends them
        replies = [
            ("+420608337726", "Send the account number and the reading, e.g.: 12345 678"),
            ("+420777123456", "Accepted: account 100200, reading 4521"),
        ]
        assert s.run().returncode == 0, s.log()
        assert s.rows("msg") == []
        assert sorted(s.rows("sms", "phone, text")) == replies
        assert sorted((p["number"], p["text"]) for p in s.sim.control.sent()) == replies
        # queued by the server (a record from 127.0.0.1), not written to the table directly
        assert [c for (c,) in s.rows("sms", "client")] == ["127.0.0.1"] * 2, s.rows("sms")


# Starts a grandchild that sleeps (its PID in GRANDCHILD), then sleeps itself: a
# program that left work behind in its process group when it ran out of time.
FORKER = r'''
import subprocess, sys, time
grandchild = subprocess.Popen(["sleep", "600"])
with open(sys.argv[1] + ".tmp", "w") as handle:
    handle.write(str(grandchild.pid))
import os
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(600)
'''

# Appends "start ID" and, after a moment, "end ID" to a log (O_APPEND: one write each).
SLOW = r'''
import os, sys, time
log, pause, rcv_id = sys.argv[1], float(sys.argv[2]), sys.argv[-1]
def note(what):
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, f"{what} {rcv_id}\n".encode())
    os.close(fd)
note("start")
release = os.path.join(os.path.dirname(log), "release-" + rcv_id)
deadline = time.monotonic() + pause
while time.monotonic() < deadline and not (pause > 100 and os.path.exists(release)):
    time.sleep(0.05)
note("end")
'''


def alive(pid):
    from smss.pidlock import pid_alive

    return pid_alive(pid)


def concurrency(lines):
    """The most programs running at once, and the order they wrote "start" in."""
    running, most, order = 0, 0, []
    for line in lines:
        what, rcv_id = line.split()
        if what == "start":
            running += 1
            order.append(int(rcv_id))
        else:
            running -= 1
        most = max(most, running)
    return most, order


def test_a_timeout_kills_the_program_s_whole_process_group(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    forker = write(tmp_path / "forker.py", FORKER)
    with hook_site(tmp_path, f"{sys.executable} {forker} {pidfile}",
                   on_receive_timeout="2") as s:
        s.sim.control.inject("+420777123456", "leaves work behind")
        assert s.run().returncode == 0, s.log()
        [(rcv_id,)] = s.rows("rcv", "id")
        wait_for(lambda: finished(s), timeout=30, what="the program killed")
        assert handler_status(s, rcv_id) == -9
        grandchild = int(pidfile.read_text())
        try:
            wait_for(lambda: not alive(grandchild), timeout=10, what="the grandchild gone")
        finally:
            if alive(grandchild):
                os.kill(grandchild, 9)


def test_at_most_on_receive_max_run_at_once_in_order_and_none_dropped(tmp_path, database_url):
    """Five SMS, at most two programs at a time, started oldest first; the pass (a
    one-shot run) is over long before the last of them starts."""
    log = tmp_path / "hooks.log"
    slow = write(tmp_path / "slow.py", SLOW)
    with hook_site(tmp_path, f"{sys.executable} {slow} {log} 0.7", database_url,
                   on_receive_max="2") as s:
        for i in range(5):
            s.sim.control.inject("+420777123456", f"reading {i}")
        assert s.run().returncode == 0, s.log()
        ids = [r[0] for r in s.rows("rcv", "id")]
        assert len(ids) == 5
        wait_for(lambda: len(finished(s)) == 5, timeout=60, what="all five programs run")
        assert {status for _, status in finished(s)} == {0}
        most, _ = concurrency(log.read_text().splitlines())
        assert most == 2
        started = [int(i) for i in re.findall(r"on_receive: rcv (\d+): started", s.log())]
        assert started == ids


def loop_children(pid):
    """(pid, state) of the direct children of ``pid``."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                children = [int(c) for c in handle.read().split()]
        except FileNotFoundError:
            continue
        for child in children:
            try:
                with open(f"/proc/{child}/stat", "rb") as handle:
                    state = handle.read().rsplit(b")", 1)[-1].split()[0].decode()
            except FileNotFoundError:
                continue
            found.append((child, state))
    return found


def test_loop_leaves_no_zombies(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dump = write(tmp_path / "dump.py", DUMP)
    with hook_site(tmp_path, f"{sys.executable} {dump} {out}", poll_interval="60") as s:
        loop = s.start("--loop")
        try:
            wait_for(lambda: "--loop started" in s.log(), what="the loop started")
            for i in range(3):
                s.sim.control.inject("+420777123456", f"hook {i}")
                wait_for(lambda i=i: len(finished(s)) == i + 1, what="the program finished")
            wait_for(lambda: not [c for c in loop_children(loop.pid) if c[1] == "Z"],
                     timeout=10, what="no zombie left under the loop")
        finally:
            loop.terminate()
            loop.wait(timeout=30)


def hook_runner_pid(s):
    from smss.pidlock import PidLock

    return PidLock(f"{s.folder}/check_and_send.lock.hooks").holder()


def test_waiting_programs_outlive_a_killed_dispatcher_and_a_killed_runner(tmp_path):
    """One program at a time; three SMS stored.  kill -9 of the --loop dispatcher
    does not drop the waiting ones; kill -9 of the runner does not either: the next
    pass starts a runner that runs them.  The one whose runner died while it ran is
    not run again, and rcv.handler_status says so (-1)."""
    log = tmp_path / "hooks.log"
    slow = write(tmp_path / "slow.py", SLOW)
    with hook_site(tmp_path, f"{sys.executable} {slow} {log} 600", on_receive_max="1",
                   poll_interval="60") as s:
        for i in range(3):
            s.sim.control.inject("+420777123456", f"waiting {i}")
        loop = s.start("--loop")
        try:
            wait_for(lambda: len(s.rows("rcv")) == 3, what="three SMS stored")
            first, second, third = [r[0] for r in s.rows("rcv", "id")]
            wait_for(lambda: log.exists() and log.read_text() == f"start {first}\n",
                     what="the first program running")
            os.kill(loop.pid, 9)
            loop.wait()
            (tmp_path / f"release-{first}").touch()
            wait_for(lambda: f"start {second}" in log.read_text(), what="the second started")
            runner = hook_runner_pid(s)
            assert runner
            os.kill(runner, 9)  # the second program runs on, orphaned; its status is lost
            wait_for(lambda: not alive(runner), what="the runner gone")
        finally:
            if loop.poll() is None:
                loop.kill()
                loop.wait()
        assert s.run().returncode == 0, s.log()  # the next pass: a new runner
        (tmp_path / f"release-{third}").touch()
        (tmp_path / f"release-{second}").touch()
        wait_for(lambda: len(finished(s)) == 3, timeout=60, what="every row accounted for")
        assert dict(finished(s)) == {first: 0, second: -1, third: 0}
        assert [line for line in log.read_text().splitlines() if line.startswith("start")] == [
            f"start {first}", f"start {second}", f"start {third}"]
