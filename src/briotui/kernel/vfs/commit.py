"""Applying a session's accepted hunks to the working tree, crash-safely; rollback; git.

The protocol (each step durable before the next):

1. Plan: the final bytes of every target file. A file the user changed since the
   session's base is rebased with a 3-way merge (:func:`~briotui.kernel.vfs.merge.merge3`);
   a real conflict raises :class:`~briotui.kernel.errors.MergeConflict` and nothing
   is written. A parent directory that is a symlink is refused here.
2. Keep the new bytes of every target file in the blob store, durable
   (:meth:`~briotui.kernel.vfs.blobs.BlobStore.put_many`: write all, flush, rename
   all, flush; usually they are there already, a session stores what it writes), and
   the old bytes for a rollback: copied the same way, except where they are exactly
   HEAD's blob of the path (:func:`~briotui.kernel.vfs.gitio.head_blobs`, the usual
   case): those stay in git, and the journal names them by their git id too. With
   ``--git``, also build the git commit now (blobs, a tree from a copy of the index,
   the commit object), touching neither the index nor HEAD. The git commit holds
   HEAD's version of each file plus the accepted hunks (:func:`git_files`): the
   user's own edits, merged into the file in step 1, stay unstaged in the working
   tree, as ``git add -p`` would leave them. A commit whose tree is HEAD's is
   refused: never an empty git commit.
3. Journal: one SQLite transaction (WAL, ``synchronous=FULL``) records the commit as
   ``applying`` with every file's old and new blob ids (and the old one's git id
   where git holds it), a random token for its temp file
   names and, with ``--git``, the git step wanted (message, expected HEAD, tree,
   commit object, index entries).
4. Files, through :class:`~briotui.kernel.vfs.worktree.WorkTree` (no symlink is ever
   followed): write every new file to a temp file ``.brio-<token>-<n>.tmp`` created
   with ``O_EXCL | O_NOFOLLOW`` next to its target, then make them all durable at
   once; then delete, rename every temp over its target, and make the changed
   directories durable at once. A failure while writing the temp files removes them
   and changes nothing.
5. Git: update the index entries of exactly those paths, then move HEAD from the
   expected commit to the new one (``update-ref`` with the old value as a guard).
6. Mark the journal ``done`` and the session ``committed``.

:func:`recover` runs whenever a :class:`~briotui.kernel.vfs.session.SessionManager`
opens: a journal still ``applying`` is rolled forward (its new bytes are durable since
step 2), leaving alone any file that has since become neither old nor new (it tells
old from new by their ids: it never needs the old bytes themselves); its temp
files are removed; a wanted git step is finished, or, when it cannot be (HEAD moved,
the index is locked), the user is told so and ``briotui sessions commit ID --git``
makes it later. So after a crash every file is entirely old or entirely new, the set
is all-old (crash before step 3) or all-new, and the git commit matches the files.

The flushes are batched: "durable at once" is one ``syncfs`` per filesystem where the
OS reports its write-back errors (else one ``fsync`` per file and per directory, see
:func:`~briotui.kernel.vfs.safefs.sync_filesystems`), so a commit of 100 files costs
a handful of flushes instead of some 300 fsyncs. The order is still safe because the
guarantees rest on three happens-before edges, and batching keeps each of them: every
blob the journal names is durable before the journal commits (``put_many`` returns
after its second flush; old bytes left in git are HEAD's own objects, which the
session's base reads too, and which a rollback checks against the journal's id before
using them: a missing one stops the rollback before anything is touched); every
temp file is durable before the first rename (the one flush sits between writing the
last temp and renaming the first), so no rename can expose a partly written file
after a power cut; and every rename and deletion is
durable before the journal says ``done`` (the directory flush precedes step 6). A crash
before a flush leaves only temp files, which the journal's token names and recovery
removes (or blob temps nothing refers to); a crash among the renames leaves some
targets new and the others old, which recovery rolls forward from the durable new
blobs, exactly as when each file was fsynced on its own. Between two flushes the
writes (or the renames) run several at once
(:func:`~briotui.kernel.vfs.safefs.each_parallel`): nothing ever ordered them among
themselves, only against the flushes, which still wait for all of them.

Git runs through :func:`~briotui.kernel.vfs.gitio.run_git`: ``hash-object
--no-filters``, ``update-index --index-info``, ``write-tree``, ``commit-tree``,
``update-ref``. No hook, filter, pager or signing program runs. Finding and reading
the old bytes git holds reads objects in-process (libgit2): no program runs either.

One piece: planning, the journaled file update, crash recovery, the git step and
rollback all read and write the same journal rows, and recovery must know every state
the others leave.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from briotui.kernel.errors import (
    BrioError,
    CommitRefused,
    GitError,
    MergeConflict,
    SessionStateError,
    StoreError,
)
from briotui.kernel.vfs.blobs import blob_id
from briotui.kernel.vfs.diff import apply_accepted
from briotui.kernel.vfs.failpoints import failpoint
from briotui.kernel.vfs.gitio import head_blobs, head_commit, is_git_worktree, read_blob, run_git
from briotui.kernel.vfs.merge import merge3
from briotui.kernel.vfs.safefs import each_parallel, split
from briotui.kernel.vfs.worktree import Current, WorkTree

if TYPE_CHECKING:
    from briotui.kernel.vfs.manager import SessionManager
    from briotui.kernel.vfs.session import Session

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
ZERO_SHA = "0" * 40
_GIT_INDEX_PREFIX = "git-index-"


@dataclass(frozen=True)
class JournalFile:
    """One file of a journaled commit.

    Attributes:
        path: Relative path.
        old_blob: Its bytes before (None: it did not exist).
        old_exec: Executable before.
        new_blob: Its bytes after (None: the commit deletes it).
        new_exec: Executable after.
        old_symlink: It was a symlink (``old_blob`` is the link's target path).
        new_symlink: It becomes a symlink (``new_blob`` is the target path).
        old_git: The git blob id of the old bytes when they are HEAD's blob of the
            path and were not copied into the blob store (``old_blob`` is still their
            id, which recovery compares; a rollback reads them from git).
    """

    path: str
    old_blob: str | None
    old_exec: bool
    new_blob: str | None
    new_exec: bool
    old_symlink: bool = False
    new_symlink: bool = False
    old_git: str | None = None


@dataclass(frozen=True)
class CommitResult:
    """What a commit did.

    Attributes:
        commit_id: The journal id.
        written: Paths written (created or replaced).
        deleted: Paths deleted.
        merged: Paths rebased with a 3-way merge onto the user's edits.
        git_commit: The git commit made, if any.
        git_only: The files had been applied before; only the git commit was made now.
    """

    commit_id: int
    written: tuple[str, ...]
    deleted: tuple[str, ...]
    merged: tuple[str, ...] = ()
    git_commit: str | None = None
    git_only: bool = False
    unstaged: tuple[str, ...] = ()
    """Paths whose git commit holds only the session's hunks on HEAD's version: your
    own edits in them stay in the working tree, unstaged."""
    mixed: tuple[str, ...] = ()
    """Paths where your edits could not be kept apart (they touch the same lines as
    the session's): the git commit holds both."""


@dataclass(frozen=True)
class GitPlan:
    """A git commit prepared before the files are touched (journaled with them).

    Attributes:
        parent: The HEAD it goes on (None: an unborn branch).
        tree: Its tree.
        commit: The commit object (written, not referenced yet).
        message: Its message.
        index_info: ``update-index --index-info`` lines for the committed paths.
    """

    parent: str | None
    tree: str
    commit: str
    message: str
    index_info: str


@dataclass
class _Plan:
    files: list[JournalFile] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    sources: dict[str, tuple[bytes | None, bytes]] = field(default_factory=dict)
    """Per written path: its base bytes and the session's own (accepted) bytes."""
    contents: dict[str, bytes] = field(default_factory=dict)
    """The new bytes by blob id (the file update writes them without reading back)."""


def _tmp_name(token: str, seq: int) -> str:
    return f".brio-{token}-{seq}.tmp"


def _legacy_tmp_name(path: str, commit_id: int, seq: int) -> str:
    """The temp name an older briotui used (cleaned up after its crash, if a file)."""
    return f".{split(path)[1]}.brio-{commit_id}-{seq}.tmp"


def _same_base_link(session: Session, path: str, cur: Current) -> bool:
    """Whether ``cur`` is the very symlink the session's base had (same lstat)."""
    meta = session.base.files.get(path)
    if not cur.symlink or cur.lstat is None or meta is None or not meta.symlink:
        return False
    return meta.matches(cur.lstat)


def plan_commit(session: Session) -> _Plan:
    """The journal entries for the session's accepted hunks, rebased on user edits.

    Raises:
        CommitRefused: Nothing is accepted; a symlink entry has an unusable target.
        MergeConflict: The user changed a target file and the changes conflict.
        PathDenied: A target's parent directory is a symlink, or the target is a
            directory or a special file.
        PathRefused: A target's parent is a file.
    """
    manager = session.manager
    base = session.base
    accepted = session.accepted_ids()
    diff = session.diff()
    plan = _Plan()
    keep: dict[str, bytes] = {}
    olds: dict[str, bytes] = {}
    """Per path: its old bytes, not in the blob store yet (git may hold them)."""
    conflicts: list[dict[str, object]] = []
    with WorkTree(manager.root) as tree:
        for change in diff.files:
            outcome = apply_accepted(change, accepted)
            targets: list[tuple[str, bytes | None, bool, bool]] = [
                (p, data, ex, p in outcome.links) for p, data, ex in outcome.writes
            ]
            targets += [(p, None, False, False) for p in outcome.deletes]
            for path, new, new_exec, new_link in targets:
                rel = manager.policy.normalize(path, symlink=new_link)
                if new_link and (not new or b"\0" in new):
                    raise CommitRefused(
                        f"The session makes {rel!r} a symlink with an empty or invalid "
                        "target. Nothing was written; fix or reject that change."
                    )
                cur = tree.read(rel)
                base_path = outcome.base_of.get(path)
                base_bytes = None
                if base_path is not None and base_path == path:
                    # the diff read the base already: change.old is base.read(old_path)
                    base_bytes = change.old if path == change.old_path else base.read(path)
                if base_path is not None and base_path != path:
                    base_bytes = None  # a rename target did not exist in the base
                current = cur.data
                # The base's own link, untouched, is not a user edit (however the base
                # represents a link's bytes).
                unchanged = current == base_bytes or _same_base_link(session, rel, cur)
                if new is not None and not new_link:
                    plan.sources[rel] = (base_bytes, new)
                if not unchanged:
                    result = (
                        merge3(base_bytes, current, new, labels=("yours", "base", "session"))
                        if not (cur.symlink or new_link)
                        else None
                    )
                    if result is None or not result.clean:
                        regions = (
                            [
                                {"base": r.base, "ours": r.ours, "theirs": r.theirs}
                                for r in result.conflicts
                            ]
                            if result is not None
                            else [{"base": "<symlink>", "ours": "<yours>", "theirs": "<session>"}]
                        )
                        conflicts.append(
                            {
                                "path": rel,
                                "regions": regions,
                                "changed_by": _changed_by(session, rel, current),
                            }
                        )
                        continue
                    new = None if result.deleted else result.content
                    plan.merged.append(rel)
                if current is None and new is None:
                    continue
                old_blob = blob_id(current) if current is not None else None
                new_blob = blob_id(new) if new is not None else None
                if current is not None and old_blob and not manager.blobs.has(old_blob):
                    olds[rel] = current
                if new is not None and new_blob is not None:
                    keep[new_blob] = new
                    plan.contents[new_blob] = new
                plan.files.append(
                    JournalFile(
                        rel,
                        old_blob,
                        cur.executable,
                        new_blob,
                        new_exec and not new_link,
                        old_symlink=cur.symlink,
                        new_symlink=new_link and new is not None,
                    )
                )
    if conflicts:
        why = "; ".join(f"{c['path']}: {c['changed_by']}" for c in conflicts)
        raise MergeConflict(
            f"Files changed since session {session.id} started ({why}), and the "
            "session's accepted changes conflict with that. Nothing was written. Resolve "
            "the conflicts (edit the file or the session) and commit again.",
            conflicts=conflicts,
        )
    if not plan.files:
        raise CommitRefused(
            f"Session {session.id} has no accepted hunks to apply. Accept some with "
            f"`briotui sessions accept {session.id} [HUNK...]` first."
        )
    # Old bytes that are HEAD's blob of their path stay in git, named by the journal;
    # the others are copied. Durable before the journal names them (see the module).
    in_git = head_blobs(manager.root, list(olds.items()))
    for n, f in enumerate(plan.files):
        if f.path in in_git:
            plan.files[n] = replace(f, old_git=in_git[f.path])
        elif f.path in olds and f.old_blob is not None:
            keep[f.old_blob] = olds[f.path]
    manager.blobs.put_many(list(keep.values()), list(keep))
    return plan


def _changed_by(session: Session, rel: str, current: bytes | None) -> str:
    """Who changed ``rel`` since ``session`` started: briotui's commit of another
    session (and maybe your edits after it), or you."""
    rows = session.manager.store.query(
        "SELECT c.session_id, f.new_blob FROM commit_files f JOIN commits c"
        " ON c.id = f.commit_id WHERE f.path = ? AND c.state = 'done' AND c.session_id != ?"
        " AND c.created >= ? ORDER BY c.id DESC LIMIT 1",
        (rel, session.id, session.created),
    )
    if not rows:
        return "you changed it"
    other = str(rows[0]["session_id"])
    mine = blob_id(current) if current is not None else None
    if rows[0]["new_blob"] == mine:
        return f"briotui's commit of session {other} changed it"
    return f"briotui's commit of session {other} changed it, and so did you after it"


# -- the file update ------------------------------------------------------------------


def _stage(
    manager: SessionManager,
    tree: WorkTree,
    token: str,
    items: list[tuple[int, JournalFile]],
    notices: list[str] | None = None,
    contents: Mapping[str, bytes] | None = None,
) -> list[tuple[int, JournalFile]]:
    """Write the temp file of every new file, then make them all durable at once;
    returns those written. ``contents`` holds new bytes by blob id already in memory
    (the others are read from the blob store).

    A failure removes the temp files written so far and raises, unless ``notices`` is
    given (recovery): then the file is reported there and skipped.
    """
    todo = [(seq, f) for seq, f in items if f.new_blob is not None]
    for _seq, f in todo:  # the directories first, one by one: then the writes run at once
        with contextlib.suppress(BrioError, OSError):
            tree.dir_fd(split(f.path)[0], create=True)

    def write(item: tuple[int, JournalFile]) -> None:
        seq, f = item
        assert f.new_blob is not None
        tree.create_temp(
            f.path,
            _tmp_name(token, seq),
            (contents or {}).get(f.new_blob) or manager.blobs.get(f.new_blob),
            executable=f.new_exec,
            symlink=f.new_symlink,
        )

    results = each_parallel(write, todo)
    staged = [item for item, failure in zip(todo, results, strict=True) if failure is None]
    try:
        for (_seq, f), failure in zip(todo, results, strict=True):
            if failure is None:
                continue
            if notices is None or not isinstance(failure, (BrioError, OSError)):
                raise failure
            notices.append(f"{f.path} could not be written ({_reason(failure)}).")
        try:
            tree.sync_temps()  # every temp is whole on disk before any rename
        except OSError as exc:
            if notices is None:
                raise
            notices.extend(f"{f.path} could not be written ({_reason(exc)})." for _, f in staged)
            for seq, f in staged:
                tree.remove_temp(f.path, _tmp_name(token, seq))
            return []
    except BaseException:
        for seq, f in staged:
            tree.remove_temp(f.path, _tmp_name(token, seq))
        raise
    for _ in staged:
        failpoint("tmp-synced")
    return staged


def _switch(
    tree: WorkTree,
    token: str,
    items: list[tuple[int, JournalFile]],
    staged: list[tuple[int, JournalFile]],
    notices: list[str] | None = None,
) -> None:
    """Delete, rename every staged temp over its target, fsync the directories."""
    for _seq, f in items:
        if f.new_blob is not None:
            continue
        try:
            tree.unlink(f.path)
        except (BrioError, OSError) as exc:
            if notices is None:
                raise
            notices.append(f"{f.path} could not be deleted ({_reason(exc)}).")
    # Several renames at once: their order never mattered (recovery takes any subset).
    results = tree.rename_many([(_tmp_name(token, seq), f.path) for seq, f in staged])
    for (seq, f), failure in zip(staged, results, strict=True):
        if failure is None:
            continue
        if notices is None:
            raise failure
        tree.remove_temp(f.path, _tmp_name(token, seq))
        notices.append(f"{f.path} could not be replaced ({_reason(failure)}).")
    tree.sync()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BrioError):
        return exc.message
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def apply_journaled(
    manager: SessionManager,
    session_id: str,
    files: list[JournalFile],
    *,
    message: str,
    mark_session: str | None = "committed",
    git: GitPlan | None = None,
    contents: Mapping[str, bytes] | None = None,
) -> int:
    """Journal ``files`` (and the git step), apply them, mark the journal done.

    Args:
        manager: The project.
        session_id: The session the commit belongs to.
        files: The entries to apply.
        message: The journal's message (``rollback...`` for a rollback).
        mark_session: The session's state once done (None: leave it).
        git: The git commit to make once the files are applied.
        contents: New bytes by blob id that the caller has in memory.

    Returns:
        The journal id.

    Raises:
        CommitRefused: A new file could not be written; nothing was changed.
        GitError: The files were applied but the git step failed; the message says
            how to finish it.
    """
    now = time.time()
    token = secrets.token_hex(8)
    failpoint("before-journal")
    with manager.store.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO commits (session_id, state, message, created, tmp_token, git_state,"
            " git_message, git_planned, git_tree, git_parent, git_index) VALUES"
            " (?, 'applying', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                session_id,
                message,
                now,
                token,
                "wanted" if git else None,
                git.message if git else None,
                git.commit if git else None,
                git.tree if git else None,
                git.parent if git else None,
                git.index_info if git else None,
            ),
        )
        commit_id = int(cur.lastrowid or 0)
        conn.executemany(
            "INSERT INTO commit_files (commit_id, seq, path, old_blob, old_exec, new_blob,"
            " new_exec, old_symlink, new_symlink, old_git) VALUES"
            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    commit_id,
                    seq,
                    f.path,
                    f.old_blob,
                    int(f.old_exec),
                    f.new_blob,
                    int(f.new_exec),
                    int(f.old_symlink),
                    int(f.new_symlink),
                    f.old_git,
                )
                for seq, f in enumerate(files)
            ],
        )
    failpoint("after-journal")
    items = list(enumerate(files))
    with WorkTree(manager.root) as tree:
        try:
            staged = _stage(manager, tree, token, items, contents=contents)
        except BaseException as exc:
            # Nothing was renamed or deleted yet: the commit did not happen.
            with manager.store.transaction() as conn:
                conn.execute(
                    "UPDATE commits SET state = 'failed', finished = ? WHERE id = ?",
                    (time.time(), commit_id),
                )
            if isinstance(exc, OSError):
                raise CommitRefused(
                    f"The new files could not be written ({_reason(exc)}). Nothing was "
                    "changed; fix that and commit again."
                ) from exc
            raise
        _switch(tree, token, items, staged)
    failpoint("before-done")
    git_sha: str | None = None
    git_failure: BrioError | None = None
    if git is not None:
        try:
            git_sha = _git_complete(manager, commit_id, files, git, move=False)
        except BrioError as exc:
            git_failure = exc
    _finish(manager, commit_id, session_id, mark_session, git_sha, git.parent if git else None)
    failpoint("after-done")
    if git_failure is not None:
        raise GitError(
            f"The files of session {session_id} were applied, but the git commit could "
            f"not be made: {git_failure.message} Once that is fixed, run "
            f"`briotui sessions commit {session_id} --git` to make the git commit."
        ) from git_failure
    return commit_id


