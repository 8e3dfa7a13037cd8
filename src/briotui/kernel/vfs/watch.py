"""Which of a session's files the user also changed on disk, for live rebase.

The project has one working-tree watcher, the session manager's
(:meth:`~briotui.kernel.vfs.manager.SessionManager.start_watching`, with
:meth:`~briotui.kernel.vfs.manager.SessionManager.on_change` for front ends). Given the
paths it saw change, :func:`touched_by_user` says which of them an open session also
changed; commit re-checks and 3-way merges anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from briotui.kernel.vfs.session import Session


def touched_by_user(session: Session, paths: Iterable[str]) -> list[str]:
    """Of ``paths`` (changed on disk), those the session also changed, whose on-disk
    version no longer matches the session's base."""
    overlay = session.overlay()
    origins = {e.origin for e in overlay.values() if e.origin}
    out = []
    for rel in sorted(set(paths)):
        if (rel in overlay or rel in origins) and session.base.changed_since(rel):
            out.append(rel)
    return out
