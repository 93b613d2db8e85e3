"""The SMPP inbox file: every deliver_sm / data_sm is written here (fsynced) before the
SMSC gets its response, and removed once the dispatcher committed what it carried.

The SMSC forgets a message the moment it has our deliver_sm_resp, so this file is what
the SIM is for a modem: the copy that survives until ``rcv`` (or ``sms_part``, for a
receipt) holds it.  A dispatcher that dies in between finds the entries again on its
next start.  Append-only JSON lines (``add`` with the raw PDU, ``del`` with handles,
``meta`` for a fact learned about the SMSC), compacted when nothing is left or removals
dominate; written from the link's I/O thread and the dispatcher's thread, so every
method takes the lock.  The file is state: it lives in ``[dispatcher] state_dir``,
private (0600), its directory fsynced after each rewrite (``smss.statefiles``); a
spool an older version left at another place is taken over at ``open``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from smss import statefiles

log = logging.getLogger(__name__)

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"


@dataclass(frozen=True)
class Entry:
    handle: str
    received_at: datetime  # naive UTC
    frame: bytes  # the PDU as it came
    link: str  # which bind it came on (for the log)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Spool:
    def __init__(self, path: str, legacy: str = "") -> None:
        """``legacy``: where an older version kept this spool; what is left there is
        taken over at ``open`` (then the old file is removed)."""
        self.path = path
        self.legacy = statefiles.legacy(legacy, path)
        self._lock = threading.Lock()
        self._entries: Dict[str, Entry] = {}
        self._meta: Dict[str, str] = {}  # small facts learned about the SMSC
        self._lines = 0
        self._file = None

    def open(self) -> None:
        """Read what an earlier process left and keep the file open for appending."""
        with self._lock:
            folder = os.path.dirname(self.path)
            if folder:
                os.makedirs(folder, exist_ok=True)
            self._entries = {}
            self._meta = {}
            self._lines = 0
            adopted = bool(self.legacy) and os.path.exists(self.legacy)
            for path in (self.legacy, self.path):
                if path and os.path.exists(path):
                    with open(path, encoding="utf-8", errors="replace") as handle:
                        for number, line in enumerate(handle, 1):
                            self._replay(line, number)
            self._rewrite()
            if adopted:  # its entries are in our file now (a second read adds nothing)
                statefiles.remove(self.legacy)
                log.info("inbox spool %s moved to %s", self.legacy, self.path)

    def _replay(self, line: str, number: int) -> None:
        if not line.strip():
            return
        try:
            record = json.loads(line)
            if record["op"] == "add":
                entry = Entry(record["h"], datetime.strptime(record["at"], TIME_FORMAT),
                              bytes.fromhex(record["pdu"]), record.get("link", ""))
                self._entries[entry.handle] = entry
            elif record["op"] == "del":
                for handle in record["h"]:
                    self._entries.pop(handle, None)
            elif record["op"] == "meta":
                self._meta[str(record["key"])] = str(record["value"])
        except (ValueError, KeyError, TypeError) as exc:
            # a line torn by a crash mid-write: only the last one can be, and it was never
            # acknowledged to the SMSC (the fsync had not returned), so it will come again
            log.warning("%s line %d unreadable, skipped: %s", self.path, number, exc)

    @staticmethod
    def _add_line(entry: Entry) -> str:
        return json.dumps({"op": "add", "h": entry.handle,
                           "at": entry.received_at.strftime(TIME_FORMAT),
                           "pdu": entry.frame.hex(), "link": entry.link}) + "\n"

    @staticmethod
    def _meta_line(key: str, value: str) -> str:
        return json.dumps({"op": "meta", "key": key, "value": value}) + "\n"

    def _rewrite(self) -> None:
        """Write the live entries to a new file and put it in place (atomically)."""
        if self._file is not None:
            self._file.close()
        statefiles.replace(
            self.path, [self._meta_line(key, value) for key, value in self._meta.items()]
            + [self._add_line(entry) for entry in self._entries.values()], ".new")
        self._lines = len(self._entries)
        self._file = open(self.path, "a", encoding="utf-8")  # kept open for appending

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def add(self, items: Sequence[Tuple[bytes, str]]) -> List[Entry]:
        """Store (frame, link) items durably, with one fsync; returns their entries.
        Raises OSError when the file cannot take them (the SMSC must then be told to
        try again later)."""
        with self._lock:
            if self._file is None:
                raise OSError(f"{self.path}: spool is not open")
            entries = [Entry(uuid.uuid4().hex[:16], _now(), bytes(frame), link)
                       for frame, link in items]
            self._file.write("".join(self._add_line(entry) for entry in entries))
            self._file.flush()
            os.fsync(self._file.fileno())
            for entry in entries:
                self._entries[entry.handle] = entry
            self._lines += len(entries)
            return entries

    def remove(self, handles: Iterable[str]) -> None:
        with self._lock:
            gone = [handle for handle in handles if handle in self._entries]
            if not gone or self._file is None:
                return
            for handle in gone:
                del self._entries[handle]
            if not self._entries or self._lines > 4 * len(self._entries) + 100:
                self._rewrite()
                return
            self._file.write(json.dumps({"op": "del", "h": gone}) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
            self._lines += 1

    def get_meta(self, key: str) -> Optional[str]:
        with self._lock:
            return self._meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        """Remember a fact across processes (e.g. the SMSC's receipt id format)."""
        with self._lock:
            if self._meta.get(key) == value or self._file is None:
                return
            self._meta[key] = value
            self._file.write(self._meta_line(key, value))
            self._file.flush()
            os.fsync(self._file.fileno())
            self._lines += 1

    def entries(self) -> List[Entry]:
        with self._lock:
            return sorted(self._entries.values(), key=lambda e: e.received_at)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