def _finish(
    manager: SessionManager,
    commit_id: int,
    session_id: str,
    mark_session: str | None,
    git_commit: str | None = None,
    git_parent: str | None = None,
) -> None:
    with manager.store.transaction() as conn:
        conn.execute(
            "UPDATE commits SET state = 'done', finished = ? WHERE id = ?",
            (time.time(), commit_id),
        )
        if git_commit is not None:
            _record_git(conn, commit_id, git_commit, git_parent)
        if mark_session is not None:
            conn.execute(
                "UPDATE sessions SET state = ?, commit_id = ?, updated = ? WHERE id = ?",
                (mark_session, commit_id, time.time(), session_id),
            )


def _record_git(
    conn: sqlite3.Connection, commit_id: int, git_commit: str, git_parent: str | None
) -> None:
    conn.execute(
        "UPDATE commits SET git_state = 'done', git_commit = ?, git_parent = ? WHERE id = ?",
        (git_commit, git_parent, commit_id),
    )


def _content_has_id(cur: Current, bid: str | None, *, symlink: bool) -> bool:
    """Whether ``cur`` has the bytes of blob id ``bid`` as that kind (None: absent)."""
    if bid is None or cur.data is None:
        return bid is None and cur.data is None
    return cur.symlink == symlink and blob_id(cur.data) == bid


