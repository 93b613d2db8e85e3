"""Putting concatenated (multipart) inbound SMS back together.

Owns the grouping of SMS-DELIVER parts into whole messages: parts are matched by
(sender, concatenation reference, total, reference size), may come in any order and from
separate reads (the caller passes in everything it holds, with its own handle for each
part, e.g. the SIM index), and the same part stored twice is tolerated. Pure, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable

from .pdu import Deliver

# When one concatenation key holds two different versions of a part (the 8-bit reference
# wrapped around and an old message is still on the SIM), parts are grouped by their SC time
# stamps: parts of one message reach the SC seconds apart, never more than this.
MAX_PART_SPREAD = timedelta(hours=1)


@dataclass(frozen=True)
class Assembled:
    """A whole inbound message."""

    sender: str
    text: str
    timestamp: datetime  # of the first part
    parts: int
    handles: tuple  # the caller's handles of every part in part order (duplicates included)


def _join(parts: list[Deliver]) -> str:
    """Texts in order; a surrogate pair a sender split between two parts is put together."""
    texts = [p.text for p in parts]
    for i in range(len(parts) - 1):
        high, low = parts[i].edge_surrogates[1], parts[i + 1].edge_surrogates[0]
        if high and low:
            pair = (high + low).encode("utf-16-be", "surrogatepass").decode("utf-16-be")
            texts[i] = texts[i][:-1] + pair
            texts[i + 1] = texts[i + 1][1:]
    return "".join(texts)


class _Candidate:
    """One distinct version of one part, with the handles of every copy of it."""

    __slots__ = ("deliver", "first", "items")

    def __init__(self, index: int, handle: Any, deliver: Deliver) -> None:
        self.deliver = deliver
        self.first = index
        self.items: list[tuple[int, Any, Deliver]] = [(index, handle, deliver)]


def _cluster(by_seq: dict[int, list[_Candidate]]) -> list[dict[int, _Candidate]]:
    """Split conflicting versions of parts into messages by SC time stamp proximity."""
    ordered = sorted((c for cands in by_seq.values() for c in cands),
                     key=lambda c: (c.deliver.timestamp, c.first))
    messages: list[dict[int, _Candidate]] = []
    for cand in ordered:
        seq = cand.deliver.concat.sequence
        ts = cand.deliver.timestamp
        best = None
        best_gap = MAX_PART_SPREAD
        for msg in messages:
            if seq in msg:
                continue
            gap = min(abs(ts - other.deliver.timestamp) for other in msg.values())
            if gap <= best_gap:
                best, best_gap = msg, gap
        if best is None:
            messages.append({seq: cand})
        else:
            best[seq] = cand
    return messages


def reassemble(
    items: Iterable[tuple[Any, Deliver]],
) -> tuple[list[Assembled], list[tuple[Any, Deliver]]]:
    """Group ``(handle, Deliver)`` pairs into complete messages.

    Returns (complete messages in the order their first part was given, leftover parts of
    incomplete messages in the order given). A single-part message is complete at once. A
    part given twice (same text and time stamp) is one part whose handles are all listed.
    """
    complete: list[tuple[int, Assembled]] = []
    leftover: list[tuple[int, Any, Deliver]] = []
    groups: dict[tuple, dict[int, list[_Candidate]]] = {}
    for index, (handle, deliver) in enumerate(items):
        c = deliver.concat
        if c is None:
            complete.append((index, Assembled(deliver.sender, deliver.text,
                                              deliver.timestamp, 1, (handle,))))
            continue
        by_seq = groups.setdefault((deliver.sender, c.reference, c.total, c.ref_bits), {})
        cands = by_seq.setdefault(c.sequence, [])
        for cand in cands:
            if (cand.deliver.text, cand.deliver.timestamp) == (deliver.text, deliver.timestamp):
                cand.items.append((index, handle, deliver))
                break
        else:
            cands.append(_Candidate(index, handle, deliver))

    for (sender, _ref, total, _bits), by_seq in groups.items():
        if all(len(cands) == 1 for cands in by_seq.values()):
            messages = [{seq: cands[0] for seq, cands in by_seq.items()}]
        else:
            messages = _cluster(by_seq)
        for msg in messages:
            if len(msg) == total and all(seq in msg for seq in range(1, total + 1)):
                parts = [msg[seq] for seq in range(1, total + 1)]
                handles = tuple(h for part in parts for _, h, _ in part.items)
                first = min(part.first for part in parts)
                complete.append((first, Assembled(
                    sender, _join([p.deliver for p in parts]),
                    parts[0].deliver.timestamp, total, handles)))
            else:
                leftover.extend(item for part in msg.values() for item in part.items)

    complete.sort(key=lambda pair: pair[0])
    leftover.sort(key=lambda item: item[0])
    return [a for _, a in complete], [(h, d) for _, h, d in leftover]
