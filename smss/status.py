"""What ``smss status`` prints about the queue (the server's process state is the CLI's)."""

from __future__ import annotations

from datetime import datetime
from typing import List, Optional

from smss.config import Config
from smss.store import queue as msg_table
from smss.store.database import connect, utcnow


def _age(when: Optional[datetime]) -> str:
    if when is None:
        return "-"
    seconds = max(0, int((utcnow() - when).total_seconds()))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}min ago"
    return f"{seconds // 3600}h ago"


def report(config: Config) -> List[str]:
    conn = connect(config.get("database", "url"), config.get("database", "connect_timeout"))
    try:
        stats = msg_table.stats(conn)
        last = msg_table.last_accepted(conn)
    finally:
        conn.close()
    return [
        f"queue: {stats.depth} message(s): {stats.due} due, {stats.deferred} waiting to retry,"
        f" {stats.claimed} being sent",
        f"oldest queued: {stats.oldest or '-'} UTC ({_age(stats.oldest)})",
        f"last accepted: {last or '-'} UTC ({_age(last)})",
    ]