def _restore_old_bytes(manager: SessionManager, files: list[JournalFile]) -> None:
    """Copy into the blob store, durably, the old bytes a commit left in git.

    Raises:
        StoreError: Git no longer has them (or they do not match the journal).
    """
    datas: list[bytes] = []
    ids: list[str] = []
    for f in files:
        if f.old_blob is None or f.old_git is None or manager.blobs.has(f.old_blob):
            continue
        data = read_blob(manager.root, f.old_git)
        if data is None or blob_id(data) != f.old_blob:
            raise StoreError(
                f"What {f.path} held before the commit was kept as git object "
                f"{f.old_git[:12]}, which this repository no longer has (or which no "
                "longer matches). Nothing was changed. Restore the file with git, e.g. "
                f"`git checkout <commit> -- {f.path}`.",
                title="Old content missing",
            )
        datas.append(data)
        ids.append(f.old_blob)
    manager.blobs.put_many(datas, ids)


def _journal_files(manager: SessionManager, commit_id: int) -> list[JournalFile]:
    rows = manager.store.query(
        "SELECT * FROM commit_files WHERE commit_id = ? ORDER BY seq", (commit_id,)
    )
    return [
        JournalFile(
            r["path"],
            r["old_blob"],
            bool(r["old_exec"]),
            r["new_blob"],
            bool(r["new_exec"]),
            old_symlink=bool(r["old_symlink"]),
            new_symlink=bool(r["new_symlink"]),
            old_git=r["old_git"],
        )
        for r in rows
    ]


