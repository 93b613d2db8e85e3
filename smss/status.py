"""What ``smss status`` prints about the queue, the sent and received messages and the
transports (the server's process state is the CLI's)."""

from __future__ import annotations

from datetime import datetime
from typing import List, Optional

from smss.config import Config
from smss.store import outbox, received, sent, transports
from smss.store import queue as msg_table
from smss.store.database import connect_config, utcnow


def _age(when: Optional[datetime]) -> str:
    if when is None:
        return "never"
    seconds = max(0, int((utcnow() - when).total_seconds()))
    if seconds < 120:
        ago = f"{seconds}s ago"
    elif seconds < 7200:
        ago = f"{seconds // 60}min ago"
    elif seconds < 172800:
        ago = f"{seconds // 3600}h ago"
    else:
        ago = f"{seconds // 86400} days ago"
    return f"{when:%Y-%m-%d %H:%M:%S} UTC, {ago}"


def report(config: Config) -> List[str]:
    conn = connect_config(config)
    try:
        queued = msg_table.stats(conn)
        last_accepted = msg_table.last_accepted(conn)
        done = sent.stats(conn)
        inbound = received.count(conn), received.last_received(conn)
        links = transports.all_status(conn)
        events = outbox.summary(conn)
    finally:
        conn.close()
    lines = [
        f"queue: {queued.depth} message(s): {queued.due} due, {queued.deferred} waiting to"
        f" retry, {queued.claimed} being sent",
        f"oldest queued: {_age(queued.oldest)}",
        f"last accepted: {_age(last_accepted)}",
        "sent: " + (", ".join(f"{count} {status}" for status, count in
                              sorted(done.by_status.items())) or "none"),
        f"last sent: {_age(done.last_sent)}",
    ]
    if done.last_failure:
        when, phone, error = done.last_failure
        lines.append(f"last failure: {_age(when)}: {phone}: {error}")
    lines.append(f"received: {inbound[0]}, last {_age(inbound[1])}")
    for link in links:
        signal = f"{link.signal_dbm} dBm" if link.signal_dbm is not None else "signal unknown"
        where = f", site {link.site}" if link.site else ""
        lines.append(
            f"transport {link.name}: {link.state} at {_age(link.updated_at)};"
            f" {signal}, registration {link.registration or 'unknown'},"
            f" operator {link.operator or 'unknown'}{where}"
        )
        if link.paused:
            lines.append(f"  paused by {link.paused_by or 'unknown'} since {_age(link.paused_at)}:"
                         " the dispatcher sends nothing through it (it still receives)")
        if link.last_error:
            lines.append(f"  last error: {_age(link.last_error_at)}: {link.last_error}")
    for target in events:
        line = f"events to {target.target}: {target.pending} pending"
        if target.oldest_pending:
            line += f" (oldest {_age(target.oldest_pending)})"
        line += f", {target.failed} failed in the last 7 days"
        lines.append(line)
        if target.last_failure:
            lines.append(f"  last failed: {_age(target.last_failure)}: {target.last_error}")
    return lines
