"""Noticing the user's own edits while sessions are open (watchfiles), for live rebase.

The kernel runs :func:`watch_project` on its loop and, for each batch, asks each open
session :func:`touched_by_user` to learn which of the files it changed were also changed
by the user; the UI shows them, and commit re-checks and 3-way merges anyway.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import watchfiles

from briotui.kernel.vfs.paths import PathPolicy

if TYPE_CHECKING:
    from briotui.kernel.vfs.session import Session


async def watch_project(
    root: Path,
    policy: PathPolicy,
    *,
    stop_event: anyio.Event | None = None,
    debounce_ms: int = 200,
) -> AsyncIterator[set[str]]:
    """Yield batches of relative paths changed under ``root`` (protected dirs ignored).

    Args:
        root: The project root.
        policy: Names in its protected set (``.git``, ``.brio``) are not reported.
        stop_event: Set it to end the iteration.
        debounce_ms: How long to gather changes into one batch.
    """
    real_root = str(await anyio.Path(root).resolve())

    def keep(_change: watchfiles.Change, path: str) -> bool:
        rel = os.path.relpath(path, real_root)
        return not rel.startswith("..") and not policy.is_protected(rel.replace(os.sep, "/"))

    async for changes in watchfiles.awatch(
        real_root,
        watch_filter=keep,
        stop_event=stop_event,
        debounce=debounce_ms,
        recursive=True,
    ):
        batch = {_rel(p, real_root) for _, p in changes}
        if batch:
            yield batch


def _rel(path: str, root: str) -> str:
    return os.path.relpath(path, root).replace(os.sep, "/")


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