def _git_plan_of(row: sqlite3.Row) -> GitPlan | None:
    if row["git_state"] != "wanted" or not row["git_planned"]:
        return None
    return GitPlan(
        row["git_parent"], row["git_tree"], row["git_planned"], row["git_message"], row["git_index"]
    )


STALE_GIT_INDEX_S = 3600.0
"""A temporary index older than this was left by a crashed commit."""


def _remove_stale_git_indexes(manager: SessionManager) -> None:
    cutoff = time.time() - STALE_GIT_INDEX_S
    for d in manager.paths.sessions.glob(f"{_GIT_INDEX_PREFIX}*"):
        try:
            if d.lstat().st_mtime < cutoff:
                shutil.rmtree(d)
        except OSError:
            continue


def recover(manager: SessionManager) -> list[str]:
    """Finish every commit a crash interrupted; returns notices for the user."""
    notices: list[str] = []
    _remove_stale_git_indexes(manager)
    rows = manager.store.query("SELECT * FROM commits WHERE state = 'applying' ORDER BY id")
    for row in rows:
        commit_id = int(row["id"])
        session_id = str(row["session_id"])
        files = _journal_files(manager, commit_id)
        token: str | None = row["tmp_token"]
        todo: list[tuple[int, JournalFile]] = []
        with WorkTree(manager.root) as tree:
            for seq, f in enumerate(files):
                try:
                    if token is not None:
                        tree.remove_temp(f.path, _tmp_name(token, seq))
                    else:
                        tree.remove_temp(
                            f.path, _legacy_tmp_name(f.path, commit_id, seq), only_regular=True
                        )
                    cur = tree.read(f.path)
                except (BrioError, OSError) as exc:
                    notices.append(
                        f"{f.path} was left as it is after an interrupted commit: {_reason(exc)}"
                    )
                    continue
                new = manager.blobs.get(f.new_blob) if f.new_blob else None
                if cur.same(new, executable=f.new_exec, symlink=f.new_symlink):
                    continue
                # The old bytes by their id: they may be in git, not in the blob store.
                if _content_has_id(cur, f.old_blob, symlink=f.old_symlink) or cur.content_is(
                    new, symlink=f.new_symlink
                ):
                    todo.append((seq, f))
                else:
                    notices.append(
                        f"{f.path} changed after an interrupted commit; it was left as it is."
                    )
        if todo:
            if token is None:
                token = secrets.token_hex(8)
                manager.store.execute(
                    "UPDATE commits SET tmp_token = ? WHERE id = ?", (token, commit_id)
                )
            with WorkTree(manager.root) as tree:
                staged = _stage(manager, tree, token, todo, notices)
                _switch(tree, token, todo, staged, notices)
        git_sha: str | None = None
        plan = _git_plan_of(row)
        if plan is not None:
            try:
                git_sha = _git_complete(manager, commit_id, files, plan, move=False)
            except BrioError as exc:
                notices.append(
                    f"The git commit of session {session_id} could not be made after an "
                    f"interrupted commit: {exc.message} Its files were applied. Run "
                    f"`briotui sessions commit {session_id} --git` to make the git commit."
                )
        is_rollback = str(row["message"]).startswith("rollback")
        _finish(
            manager,
            commit_id,
            session_id,
            "rolled-back" if is_rollback else "committed",
            git_sha,
            plan.parent if plan else None,
        )
        notices.append(
            f"An interrupted commit of session {session_id} was finished ({len(files)} files)."
        )
    return notices


