"""Message storage of the simulated modem (SIM "SM" or phone "ME"), pure.

Owns: the slots of one memory with a fixed capacity, the status of each stored
message (27.005 <stat>: 0 REC UNREAD, 1 REC READ, 2 STO UNSENT, 3 STO SENT), the
PDU kept in each slot (hex with the SMSC field, as AT+CMGL shows it), and the
index numbering (1-based like most modems, 0-based like Huawei when asked).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional

REC_UNREAD = 0
REC_READ = 1
STO_UNSENT = 2
STO_SENT = 3
STAT_NAMES = ("REC UNREAD", "REC READ", "STO UNSENT", "STO SENT")

DELIVER = "deliver"
SUBMIT = "submit"
STATUS_REPORT = "status_report"


class StorageFull(Exception):
    """No free slot (the modem answers +CMS ERROR: 322)."""


@dataclass
class Stored:
    index: int
    stat: int
    pdu: str  # hex, starting with the SMSC address field
    kind: str  # DELIVER, SUBMIT or STATUS_REPORT

    @property
    def tpdu_length(self) -> int:
        return tpdu_length(self.pdu)


def tpdu_length(pdu_hex: str) -> int:
    """Octets after the SMSC address field: the <length> of +CMGL/+CMGR/+CMT."""
    smsc_octets = int(pdu_hex[0:2], 16)
    return len(pdu_hex) // 2 - 1 - smsc_octets


class Storage:
    """One memory: ``capacity`` slots numbered from ``first_index``."""

    def __init__(self, name: str, capacity: int, first_index: int = 1) -> None:
        if capacity < 0:
            raise ValueError("capacity must not be negative")
        self.name = name
        self.capacity = capacity
        self.first_index = first_index
        self._slots: Dict[int, Stored] = {}

    @property
    def used(self) -> int:
        return len(self._slots)

    @property
    def full(self) -> bool:
        return self.used >= self.capacity

    def valid_index(self, index: int) -> bool:
        return self.first_index <= index < self.first_index + self.capacity

    def add(self, pdu: str, stat: int, kind: str) -> int:
        """Store in the lowest free slot; its index.  StorageFull when none is free."""
        for index in range(self.first_index, self.first_index + self.capacity):
            if index not in self._slots:
                self._slots[index] = Stored(index, stat, pdu.upper(), kind)
                return index
        raise StorageFull(self.name)

    def get(self, index: int) -> Optional[Stored]:
        return self._slots.get(index)

    def delete(self, index: int) -> bool:
        return self._slots.pop(index, None) is not None

    def entries(self, stat: Optional[int] = None) -> List[Stored]:
        """Stored messages in index order; only those with ``stat`` when given."""
        ordered = [self._slots[i] for i in sorted(self._slots)]
        return [entry for entry in ordered if stat is None or entry.stat == stat]

    def __iter__(self) -> Iterator[Stored]:
        return iter(self.entries())

    def clear(self) -> None:
        self._slots.clear()
