"""Sessions: copy-on-write workspaces, hunk review, crash-safe commit into the working tree.

Entry points::

    manager = SessionManager.open(project_dir)       # also recovers interrupted commits
    session = manager.create(label="coder", task=text)  # a WorkspaceView for agents
    branch = session.fork()                           # O(changed files), never O(project)
    diff = session.diff()                             # files -> hunks with stable ids
    session.accept([hunk_id]); session.reject([hunk_id], reason="...")
    session.commit(git=True, message="...")           # journaled, atomic, crash-safe
    session.rollback()
"""

from __future__ import annotations

from briotui.kernel.vfs.commit import CommitResult, RollbackResult
from briotui.kernel.vfs.diff import FileChange, Hunk, HunkId, SessionDiff
from briotui.kernel.vfs.manager import SessionInfo, SessionManager
from briotui.kernel.vfs.merge import STRATEGIES, MergeOutcome, Strategy, merge3
from briotui.kernel.vfs.paths import DEFAULT_POLICY, DEFAULT_PROTECTED, PathPolicy
from briotui.kernel.vfs.session import (
    Decision,
    OverlayEntry,
    Session,
    SessionId,
    SessionState,
)

__all__ = [
    "DEFAULT_POLICY",
    "DEFAULT_PROTECTED",
    "STRATEGIES",
    "CommitResult",
    "Decision",
    "FileChange",
    "Hunk",
    "HunkId",
    "MergeOutcome",
    "OverlayEntry",
    "PathPolicy",
    "RollbackResult",
    "Session",
    "SessionDiff",
    "SessionId",
    "SessionInfo",
    "SessionManager",
    "SessionState",
    "Strategy",
    "merge3",
]