# -- git ------------------------------------------------------------------------------


def _unrelated_staged(root: Path, paths: set[str]) -> list[str]:
    head = head_commit(root)
    out = run_git(
        ["diff-index", "--cached", "--name-only", "-z", "--no-renames", head or EMPTY_TREE],
        root,
    ).stdout
    staged = [os.fsdecode(p) for p in out.split(b"\0") if p]
    return sorted(p for p in staged if p not in paths)


def _index_info(manager: SessionManager, files: list[JournalFile]) -> str:
    """``update-index --index-info`` lines: the session's bytes, hashed without filters."""
    root = manager.root
    written = [f for f in files if f.new_blob is not None]
    shas: list[str] = []
    if written:
        blob_paths = "".join(
            os.path.relpath(manager.blobs.path_of(f.new_blob or ""), root) + "\n" for f in written
        )
        out = run_git(
            ["hash-object", "-w", "--no-filters", "--stdin-paths"],
            root,
            input=blob_paths.encode(),
            durable=True,
        ).stdout
        shas = out.decode().split()
    info: list[str] = []
    for f, sha in zip(written, shas, strict=True):
        mode = "120000" if f.new_symlink else "100755" if f.new_exec else "100644"
        info.append(f"{mode} {sha}\t{f.path}\n")
    for f in files:
        if f.new_blob is None:
            info.append(f"0 {ZERO_SHA}\t{f.path}\n")
    return "".join(info)


