"""What an agent's ``workspace`` imports operate on: the protocol a session implements.

The runtime's host functions (``brio:agent/workspace`` and ``workspace-write``) call a
:class:`WorkspaceView` from the agent's worker thread; implementations must therefore
be thread-safe and must never touch the user's files on a write. Sessions
(:mod:`briotui.kernel.vfs`) implement it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

EntryKind = Literal["file", "directory", "symlink"]


@dataclass(frozen=True)
class Entry:
    """One path in a workspace listing.

    Attributes:
        path: Relative, ``/``-separated, normalized.
        kind: What it is.
        size: Size in bytes (0 for directories).
        executable: Whether the executable bit is set.
    """

    path: str
    kind: EntryKind
    size: int = 0
    executable: bool = False


@runtime_checkable
class WorkspaceView(Protocol):
    """A project as one agent sees it. Paths are validated by the implementation.

    Errors are :class:`briotui.kernel.errors.BrioError` subclasses whose ``wit_kind``
    attribute (when present) names the WIT ``error-kind`` to return to the guest:
    "invalid", "denied", "not-found", "too-large", "conflict".
    """

    def read(self, path: str) -> bytes:
        """The file's bytes (the session's version, or the base if unchanged)."""
        ...

    def stat(self, path: str) -> Entry | None:
        """Describe ``path``, or None if it does not exist."""
        ...

    def list_dir(self, path: str, recursive: bool) -> list[Entry]:
        """Entries under directory ``path`` ("" is the root)."""
        ...

    def write(self, path: str, data: bytes, executable: bool) -> None:
        """Create or replace a file in the session (never in the user's tree)."""
        ...

    def delete(self, path: str) -> None:
        """Delete a file in the session."""
        ...

    def rename(self, src: str, dst: str) -> None:
        """Rename a file within the session."""
        ...

    def changes(self) -> str:
        """The session's unified diff against its base, hunk headers tagged ``#h-<id>``."""
        ...
