"""Received messages that are being stored and deleted from the device: ``<lockfile>.deleting``.

An inbound SMS is committed to ``rcv`` first and deleted from the SIM after.
When the delete fails (the link drops at AT+CMGD) or the pass dies between the
two, the SMS is still on the SIM and the next pass would store it a second
time (and run on_receive twice).  So before the commit the dispatcher notes
the message here (fsynced), and removes the note once the SIM no longer holds
it.  A later pass that finds a noted message on the SIM at the same place
with the same content asks the database whether a row for it was committed
after the note: if so, it only deletes it.

The file is small (one line per message between commit and delete) and is
rewritten whole, atomically.  Notes for messages no longer on the device are
dropped after each complete read of it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from datetime import datetime
from typing import Dict, List, Optional, Sequence

from smss.transports.base import InboundMessage

log = logging.getLogger(__name__)

TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def fingerprint(transport: str, message: InboundMessage) -> str:
    """Where the message is and what it says."""
    content = json.dumps([transport, [str(h) for h in message.handles], message.phone,
                          message.text, message.raw_pdu or ""], ensure_ascii=False)
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


class DeleteLedger:
    def __init__(self, path: str) -> None:
        self.path = path
        self._notes: Optional[Dict[str, str]] = None  # fingerprint -> noted at (UTC)

    def _load(self) -> Dict[str, str]:
        if self._notes is None:
            self._notes = {}
            if self.path and os.path.exists(self.path):
                with open(self.path, encoding="utf-8") as handle:
                    for line in handle:
                        if line.strip():
                            note = json.loads(line)
                            self._notes[note["fingerprint"]] = note["at"]
        return self._notes

    def _save(self) -> None:
        if not self.path:
            return
        notes = self._load()
        if not notes:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            return
        temporary = self.path + ".tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            for key, at in notes.items():
                handle.write(json.dumps({"fingerprint": key, "at": at}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)

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
