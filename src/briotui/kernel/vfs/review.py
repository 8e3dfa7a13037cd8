"""Review decisions on a session's hunks: accept, reject with a reason, and the feedback.

A decision is a row in ``hunk_decisions``; a rejection also queues its reason and the
hunk's text in ``feedback``, which :func:`feedback` hands back to the agent once. The
session's methods (:meth:`Session.decide`, :meth:`Session.feedback` ...) call these.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from briotui.kernel.errors import HunkNotFound, WorkspaceFileNotFound

if TYPE_CHECKING:
    from briotui.kernel.vfs.diff import Hunk
    from briotui.kernel.vfs.session import Decision, Session


def decisions(self: Session) -> dict[str, tuple[Decision, str]]:
    """Stored decisions: hunk id -> (decision, reason)."""
    rows = self.manager.store.query(
        "SELECT hunk_id, decision, reason FROM hunk_decisions WHERE session_id = ?",
        (self.id,),
    )
    return {r["hunk_id"]: (r["decision"], r["reason"]) for r in rows}


def decide(
    self: Session,
    hunk_ids: Iterable[str] | None,
    decision: Decision,
    *,
    reason: str = "",
    path: str | None = None,
) -> list[str]:
    """Record ``decision`` for hunks; returns the full ids decided.

    Args:
        hunk_ids: Hunk ids or unique prefixes; None for every hunk (of ``path`` if
            given, else of the whole session).
        decision: accepted, rejected or pending.
        reason: Why (kept with rejections and handed back to the agent).
        path: Limit to one file (its new or old path).

    Raises:
        WorkspaceFileNotFound: ``path`` has no changes in the session.
        HunkNotFound: A hunk id matches no hunk (or several); the message lists the
            session's hunk ids.
    """
    d = self.diff()
    if path is not None:
        change = d.file(self._norm(path))
        if change is None:
            raise WorkspaceFileNotFound(f"{path!r} has no changes in session {self.id}.")
        pool = list(change.hunks)
    else:
        pool = d.hunks()
    if hunk_ids is None:
        chosen = pool
    else:
        chosen = []
        for raw in hunk_ids:
            hid = raw.removeprefix("#").removeprefix("h-")
            found = [h for h in pool if h.id.startswith(hid)] if hid else []
            if len(found) != 1:
                raise HunkNotFound(_no_such_hunk(self.id, raw, len(found), pool))
            chosen.append(found[0])
    now = time.time()
    with self.manager.store.transaction() as conn:
        for h in chosen:
            conn.execute(
                "INSERT OR REPLACE INTO hunk_decisions (session_id, hunk_id, path,"
                " decision, reason, updated) VALUES (?, ?, ?, ?, ?, ?)",
                (self.id, h.id, h.path, decision, reason, now),
            )
            if decision == "rejected":
                conn.execute(
                    "INSERT INTO feedback (session_id, hunk_id, path, reason, hunk,"
                    " created) VALUES (?, ?, ?, ?, ?, ?)",
                    (self.id, h.id, h.path, reason, h.text(), now),
                )
    return [h.id for h in chosen]


def _no_such_hunk(session_id: str, raw: str, matches: int, pool: list[Hunk]) -> str:
    """Why ``raw`` names no single hunk, and which hunk ids the session has."""
    what = "matches no hunk" if matches == 0 else f"matches {matches} hunks"
    if not pool:
        return f"{raw!r} {what}: session {session_id} has no hunks."
    shown = ", ".join(f"h-{h.id} ({h.path})" for h in pool[:20])
    more = f" and {len(pool) - 20} more" if len(pool) > 20 else ""
    return (
        f"{raw!r} {what} in session {session_id}. Its hunks: {shown}{more}. "
        f"See `briotui sessions diff {session_id}`."
    )


def feedback(self: Session, *, mark_delivered: bool = True) -> str:
    """Rejected hunks not yet handed back, as text for the agent's next round."""
    rows = self.manager.store.query(
        "SELECT id, path, hunk, reason FROM feedback WHERE session_id = ? AND"
        " delivered = 0 ORDER BY id",
        (self.id,),
    )
    if mark_delivered and rows:
        with self.manager.store.transaction() as conn:
            conn.executemany(
                "UPDATE feedback SET delivered = 1 WHERE id = ?", [(r["id"],) for r in rows]
            )
    parts = []
    for r in rows:
        why = r["reason"] or "(no reason given)"
        parts.append(f"The reviewer rejected this change to {r['path']}: {why}\n{r['hunk']}")
    return "\n".join(parts)


__all__ = ["decide", "decisions", "feedback"]
