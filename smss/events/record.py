"""What a stored outcome tells the world, written in the transaction that stores it.

A dispatcher calls one method per outcome, inside its own transaction:

- ``finished``: a message moved to ``sms`` as sent, failed or expired;
- ``received``: an incoming SMS committed to ``rcv``;
- ``reported``: a delivery report applied to ``sms_part``.

Each adds to the tallies that ``/metrics`` shows (``smss.store.tallies``) and
queues an outbox row for every ``[webhook:NAME]`` that wants the event and for
the Kannel dlr-url the message was sent with (``smss.store.outbox``).  Because
it is the same transaction, an event exists exactly when what it tells was
committed: never lost in a crash, never told about something rolled back.
Nothing here may commit (no ``conn.read()``): the caller's transaction does.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Tuple

from smss.events import kannel
from smss.store import dlr_requests, outbox, sent, tallies
from smss.store.database import Connection, utcnow

# Upper bounds (seconds) of the accepted-to-sent histogram.
SEND_BUCKETS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
                21600.0, 86400.0)
DLR_TARGET = "dlr-url"
WEBHOOK_TARGET = "webhook:"


def iso(value: Optional[datetime]) -> Optional[str]:
    """A naive UTC time as the API writes it: ISO 8601 with Z."""
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def bucket_label(seconds: float) -> str:
    for bound in SEND_BUCKETS:
        if seconds <= bound:
            return f"{bound:g}"
    return "+Inf"


@dataclass(frozen=True)
class Events:
    """The webhooks that want each kind of event (name, events), from the configuration."""

    webhooks: Tuple[Tuple[str, FrozenSet[str]], ...] = field(default_factory=tuple)

    @classmethod
    def from_config(cls, config) -> "Events":
        return cls(tuple((name, frozenset(values["events"]))
                         for name, values in config.webhooks().items()))

    def _webhook_events(self, kind: str, data: Dict[str, Any]) -> List[outbox.NewEvent]:
        found = []
        for name, wanted in self.webhooks:
            if kind in wanted:
                event_id = outbox.new_event_id()
                body = {"id": event_id, "type": kind, "created_at": iso(utcnow()), "data": data}
                found.append(outbox.NewEvent(WEBHOOK_TARGET + name, kind,
                                             json.dumps(body, ensure_ascii=False),
                                             event_id=event_id))
        return found

    # -- outcomes

    def finished(self, conn: Connection, message, status: str, attempts: int,
                 transport: str = "", references: Sequence[str] = (),
                 error: Optional[str] = None) -> None:
        """``message`` (a ``smss.store.queue.Claimed``) left the queue as ``status``."""
        self.finished_many(conn, [sent.Outcome(message, status, attempts, transport,
                                               tuple(references), error)])

    def finished_many(self, conn: Connection, outcomes: Sequence[sent.Outcome]) -> None:
        """``finished`` for several messages at once (a dispatcher's group commit): the
        tallies added up into one row each, one look-up of dlr-urls, one outbox insert."""
        if not outcomes:
            return
        now = utcnow()
        totals: Dict[Tuple[str, str, str], float] = {}
        last_sent: Dict[str, float] = {}
        for outcome in outcomes:
            message, transport = outcome.message, outcome.transport
            counts = [("messages", transport, outcome.status, 1.0)]
            if outcome.status == "sent":
                seconds = max(0.0, (now - message.created_at).total_seconds())
                counts += [("parts", transport, "",
                            float(len(outcome.references) or message.parts)),
                           ("send_seconds", transport, bucket_label(seconds), 1.0),
                           ("send_seconds_sum", transport, "", seconds)]
                last_sent[transport] = time.time()
            for name, where, detail, amount in counts:
                totals[(name, where, detail)] = totals.get((name, where, detail), 0.0) + amount
        tallies.add(conn, [(*key, amount) for key, amount in totals.items()])
        for transport, moment in sorted(last_sent.items()):
            tallies.raise_to(conn, "last_sent", transport, "", moment)
        events: List[outbox.NewEvent] = []
        dlrs = dlr_requests.get_many(conn, [outcome.message.id for outcome in outcomes])
        for outcome in outcomes:
            message, status, error = outcome.message, outcome.status, outcome.error
            if status != "sent":
                events += self._webhook_events("failed", {
                    "id": message.id, "phone": message.phone, "text": message.text,
                    "status": status, "error": error, "attempts": outcome.attempts,
                    "parts": message.parts, "created_at": iso(message.created_at),
                    "failed_at": iso(now), "transport": outcome.transport or None,
                    "client": message.client,
                })
            dlr = dlrs.get(message.id)
            if dlr is None:
                continue
            if status == "sent":
                kind, answer = kannel.SMSC_SUCCESS, "ACK/"
            else:
                kind, answer = kannel.SMSC_FAILED, f"NACK/{error or status}"
            wanted = dlr.mask & kind or (kind == kannel.SMSC_FAILED
                                         and dlr.mask & kannel.UNDELIVERED)
            if wanted:
                events.append(_dlr_event(dlr, kind, answer, message.phone, outcome.transport,
                                         outcome.references[0] if outcome.references else ""))
            if status != "sent":
                dlr_requests.forget(conn, message.id)
        outbox.add(conn, events)

    def received(self, conn: Connection, rcv_id: int, incoming) -> None:
        """``incoming`` (a ``smss.store.received.Incoming``) was stored as ``rcv_id``."""
        tallies.add(conn, [("received", incoming.transport, "", 1.0)])
        outbox.add(conn, self._webhook_events("received", {
            "id": rcv_id, "phone": incoming.phone, "text": incoming.text,
            "received_at": iso(utcnow()), "sent_at": iso(incoming.sent_at),
            "parts": incoming.parts, "smsc": incoming.smsc, "transport": incoming.transport,
            "error": incoming.error,
        }))

    def reported(self, conn: Connection, transport: str, reference: str,
                 delivered: Optional[bool], status_code: int, update) -> None:
        """A delivery report was applied; ``update`` (``smss.store.sent.DeliveryUpdate``)
        is None when no sent part had its reference."""
        if update is None:
            tallies.add(conn, [("reports", transport, "unknown", 1.0)])
            return
        state = "pending" if delivered is None else ("delivered" if delivered else "failed")
        tallies.add(conn, [("reports", transport, state, 1.0)])
        row = conn.query_one("SELECT phone, parts FROM sms WHERE id = ?", (update.sms_id,))
        phone, parts = (row[0], int(row[1])) if row else ("", 1)
        events = self._webhook_events("delivery", {
            "id": update.sms_id, "phone": phone, "part": update.part, "parts": parts,
            "part_delivery": state, "delivery": update.message_delivery,
            "status_code": status_code, "reference": str(reference),
            "reported_at": iso(utcnow()), "transport": transport,
        })
        dlr = dlr_requests.get(conn, update.sms_id)
        if dlr is not None:
            kind = answer = None
            if delivered is None:
                kind, answer = kannel.BUFFERED, "Buffered"
            elif not delivered:
                kind, answer = kannel.UNDELIVERED, "Failed"
            elif update.message_delivery == "delivered":  # every part arrived
                kind, answer = kannel.DELIVERED, "Success"
            if kind is not None and dlr.mask & kind:
                events.append(_dlr_event(dlr, kind, answer, phone, transport, str(reference)))
            if update.message_delivery in ("delivered", "failed"):
                dlr_requests.forget(conn, update.sms_id)
        outbox.add(conn, events)


def _dlr_event(dlr: dlr_requests.DlrRequest, kind: int, answer: str, phone: str,
               transport: str, reference: str) -> outbox.NewEvent:
    report = kannel.Report(type=kind, answer=answer, phone=phone, sender=dlr.sender,
                           smsc=transport, message_id=str(dlr.msg_id), foreign_id=reference,
                           service=dlr.service, time=utcnow(), dlr_url=dlr.url)
    description = json.dumps({"message": dlr.msg_id, "type": kind, "answer": answer})
    return outbox.NewEvent(DLR_TARGET, "dlr", description, url=kannel.fill(dlr.url, report))