def _index_path(root: Path) -> Path:
    out = run_git(["rev-parse", "--git-path", "index"], root).stdout.decode().strip()
    return root / out


def plan_git(
    manager: SessionManager, files: list[JournalFile], message: str, parent: str | None
) -> GitPlan:
    """Build the git commit of ``files`` on ``parent`` without touching index or HEAD.

    The tree is the current index with the paths of ``files`` replaced, written from
    a copy of the index.
    """
    root = manager.root
    info = _index_info(manager, files)
    manager.paths.sessions.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=_GIT_INDEX_PREFIX, dir=manager.paths.sessions) as tmp:
        index = Path(tmp) / "index"
        real = _index_path(root)
        if real.is_file():
            shutil.copyfile(real, index)
        run_git(
            ["update-index", "--add", "--remove", "--index-info"],
            root,
            input=info.encode(),
            index_file=index,
        )
        tree = run_git(["write-tree"], root, index_file=index, durable=True).stdout
    tree_sha = tree.decode().strip()
    args = ["commit-tree", tree_sha, "-F", "-"]
    if parent:
        args += ["-p", parent]
    commit = run_git(args, root, input=(message + "\n").encode(), durable=True).stdout
    return GitPlan(parent, tree_sha, commit.decode().strip(), message, info)


def _head_bytes(root: Path, path: str) -> bytes | None:
    """``path``'s bytes in HEAD (None: not there, or no HEAD)."""
    proc = run_git(["cat-file", "blob", f"HEAD:{path}"], root, check=False)
    return proc.stdout if proc.returncode == 0 else None


def git_files(
    manager: SessionManager, plan: _Plan
) -> tuple[list[JournalFile], list[str], list[str]]:
    """What the git commit holds: HEAD's version of each file plus the session's hunks.

    The working tree gets the session's hunks merged with your own edits; the git
    commit (and the index) gets only the session's, as ``git add -p`` would, so your
    edits stay unstaged. Where your edits and the session's overlap they cannot be
    kept apart, and the commit holds the file as written.

    Returns:
        The files for the git commit, the paths whose edits stay unstaged, and the
        paths committed with your edits in them.
    """
    out: list[JournalFile] = []
    unstaged: list[str] = []
    mixed: list[str] = []
    for f in plan.files:
        source = plan.sources.get(f.path)
        if f.new_blob is None or source is None:
            out.append(f)
            continue
        base, ours = source
        final = manager.blobs.get(f.new_blob)
        head = _head_bytes(manager.root, f.path)
        wanted = ours if head == base else None
        if wanted is None:
            result = merge3(base, head, ours)
            wanted = result.content if result.clean and not result.deleted else None
        if wanted is None:
            mixed.append(f.path)
            out.append(f)
            continue
        if wanted != final:
            unstaged.append(f.path)
            f = replace(f, new_blob=manager.blobs.put(wanted))
        out.append(f)
    return out, unstaged, mixed


def _refuse_empty(root: Path, tree: str, parent: str | None, session_id: str) -> None:
    """Never an empty git commit: refuse one whose tree is its parent's.

    Raises:
        CommitRefused: HEAD already holds exactly this content.
    """
    head_tree = (
        run_git(["rev-parse", f"{parent}^{{tree}}"], root).stdout.decode().strip()
        if parent
        else EMPTY_TREE
    )
    if tree == head_tree:
        raise CommitRefused(
            f"HEAD already holds every change session {session_id} would git-commit, so "
            "there is nothing to commit (an empty git commit is never made). Nothing was "
            "written.",
            title="Nothing to git-commit",
        )


def _has_commit(root: Path, sha: str) -> bool:
    return run_git(["cat-file", "-e", f"{sha}^{{commit}}"], root, check=False).returncode == 0


def _is_ancestor(root: Path, sha: str, head: str) -> bool:
    proc = run_git(["merge-base", "--is-ancestor", sha, head], root, check=False)
    return proc.returncode == 0


def _short(sha: str | None) -> str:
    return sha[:10] if sha else "(no commit yet)"


def _git_complete(
    manager: SessionManager,
    commit_id: int,
    files: list[JournalFile],
    plan: GitPlan | None,
    *,
    move: bool,
    message: str | None = None,
) -> str:
    """Make the journaled git commit HEAD; returns its id.

    Already done (HEAD is it, or has it in its history): nothing to do. HEAD still the
    expected parent: update the index entries, then move HEAD with the old value as a
    guard. Otherwise (HEAD moved, or the commit object was lost) the commit is built
    again on the current HEAD, only when ``move``, and journaled before it is used.
    Without a ``plan`` (none was journaled) it is built with ``message``.

    Raises:
        GitError: HEAD moved (and not ``move``), or git failed (e.g. a locked index).
    """
    root = manager.root
    head = head_commit(root)
    if (
        plan is not None
        and head is not None
        and (head == plan.commit or _is_ancestor(root, plan.commit, head))
    ):
        return plan.commit
    if plan is not None and head != plan.parent and not move:
        raise GitError(
            f"HEAD moved from {_short(plan.parent)} to {_short(head)} since the commit "
            "started, so the git commit was not put on top of someone else's work."
        )
    if plan is None or head != plan.parent or not _has_commit(root, plan.commit):
        text = message if message is not None else plan.message if plan else ""
        plan = plan_git(manager, files, text, head)
        manager.store.execute(
            "UPDATE commits SET git_state = 'wanted', git_message = ?, git_planned = ?,"
            " git_tree = ?, git_parent = ?, git_index = ? WHERE id = ?",
            (plan.message, plan.commit, plan.tree, plan.parent, plan.index_info, commit_id),
        )
    run_git(
        ["update-index", "--add", "--remove", "--index-info"],
        root,
        input=plan.index_info.encode(),
        durable=True,
    )
    failpoint("git-index")
    run_git(
        ["update-ref", "-m", "briotui: commit session", "HEAD", plan.commit, head or ZERO_SHA],
        root,
        durable=True,
    )
    failpoint("git-ref")
    return plan.commit


