"""Sessions: copy-on-write views of a project that agents read and write.

A :class:`Session` is an overlay (path -> blob id, or deleted) on a shared
:class:`~briotui.kernel.vfs.snapshot.BaseSnapshot`. Unchanged files read the base;
writes go to the content-addressed blob store and a row in ``session_files``; the
user's tree is never touched until :meth:`Session.commit`. Forking copies only the
overlay (its changed files), never the project. Every method is thread-safe: the
runtime calls a session from agent worker threads.

:class:`~briotui.kernel.vfs.manager.SessionManager` (its own module) is the per-project
entry point: it opens the store, recovers interrupted commits, watches the project, and
creates, finds and lists sessions. Review decisions are kept by
:mod:`briotui.kernel.vfs.review`. This module imports neither the commit nor the
materialize module: a session commits, rolls back and materializes through its manager,
so ``session -> commit -> session`` is no import cycle.

A symlink is content, as in git: an overlay entry flagged ``symlink`` whose blob is the
link's target bytes. Sessions never follow a link: reading one is refused with its
target named, and it is shown, reviewed and committed as a link. What a session left
out (special files, files over the size limit, paths a command made that the session
refused) is listed with the reason by :meth:`Session.left_out`.

One piece: :class:`Session` is one class whose file operations, fork and merge all go
through the same overlay and lock; review decisions and the manager live in their own
modules.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NewType

from briotui.kernel.errors import (
    FileTooLarge,
    MergeConflict,
    PathDenied,
    PathRefused,
    SessionStateError,
    WorkspaceFileNotFound,
)
from briotui.kernel.vfs import review
from briotui.kernel.vfs.diff import FileChange, SessionDiff, file_change, is_binary
from briotui.kernel.vfs.merge import Strategy, merge3, split_lines
from briotui.kernel.vfs.snapshot import BaseSnapshot
from briotui.kernel.workspace import Entry

if TYPE_CHECKING:
    from briotui.kernel.vfs.commit import CommitResult, RollbackResult
    from briotui.kernel.vfs.manager import SessionManager as SessionManager
    from briotui.kernel.vfs.materialize import Materialized

SessionId = NewType("SessionId", str)
SessionState = Literal["open", "committed", "discarded", "rolled-back"]
Decision = Literal["accepted", "rejected", "pending"]

DEFAULT_MAX_FILE_SIZE = 32 * 1024 * 1024
"""The largest file a session accepts or reads (bytes)."""


@dataclass(frozen=True)
class OverlayEntry:
    """A session's version of one path.

    Attributes:
        blob: The content's blob id; None means deleted in the session.
        executable: The executable bit.
        size: Content size in bytes.
        origin: The base path this file was renamed from, if any.
        symlink: It is a symlink; the blob holds its target (git mode 120000).
    """

    blob: str | None
    executable: bool = False
    size: int = 0
    origin: str | None = None
    symlink: bool = False


def shown_version(data: bytes | None, link: bool) -> str:
    """One side of a whole-file conflict as text for the user."""
    if data is None:
        return "(no file)"
    if link:
        return f"(symbolic link to {os.fsdecode(data)})"
    if is_binary(data):
        return "<binary>"
    return data.decode("utf-8", "replace")


def whole_region(
    b: bytes | None, b_l: bool, o: bytes | None, o_l: bool, t: bytes | None, t_l: bool
) -> dict[str, Any]:
    """A conflict that is the whole file (a link, binary content, or deleted on one side):
    it is resolved by taking one side's file (or, for two texts, both)."""
    return {
        "base": shown_version(b, b_l),
        "ours": shown_version(o, o_l),
        "theirs": shown_version(t, t_l),
        "whole": True,
    }


def _link_refused(rel: str, target: bytes) -> PathDenied:
    shown = os.fsdecode(target)[:200]
    return PathDenied(
        f"{rel!r} is a symbolic link to {shown!r}; sessions never follow links. Read the "
        "file it points to, if that is inside the project."
    )


