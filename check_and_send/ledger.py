"""Received messages that are being stored and deleted from the device: the delete ledger.

An inbound SMS is committed to ``rcv`` first and deleted from the SIM after.
When the delete fails (the link drops at AT+CMGD) or the pass dies between the
two, the SMS is still on the SIM and the next pass would store it a second
time (and run on_receive twice).  So before the commit the dispatcher notes
the message here (fsynced), and removes the note once the SIM no longer holds
it.  A later pass that finds a noted message on the SIM at the same place
with the same content asks the database whether a row for it was committed
after the note: if so, it only deletes it.

The file, ``<state_dir>/<lock name>[.<transport>].deleting``, is small (one line
per message between commit and delete) and is rewritten whole, atomically, with
its directory fsynced (``smss.statefiles``): it must outlive a power cut.  Notes
for messages no longer on the device are dropped after each complete read of it.
A line that cannot be read is skipped (and kept aside); a ledger an older version
left beside the lock file is merged in once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from datetime import datetime
from typing import Dict, List, Optional, Sequence, Tuple

from smss import statefiles
from smss.transports.base import InboundMessage

log = logging.getLogger(__name__)

TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def fingerprint(transport: str, message: InboundMessage) -> str:
    """Where the message is and what it says."""
    content = json.dumps([transport, [str(h) for h in message.handles], message.phone,
                          message.text, message.raw_pdu or ""], ensure_ascii=False)
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def _note(line: str) -> Tuple[str, str]:
    note = json.loads(line)
    key, at = note["fingerprint"], note["at"]
    if not isinstance(key, str):
        raise TypeError("the fingerprint is not text")
    datetime.strptime(at, TIME_FORMAT)
    return key, at


class DeleteLedger:
    def __init__(self, path: str, legacy: str = "") -> None:
        self.path = path
        self.legacy = statefiles.legacy(legacy, path)  # where an older version kept it
        self._notes: Optional[Dict[str, str]] = None  # fingerprint -> noted at (UTC)

    def _load(self) -> Dict[str, str]:
        if self._notes is None:
            self._notes = {}
            adopted = bool(self.legacy) and os.path.exists(self.legacy)
            for path in (self.legacy, self.path):
                if path:
                    self._notes.update(statefiles.read_lines(path, _note))
            if adopted:
                self._save()
                statefiles.remove(self.legacy)
                log.info("delete ledger %s moved to %s", self.legacy, self.path)
        return self._notes

    def _save(self) -> None:
        if not self.path:
            return
        notes = self._load()
        if not notes:
            statefiles.remove(self.path)
            return
        statefiles.replace(self.path, [json.dumps({"fingerprint": key, "at": at})
                                       for key, at in notes.items()])

    def noted_at(self, key: str) -> Optional[datetime]:
        at = self._load().get(key)
        return datetime.strptime(at, TIME_FORMAT) if at else None

    def note(self, key: str, at: datetime) -> None:
        self._load()[key] = at.strftime(TIME_FORMAT)
        self._save()

    def forget(self, key: str) -> None:
        if self._load().pop(key, None) is not None:
            self._save()

    def keep_only(self, keys: Sequence[str]) -> None:
        """Drop the notes of messages the device no longer holds."""
        notes = self._load()
        stale: List[str] = [key for key in notes if key not in set(keys)]
        if stale:
            for key in stale:
                del notes[key]
            self._save()