def _message(text: str, provenance: str | None) -> str:
    out = text.strip() or "Changes from briotui"
    if provenance:
        out += f"\n\nBrio-Provenance: {provenance}"
    return out


def _git_again(
    session: Session,
    *,
    message: str | None,
    include_staged: bool,
    provenance: str | None,
) -> CommitResult:
    """Make the git commit of a committed session whose git step did not happen."""
    manager = session.manager
    rows = manager.store.query(
        "SELECT * FROM commits WHERE session_id = ? AND state = 'done' AND message NOT LIKE"
        " 'rollback%' ORDER BY id DESC LIMIT 1",
        (session.id,),
    )
    if not rows:
        raise SessionStateError(f"Session {session.id} has no finished commit to git-commit.")
    row = rows[0]
    commit_id = int(row["id"])
    if row["git_commit"]:
        raise SessionStateError(
            f"Session {session.id} is already committed, with git commit "
            f"{str(row['git_commit'])[:12]}; there is nothing left to do."
        )
    files = _journal_files(manager, commit_id)
    changed: list[str] = []
    with WorkTree(manager.root) as tree:
        for f in files:
            new = manager.blobs.get(f.new_blob) if f.new_blob else None
            try:
                same = tree.read(f.path).same(new, executable=f.new_exec, symlink=f.new_symlink)
            except (BrioError, OSError):
                same = False
            if not same:
                changed.append(f.path)
    if changed:
        raise CommitRefused(
            "These files changed since session "
            f"{session.id} was applied: {', '.join(changed[:10])}. briotui only git-commits "
            "the session's own content; commit them with git yourself."
        )
    paths = {f.path for f in files}
    if not include_staged and (unrelated := _unrelated_staged(manager.root, paths)):
        raise CommitRefused(
            "The git index has staged changes unrelated to this session: "
            + ", ".join(unrelated[:10])
            + ". Commit or unstage them first, or pass --include-staged to commit them "
            "together. Nothing was changed."
        )
    head = head_commit(manager.root)
    if head is not None and all(
        (manager.blobs.get(f.new_blob) if f.new_blob else None) == _head_bytes(manager.root, f.path)
        for f in files
        if not f.new_symlink
    ):
        raise CommitRefused(
            f"HEAD already holds every change of session {session.id}, so there is nothing "
            "to git-commit (an empty git commit is never made).",
            title="Nothing to git-commit",
        )
    planned = _git_plan_of(row)
    if message is not None or provenance is not None:
        text = _message(message if message is not None else str(row["message"]), provenance)
    else:
        text = planned.message if planned else _message(str(row["message"]), None)
    if planned is not None and planned.message != text:
        planned = None  # a different message: a new commit
    sha = _git_complete(manager, commit_id, files, planned, move=True, message=text)
    parent = (
        run_git(["rev-parse", "-q", "--verify", f"{sha}^"], manager.root, check=False)
        .stdout.decode()
        .strip()
        or None
    )
    with manager.store.transaction() as conn:
        _record_git(conn, commit_id, sha, parent)
    return CommitResult(
        commit_id=commit_id,
        written=tuple(f.path for f in files if f.new_blob is not None),
        deleted=tuple(f.path for f in files if f.new_blob is None),
        git_commit=sha,
        git_only=True,
    )