class Session:
    """A copy-on-write view of the project; implements ``WorkspaceView``.

    Attributes:
        id: The session id.
        base: The shared base snapshot.
        parent_id: The session this one was forked from.
        label: A short name.
        task: The task text.
        created: Creation time.
    """

    def __init__(
        self,
        manager: SessionManager,
        sid: SessionId,
        base: BaseSnapshot,
        *,
        parent_id: str | None,
        state: SessionState,
        label: str,
        task: str,
        created: float,
        overlay: dict[str, OverlayEntry],
        fork_point: dict[str, OverlayEntry] | None,
    ) -> None:
        self.manager = manager
        self.id = sid
        self.base = base
        self.parent_id = SessionId(parent_id) if parent_id else None
        self.label = label
        self.task = task
        self.created = created
        self._state: SessionState = state
        self._overlay = overlay
        self._fork_point = fork_point
        self._lock = threading.RLock()
        self._version = 0
        """Bumped by every change of the overlay: the key of the cached diff."""
        self._diff_cache: tuple[int, SessionDiff] | None = None

    # -- state --------------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        """open, committed, discarded or rolled-back."""
        return self._state

    def _set_state(self, state: SessionState) -> None:
        with self._lock, self.manager.store.transaction() as conn:
            conn.execute(
                "UPDATE sessions SET state = ?, updated = ? WHERE id = ?",
                (state, time.time(), self.id),
            )
            self._state = state

    def reload_state(self) -> None:
        """Re-read the state from the database (after a commit by another process)."""
        rows = self.manager.store.query("SELECT state FROM sessions WHERE id = ?", (self.id,))
        if rows:
            self._state = rows[0]["state"]

    def _require_open(self) -> None:
        if self._state != "open":
            raise SessionStateError(
                f"Session {self.id} is {self._state}; it can no longer change. Fork it or "
                "start a new session."
            )

    def overlay(self) -> dict[str, OverlayEntry]:
        """A copy of the session's changed paths."""
        with self._lock:
            return dict(self._overlay)

    def restore_overlay(self, overlay: dict[str, OverlayEntry]) -> None:
        """Put the session's changed paths back to ``overlay`` (an earlier :meth:`overlay`).

        A run lost with its worker is retried from the session as it was before that run:
        what the lost run wrote is dropped, path by path, before the retry starts.
        """
        self._require_open()
        current = self.overlay()
        for rel in sorted(set(current) | set(overlay)):
            if current.get(rel) != overlay.get(rel):
                self._put(rel, overlay.get(rel))

    # -- path helpers ---------------------------------------------------------------

    def _norm(self, path: str, *, allow_root: bool = False) -> str:
        return self.manager.policy.normalize(path, allow_root=allow_root)

    def _file_exists(self, rel: str) -> bool:
        entry = self._overlay.get(rel)
        if entry is not None:
            return entry.blob is not None
        return rel in self.base.files

    def _dir_exists(self, rel: str) -> bool:
        if rel == "":
            return True
        prefix = rel + "/"
        for p, e in self._overlay.items():
            if e.blob is not None and p.startswith(prefix):
                return True
        for p in self.base.paths_under(rel):
            found = self._overlay.get(p)
            if found is None or found.blob is not None:
                return True
        return False

    # -- WorkspaceView -----------------------------------------------------------

    def read(self, path: str) -> bytes:
        """The file's bytes: the session's version, or the base if unchanged.

        Raises:
            PathRefused: The path is malformed or denied.
            WorkspaceFileNotFound: No such file in the session.
            FileTooLarge: Over the size limit.
        """
        rel = self._norm(path)
        with self._lock:
            entry = self._overlay.get(rel)
            if entry is None and rel not in self.base.files:
                self._refuse_left_out(rel)
                what = "a directory" if self._dir_exists(rel) else "not in the session"
                raise WorkspaceFileNotFound(f"{rel!r} is {what}; there is no file to read.")
        if entry is not None:
            if entry.blob is None:
                raise WorkspaceFileNotFound(f"{rel!r} was deleted in this session.")
            data = self.manager.blobs.get(entry.blob)
            if entry.symlink:
                raise _link_refused(rel, data)
            return data
        if self.base.files[rel].symlink:
            raise _link_refused(rel, self.base.read(rel))
        size = self.base.files[rel].size
        if size > self.manager.max_file_size:
            raise FileTooLarge(
                f"{rel!r} is {size} bytes; sessions read files up to "
                f"{self.manager.max_file_size} bytes."
            )
        return self.base.read(rel)

    def stat(self, path: str) -> Entry | None:
        """Describe ``path``, or None if it does not exist in the session."""
        rel = self._norm(path, allow_root=True)
        with self._lock:
            entry = self._overlay.get(rel)
            if entry is not None and entry.blob is not None:
                return Entry(
                    rel, "symlink" if entry.symlink else "file", entry.size, entry.executable
                )
            if entry is None and rel in self.base.files:
                meta = self.base.files[rel]
                return Entry(rel, "symlink" if meta.symlink else "file", meta.size, meta.executable)
            if self._dir_exists(rel):
                return Entry(rel, "directory")
        return None

    def list_dir(self, path: str, recursive: bool) -> list[Entry]:
        """Entries under directory ``path`` ("" is the root), sorted by path.

        Raises:
            WorkspaceFileNotFound: ``path`` is not a directory of the session.
        """
        rel = self._norm(path, allow_root=True)
        with self._lock:
            if not self._dir_exists(rel):
                raise WorkspaceFileNotFound(f"{rel!r} is not a directory in the session.")
            prefix = rel + "/" if rel else ""
            files: dict[str, Entry] = {}
            for p in self.base.paths_under(rel):
                if p in self._overlay:
                    continue
                meta = self.base.files[p]
                files[p] = Entry(
                    p, "symlink" if meta.symlink else "file", meta.size, meta.executable
                )
            for p, e in self._overlay.items():
                if e.blob is not None and p.startswith(prefix):
                    files[p] = Entry(p, "symlink" if e.symlink else "file", e.size, e.executable)
        out: dict[str, Entry] = {}
        for p, entry in files.items():
            rest = p[len(prefix) :]
            parts = rest.split("/")
            for i in range(1, len(parts)):
                d = prefix + "/".join(parts[:i])
                if recursive or i == 1:
                    out.setdefault(d, Entry(d, "directory"))
            if recursive or len(parts) == 1:
                out[p] = entry
        return [out[k] for k in sorted(out)]

    def write(self, path: str, data: bytes, executable: bool) -> None:
        """Create or replace a file in the session (never in the user's tree).

        Raises:
            PathRefused: The path is malformed, denied or names a directory.
            FileTooLarge: ``data`` is over the size limit.
            SessionStateError: The session is not open.
        """
        rel = self._norm(path)
        if len(data) > self.manager.max_file_size:
            raise FileTooLarge(
                f"{len(data)} bytes for {rel!r}; sessions take files up to "
                f"{self.manager.max_file_size} bytes."
            )
        self._write_entry(rel, bytes(data), bool(executable), symlink=False)

    def write_symlink(self, path: str, target: bytes) -> None:
        """Create or replace ``path`` in the session with a symlink to ``target``.

        The link is content (like git's mode 120000): it is never followed by the
        session, and is reviewed and committed as a link.

        Raises:
            PathRefused: The path is malformed, denied or names a directory, or the
                target is empty, too long or contains a NUL byte.
            SessionStateError: The session is not open.
        """
        rel = self._norm(path)
        if not target or b"\0" in target or len(target) > 4096:
            raise PathRefused(
                f"The symlink target for {rel!r} must be 1 to 4096 bytes without NUL."
            )
        self._write_entry(rel, bytes(target), False, symlink=True)

    def _write_entry(self, rel: str, data: bytes, executable: bool, *, symlink: bool) -> None:
        bid = self.manager.blobs.put(data)
        with self._lock:
            self._require_open()
            if rel not in self._overlay and rel in self.base.left_out:
                raise PathDenied(
                    f"{rel!r} was left out of the session ({self.base.left_out[rel]}); "
                    "the session cannot replace it."
                )
            if self._dir_exists(rel):
                raise PathRefused(f"{rel!r} is a directory in the session; cannot write it.")
            parts = rel.split("/")
            for i in range(1, len(parts)):
                if self._file_exists("/".join(parts[:i])):
                    raise PathRefused(
                        f"{'/'.join(parts[:i])!r} is a file, so {rel!r} cannot be created."
                    )
            old = self._overlay.get(rel)
            origin = old.origin if old is not None else None
            self._touch_base(rel)
            self._put(rel, OverlayEntry(bid, executable, len(data), origin, symlink))

    def delete(self, path: str) -> None:
        """Delete a file in the session.

        Raises:
            WorkspaceFileNotFound: No such file.
            SessionStateError: The session is not open.
        """
        rel = self._norm(path)
        with self._lock:
            self._require_open()
            if not self._file_exists(rel):
                raise WorkspaceFileNotFound(f"{rel!r} is not a file in the session.")
            self._touch_base(rel)
            if rel in self.base.files:
                self._put(rel, OverlayEntry(None))
            else:
                self._put(rel, None)

    def rename(self, src: str, dst: str) -> None:
        """Rename a file within the session (replacing ``dst`` if it is a file).

        Raises:
            WorkspaceFileNotFound: ``src`` is not a file.
            PathRefused: ``dst`` is a directory or malformed.
        """
        s = self._norm(src)
        d = self._norm(dst)
        with self._lock:
            self._require_open()
            if not self._file_exists(s):
                raise WorkspaceFileNotFound(f"{s!r} is not a file in the session.")
            if s == d:
                return
            data, executable, link = self.content(s)
            assert data is not None
            prior = self._overlay.get(s)
            origin = prior.origin if prior is not None else (s if s in self.base.files else None)
            if origin == d:
                origin = None
            if link:
                self.write_symlink(d, data)
            else:
                self.write(d, data, executable)
            moved = self._overlay[d]
            self._put(d, OverlayEntry(moved.blob, moved.executable, moved.size, origin, link))
            self.delete(s)

    def changes(self) -> str:
        """The session's unified diff against its base, hunk headers tagged ``#h-<id>``."""
        return self.diff().text()

    # -- overlay persistence ---------------------------------------------------------

    def _touch_base(self, rel: str) -> None:
        if rel in self.base.files and rel not in self._overlay:
            self.base.capture(rel)

    def _put(self, rel: str, entry: OverlayEntry | None) -> None:
        with self.manager.store.transaction() as conn:
            if entry is None:
                conn.execute(
                    "DELETE FROM session_files WHERE session_id = ? AND layer = 'work' AND"
                    " path = ?",
                    (self.id, rel),
                )
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO session_files (session_id, layer, path, blob,"
                    " executable, origin, size, symlink) VALUES (?, 'work', ?, ?, ?, ?, ?, ?)",
                    (
                        self.id,
                        rel,
                        entry.blob,
                        int(entry.executable),
                        entry.origin,
                        entry.size,
                        int(entry.symlink),
                    ),
                )
            conn.execute("UPDATE sessions SET updated = ? WHERE id = ?", (time.time(), self.id))
        with self._lock:
            if entry is None:
                self._overlay.pop(rel, None)
            else:
                self._overlay[rel] = entry
            self._version += 1

    # -- forks --------------------------------------------------------------------------

    def fork(self, *, label: str = "") -> Session:
        """A branch of this session: same base, a copy of the overlay (not the project)."""
        with self._lock:
            overlay = dict(self._overlay)
        return self.manager._insert(
            self.base,
            parent=self,
            overlay=overlay,
            label=label or f"fork of {self.id}",
            task=self.task,
        )

    def fork_point(self) -> dict[str, OverlayEntry] | None:
        """The parent's overlay at fork time (None if not a fork)."""
        return None if self._fork_point is None else dict(self._fork_point)

    # -- diff and decisions ---------------------------------------------------------

    def version(
        self, rel: str, overlay: dict[str, OverlayEntry] | None = None
    ) -> tuple[bytes | None, bool]:
        """The bytes (None if absent) and executable bit of ``rel`` in ``overlay``.

        ``overlay`` defaults to the session's own; pass another layer (a fork point) to
        read that state over the same base.
        """
        data, executable, _link = self.content(rel, overlay)
        return data, executable

    def content(
        self, rel: str, overlay: dict[str, OverlayEntry] | None = None
    ) -> tuple[bytes | None, bool, bool]:
        """The bytes (None if absent), executable bit and symlink flag of ``rel``.

        A symlink's bytes are its target; nothing is followed. ``overlay`` is as for
        :meth:`version`.
        """
        layer = self._overlay if overlay is None else overlay
        entry = layer.get(rel)
        if entry is not None:
            if entry.blob is None:
                return None, False, False
            return self.manager.blobs.get(entry.blob), entry.executable, entry.symlink
        meta = self.base.files.get(rel)
        if meta is not None:
            return self.base.read(rel), meta.executable and not meta.symlink, meta.symlink
        return None, False, False

    def left_out(self) -> list[tuple[str, str]]:
        """What the session left out, and why: ``(path, reason)`` sorted by path.

        The project's special files and files over the size limit (left out of the
        base), and what commands created in the session's work directory that the
        session did not take.
        """
        with self._lock:
            overlay = dict(self._overlay)
        found = {p: why for p, why in self.base.left_out.items() if p not in overlay}
        for r in self.manager.store.query(
            "SELECT path, reason FROM session_left_out WHERE session_id = ?", (self.id,)
        ):
            found[r["path"]] = r["reason"]
        return sorted(found.items())

    def set_left_out(self, items: dict[str, str]) -> None:
        """Replace the list of what commands made that the session did not take."""
        with self.manager.store.transaction() as conn:
            conn.execute("DELETE FROM session_left_out WHERE session_id = ?", (self.id,))
            conn.executemany(
                "INSERT INTO session_left_out (session_id, path, reason) VALUES (?, ?, ?)",
                [(self.id, p, why) for p, why in sorted(items.items())],
            )

    def _refuse_left_out(self, rel: str) -> None:
        why = self.base.left_out.get(rel)
        if why is None:
            return
        if why.startswith("too large"):
            raise FileTooLarge(f"{rel!r} was left out of the session: {why}.")
        raise PathDenied(f"{rel!r} was left out of the session: {why}.")

    def diff(self, *, reuse: bool = True) -> SessionDiff:
        """The session's changes against its base, split into hunks.

        Computed once per session version: every write, delete or rename makes a new
        version, and until then accept, reject, commit and the review screen share
        one diff (the base is immutable, so the overlay alone decides it).

        Args:
            reuse: Return the diff already computed for this version, if any (False
                computes it again, for measuring).
        """
        with self._lock:
            version = self._version
            cached = self._diff_cache
            if reuse and cached is not None and cached[0] == version:
                return cached[1]
            overlay = dict(self._overlay)
        result = self._compute_diff(overlay)
        with self._lock:
            if self._version == version:
                self._diff_cache = (version, result)
        return result

    def _compute_diff(self, overlay: dict[str, OverlayEntry]) -> SessionDiff:
        renamed_from = {
            e.origin for e in overlay.values() if e.blob is not None and e.origin is not None
        }
        changes: list[FileChange] = []
        blobs = self.manager.blobs
        for rel in sorted(overlay):
            entry = overlay[rel]
            if entry.blob is None:
                if rel in renamed_from or rel not in self.base.files:
                    continue
                old = self.base.read(rel)
                change = file_change(
                    path=rel,
                    old_path=rel,
                    old=old,
                    new=None,
                    old_exec=self.base.files[rel].executable,
                    new_exec=False,
                    old_symlink=self.base.files[rel].symlink,
                )
            else:
                new = blobs.get(entry.blob)
                origin = entry.origin
                if (
                    origin is not None
                    and origin in self.base.files
                    and overlay.get(origin, OverlayEntry("x")).blob is None
                ):
                    old_path = origin
                elif rel in self.base.files:
                    old_path = rel
                else:
                    old_path = ""
                if old_path:
                    old_b: bytes | None = self.base.read(old_path)
                    old_exec = self.base.files[old_path].executable
                    old_link = self.base.files[old_path].symlink
                else:
                    old_b, old_exec, old_link = None, False, False
                change = file_change(
                    path=rel,
                    old_path=old_path or rel,
                    old=old_b,
                    new=new,
                    old_exec=old_exec,
                    new_exec=entry.executable,
                    old_symlink=old_link,
                    new_symlink=entry.symlink,
                )
            if change is not None:
                changes.append(change)
        return SessionDiff(tuple(changes))

    # -- review decisions (kept in briotui.kernel.vfs.review) ---------------------------

    def decisions(self) -> dict[str, tuple[Decision, str]]:
        """Stored decisions: hunk id -> (decision, reason); see :func:`review.decisions`."""
        return review.decisions(self)

    def decide(
        self,
        hunk_ids: Iterable[str] | None,
        decision: Decision,
        *,
        reason: str = "",
        path: str | None = None,
    ) -> list[str]:
        """Record ``decision`` for hunks; see :func:`review.decide`.

        Raises:
            SessionStateError: The session is no longer open (a committed session's
                decisions are what was committed).
        """
        self.reload_state()  # another briotui may have committed it
        self._require_open()
        return review.decide(self, hunk_ids, decision, reason=reason, path=path)

    def accept(
        self, hunk_ids: Sequence[str] | None = None, *, path: str | None = None
    ) -> list[str]:
        """Accept hunks (all of them, or of one file, when ``hunk_ids`` is None)."""
        return self.decide(hunk_ids, "accepted", path=path)

    def reject(
        self, hunk_ids: Sequence[str] | None = None, *, reason: str = "", path: str | None = None
    ) -> list[str]:
        """Reject hunks, with an optional reason handed back to the agent as feedback."""
        return self.decide(hunk_ids, "rejected", reason=reason, path=path)

    def accepted_ids(self) -> set[str]:
        """Ids of the accepted hunks."""
        return {h for h, (d, _) in self.decisions().items() if d == "accepted"}

    def feedback(self, *, mark_delivered: bool = True) -> str:
        """Rejected hunks not yet handed back, as text; see :func:`review.feedback`."""
        return review.feedback(self, mark_delivered=mark_delivered)

    def discard(self) -> None:
        """Discard an open session (its data stays until cleaned; nothing is applied)."""
        with self._lock:
            self._require_open()
            self._set_state("discarded")

    # -- commit, rollback, merge, materialize ---------------------------------------

    def commit(
        self,
        *,
        git: bool = False,
        message: str | None = None,
        include_staged: bool = False,
        provenance: str | None = None,
    ) -> CommitResult:
        """Apply the accepted hunks to the working tree; see :func:`commit_session`."""
        with self._lock:
            return self.manager.commit_session(
                self,
                git=git,
                message=message,
                include_staged=include_staged,
                provenance=provenance,
            )

    def rollback(self, *, force: bool = False) -> RollbackResult:
        """Discard (open) or undo (committed); see :func:`rollback_session`."""
        with self._lock:
            return self.manager.rollback_session(self, force=force)

    def merge_from(
        self, other: Session, *, strategy: Strategy = "three-way", keep_going: bool = False
    ) -> list[str]:
        """Merge branch ``other`` into this session, file by file (3-way).

        The merge base is ``other``'s fork point when it was forked from this session,
        else the shared project base.

        Args:
            other: The branch to merge.
            strategy: How overlapping changes are settled.
            keep_going: Under ``three-way``, merge every conflict-free file and region
                anyway, keep this session's side in the conflicting regions, and raise
                :class:`MergeConflict` only after (its message says what was merged).

        Returns:
            The paths changed in this session.

        Raises:
            MergeConflict: Overlapping changes under ``three-way``; nothing changed
                (with ``keep_going``: everything else was merged).
            SessionStateError: Different bases, or this session is not open.
        """
        if other.base.id != self.base.id:
            raise SessionStateError(
                f"Sessions {self.id} and {other.id} start from different project states; "
                "only branches of the same session can be merged."
            )
        mb = other.fork_point() if other.parent_id == self.id else {}
        assert mb is not None
        with self._lock:
            self._require_open()
            theirs_overlay = other.overlay()
            results: list[tuple[str, bytes | None, bool]] = []
            conflicts: list[dict[str, object]] = []
            links: dict[str, bytes] = {}
            for rel in sorted(set(theirs_overlay) | set(mb)):
                b, b_x, b_l = self.content(rel, mb)
                t, t_x, t_l = other.content(rel)
                if (b, b_x, b_l) == (t, t_x, t_l):
                    continue
                o, o_x, o_l = self.content(rel)
                if b_l or t_l or o_l:  # a link is one value: no line merge
                    if (o, o_x, o_l) == (b, b_x, b_l) or strategy == "theirs":
                        if t is not None and t_l:
                            links[rel] = t
                        else:
                            results.append((rel, t, t_x))
                    elif (o, o_x, o_l) != (t, t_x, t_l) and strategy != "ours":
                        conflicts.append(
                            {"path": rel, "regions": [whole_region(b, b_l, o, o_l, t, t_l)]}
                        )
                    continue
                out = merge3(b, o, t, strategy=strategy, labels=(self.id, "base", other.id))
                if not out.clean:
                    regions: list[dict[str, Any]] = (
                        [
                            {"base": r.base, "ours": r.ours, "theirs": r.theirs, "line": r.line}
                            for r in out.conflicts
                        ]
                        if out.content is not None
                        # binary, or deleted on one side: the file is one region
                        else [whole_region(b, b_l, o, o_l, t, t_l)]
                    )
                    conflicts.append({"path": rel, "regions": regions})
                    if not keep_going:
                        continue
                    # the clean regions merged, ours kept where both sides changed
                    out = merge3(b, o, t, strategy="ours")
                    if out.content is None:
                        continue
                    kept = split_lines(out.content.decode("utf-8", "replace"))
                    for region in regions:
                        line = region.get("line", -1)
                        if 0 <= line <= len(kept):  # what an empty side is checked by
                            region["above"] = kept[line - 1] if line > 0 else ""
                ex = t_x if t_x != b_x else o_x
                content = None if out.deleted else out.content
                if (content, ex if content is not None else False) != (o, o_x):
                    results.append((rel, content, ex))
            names = ", ".join(str(c["path"]) for c in conflicts)
            if conflicts and not keep_going:
                raise MergeConflict(
                    f"Branch {other.id} conflicts with {self.id} in {names}. Nothing was "
                    "merged. Resolve them in one of the branches, or merge with strategy "
                    "ours, theirs or union.",
                    conflicts=conflicts,
                )
            for rel, content, ex in results:
                if content is None:
                    if self._file_exists(rel):
                        self.delete(rel)
                else:
                    self.write(rel, content, ex)
            for rel, target in links.items():
                self.write_symlink(rel, target)
            paths = sorted([r[0] for r in results] + list(links))
            if conflicts:
                raise MergeConflict(
                    f"Branch {other.id} conflicts with {self.id} in {names}. Everything else "
                    "was merged; this session keeps its own side of the conflicting regions "
                    "until you resolve them.",
                    conflicts=conflicts,
                    merged=paths,
                )
            return paths

    def materialize(self, dest: Path) -> Materialized:
        """A real directory with the session's files, for running processes (tests).

        See :class:`~briotui.kernel.vfs.materialize.Materialized`.
        """
        return self.manager.materialize(self, dest)
