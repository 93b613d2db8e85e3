"""All SQL on ``audit``: who did what through the web interface, the API or the
``smss user`` / ``smss token`` commands.

An action and its audit row are written in one transaction (``record`` runs in
the caller's), so the trail never shows an action that did not happen, nor
misses one that did.  ``actor`` names the user or token and the door:
``web:alice``, ``api:nagios``, ``cli:root``.
"""

from __future__ import annotations

from typing import Optional

from smss.store import paging
from smss.store.database import Connection, utcnow

_LISTING = paging.Listing("audit", ("id", "at", "actor", "action", "target", "detail"), "at",
                          ("at",))


def record(conn: Connection, actor: str, action: str, target: str = "",
           detail: Optional[str] = None) -> None:
    """One row, in the caller's transaction."""
    conn.execute(
        "INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
        (utcnow(), actor[:128], action[:32], str(target)[:160],
         detail[:255] if detail else None)).close()


def page(conn: Connection, *, actor: Optional[str] = None,
         before: Optional[paging.Cursor] = None, after: Optional[paging.Cursor] = None,
         limit: int = 50) -> paging.Page:
    """The trail newest first (``smss.store.paging``), optionally of one actor."""
    where, params = ([], []) if not actor else (["actor = ?"], [actor])
    return paging.fetch(conn, _LISTING, where, params, before=before, after=after,
                        limit=limit)