def commit_session(
    session: Session,
    *,
    git: bool = False,
    message: str | None = None,
    include_staged: bool = False,
    provenance: str | None = None,
) -> CommitResult:
    """Apply the session's accepted hunks to the working tree; optionally git-commit them.

    With ``git`` on a session already committed whose git step did not happen (a
    crash recovery could not finish it, git failed, or it was committed without
    ``git``), only the git commit is made, of the applied files.

    Args:
        session: An open session with accepted hunks.
        git: Also make a git commit of exactly the applied files.
        message: The commit message (default: the session's task).
        include_staged: Let unrelated staged changes into the git commit.
        provenance: Opt-in trailer text naming the agents and models.

    Raises:
        SessionStateError: The session is not open (nor committed without its git
            commit, with ``git``).
        CommitRefused: Nothing accepted; ``git`` outside a repository; unrelated
            staged changes; a new file could not be written (nothing was).
        MergeConflict: The user's edits conflict; nothing was written.
        PathRefused: A target's parent is a symlink or a file; nothing was written.
        GitError: The files were applied but git failed; the message says how to
            make the git commit later.
    """
    manager = session.manager
    session.reload_state()
    if git and not is_git_worktree(manager.root):
        raise CommitRefused(
            f"{manager.root} is not a git repository, so there is no git commit to make. "
            "Commit without --git to apply the changes to the files only."
        )
    if git and session.state == "committed":
        return _git_again(
            session, message=message, include_staged=include_staged, provenance=provenance
        )
    if session.state != "open":
        raise SessionStateError(f"Session {session.id} is {session.state}; commit refused.")
    plan = plan_commit(session)
    paths = {f.path for f in plan.files}
    if git and not include_staged:
        unrelated = _unrelated_staged(manager.root, paths)
        if unrelated:
            raise CommitRefused(
                "The git index has staged changes unrelated to this session: "
                + ", ".join(unrelated[:10])
                + ". Commit or unstage them first, or pass --include-staged to commit them "
                "together. Nothing was written."
            )
    text = message if message is not None else (session.task or f"briotui session {session.id}")
    unstaged: list[str] = []
    mixed: list[str] = []
    git_plan = None
    if git:
        for_git, unstaged, mixed = git_files(manager, plan)
        parent = head_commit(manager.root)
        git_plan = plan_git(manager, for_git, _message(text, provenance), parent)
        _refuse_empty(manager.root, git_plan.tree, parent, session.id)
    try:
        commit_id = apply_journaled(
            manager, session.id, plan.files, message=text, git=git_plan, contents=plan.contents
        )
    finally:
        session.reload_state()
    git_sha: str | None = None
    if git:
        rows = manager.store.query("SELECT git_commit FROM commits WHERE id = ?", (commit_id,))
        git_sha = rows[0]["git_commit"] if rows else None
    return CommitResult(
        commit_id=commit_id,
        written=tuple(f.path for f in plan.files if f.new_blob is not None),
        deleted=tuple(f.path for f in plan.files if f.new_blob is None),
        merged=tuple(plan.merged),
        git_commit=git_sha,
        unstaged=tuple(unstaged),
        mixed=tuple(mixed),
    )


@dataclass(frozen=True)
class RollbackResult:
    """What a rollback did.

    Attributes:
        restored: Paths put back to their pre-commit content.
        git_reverted: Whether the git commit was undone (HEAD moved back).
        notes: Explanations (e.g. why the git commit was left in place).
    """

    restored: tuple[str, ...]
    git_reverted: bool
    notes: tuple[str, ...] = ()


def rollback_session(session: Session, *, force: bool = False) -> RollbackResult:
    """Discard an open session, or undo a committed one.

    Undoing restores the pre-commit bytes of the committed files (journaled like a
    commit) and, when the session made a git commit that is still HEAD, moves HEAD
    back and restores those paths in the index.

    Raises:
        MergeConflict: A committed file changed since (unless ``force``).
        SessionStateError: The session was already discarded or rolled back.
    """
    manager = session.manager
    session.reload_state()
    if session.state == "open":
        session.discard()
        return RollbackResult((), False, ("The session was discarded; nothing was applied.",))
    if session.state != "committed":
        raise SessionStateError(f"Session {session.id} is {session.state}; nothing to undo.")
    rows = manager.store.query(
        "SELECT * FROM commits WHERE session_id = ? AND state = 'done' AND message NOT LIKE"
        " 'rollback%' ORDER BY id DESC LIMIT 1",
        (session.id,),
    )
    if not rows:
        raise SessionStateError(f"Session {session.id} has no finished commit to undo.")
    row = rows[0]
    files = _journal_files(manager, int(row["id"]))
    changed: list[str] = []
    undo: list[JournalFile] = []
    with WorkTree(manager.root) as tree:
        for f in files:
            try:
                now: Current | None = tree.read(f.path)
            except (BrioError, OSError):
                now = None
            new = manager.blobs.get(f.new_blob) if f.new_blob else None
            if now is None or not now.content_is(new, symlink=f.new_symlink):
                changed.append(f.path)
            undo.append(
                JournalFile(
                    f.path,
                    f.new_blob,
                    f.new_exec,
                    f.old_blob,
                    f.old_exec,
                    old_symlink=f.new_symlink,
                    new_symlink=f.old_symlink,
                )
            )
    if changed and not force:
        raise MergeConflict(
            "These files changed after the commit: "
            + ", ".join(changed)
            + ". Rolling back would overwrite those edits; nothing was changed. Pass "
            "--force to restore the pre-commit content anyway.",
            conflicts=[{"path": p, "regions": []} for p in changed],
        )
    _restore_old_bytes(manager, files)  # before HEAD or any file is touched
    notes: list[str] = []
    reverted = False
    git_sha = row["git_commit"]
    if git_sha:
        head = head_commit(manager.root)
        if head == git_sha:
            parent = row["git_parent"]
            paths = [f.path for f in files]
            if parent:
                run_git(
                    ["update-ref", "-m", "briotui: rollback", "HEAD", parent, git_sha], manager.root
                )
                run_git(["reset", "-q", parent, "--", *paths], manager.root)
            else:
                run_git(["update-ref", "-d", "HEAD", git_sha], manager.root)
                run_git(["rm", "-q", "--cached", "--ignore-unmatch", "--", *paths], manager.root)
            reverted = True
        else:
            notes.append(
                f"The git commit {git_sha[:10]} was left in place because other commits "
                "came after it; revert it with git if you want it gone from history."
            )
    apply_journaled(
        manager,
        session.id,
        undo,
        message=f"rollback of commit {row['id']}",
        mark_session="rolled-back",
    )
    with manager.store.transaction() as conn:
        conn.execute("UPDATE commits SET state = 'rolled-back' WHERE id = ?", (row["id"],))
    session.reload_state()
    return RollbackResult(tuple(f.path for f in files), reverted, tuple(notes))
