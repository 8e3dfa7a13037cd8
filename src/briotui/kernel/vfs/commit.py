"""Applying a session's accepted hunks to the working tree, crash-safely; rollback; git.

The protocol (each step durable before the next):

1. Plan: the final bytes of every target file. A file the user changed since the
   session's base is rebased with a 3-way merge (:func:`~briotui.kernel.vfs.merge.merge3`);
   a real conflict raises :class:`~briotui.kernel.errors.MergeConflict` and nothing
   is written.
2. Keep the old and new bytes of every target file in the blob store (fsynced).
3. Journal: one SQLite transaction (WAL, ``synchronous=FULL``) records the commit as
   ``applying`` with every file's old and new blob.
4. Per file: write a temp file in the same directory, fsync it, rename it over the
   target, fsync the directory (deletions: unlink, fsync the directory).
5. Mark the journal ``done`` and the session ``committed``.

:func:`recover` runs whenever a :class:`~briotui.kernel.vfs.session.SessionManager`
opens: a journal still ``applying`` is rolled forward (its new bytes are durable since
step 2), leaving alone any file that has since become neither old nor new, and stray
temp files are removed. So after a crash every file is entirely old or entirely new,
and the set is all-old (crash before step 3) or all-new.

The optional git commit (:func:`git_commit_paths`) builds the commit with plumbing:
``hash-object --no-filters``, ``update-index --index-info`` for exactly the applied
paths, ``write-tree``, ``commit-tree``, ``update-ref`` with the old HEAD as a guard.
No hook, filter, pager or signing program runs.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from briotui.kernel.errors import CommitRefused, MergeConflict, SessionStateError
from briotui.kernel.vfs.blobs import fsync_dir
from briotui.kernel.vfs.diff import apply_accepted
from briotui.kernel.vfs.failpoints import failpoint
from briotui.kernel.vfs.gitio import head_commit, is_git_worktree, run_git
from briotui.kernel.vfs.merge import merge3

if TYPE_CHECKING:
    from briotui.kernel.vfs.session import Session, SessionManager

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
ZERO_SHA = "0" * 40


@dataclass(frozen=True)
class JournalFile:
    """One file of a journaled commit.

    Attributes:
        path: Relative path.
        old_blob: Its bytes before (None: it did not exist).
        old_exec: Executable before.
        new_blob: Its bytes after (None: the commit deletes it).
        new_exec: Executable after.
    """

    path: str
    old_blob: str | None
    old_exec: bool
    new_blob: str | None
    new_exec: bool


@dataclass(frozen=True)
class CommitResult:
    """What a commit did.

    Attributes:
        commit_id: The journal id.
        written: Paths written (created or replaced).
        deleted: Paths deleted.
        merged: Paths rebased with a 3-way merge onto the user's edits.
        git_commit: The git commit made, if any.
    """

    commit_id: int
    written: tuple[str, ...]
    deleted: tuple[str, ...]
    merged: tuple[str, ...] = ()
    git_commit: str | None = None


@dataclass
class _Plan:
    files: list[JournalFile] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)


def _exec_of(path: Path) -> bool:
    try:
        return bool(os.stat(path).st_mode & stat.S_IXUSR)
    except FileNotFoundError:
        return False


def plan_commit(session: Session) -> _Plan:
    """The journal entries for the session's accepted hunks, rebased on user edits.

    Raises:
        CommitRefused: Nothing is accepted.
        MergeConflict: The user changed a target file and the changes conflict.
    """
    manager = session.manager
    base = session.base
    accepted = session.accepted_ids()
    diff = session.diff()
    plan = _Plan()
    conflicts: list[dict[str, object]] = []
    for change in diff.files:
        outcome = apply_accepted(change, accepted)
        targets: list[tuple[str, bytes | None, bool]] = [
            (p, data, ex) for p, data, ex in outcome.writes
        ]
        targets += [(p, None, False) for p in outcome.deletes]
        for path, new, new_exec in targets:
            real = manager.policy.resolve(
                manager.root, manager.policy.normalize(path), allow_hardlinks=True
            )
            base_path = outcome.base_of.get(path)
            base_bytes = (
                base.read(base_path) if base_path is not None and base_path == path else None
            )
            if base_path is not None and base_path != path:
                base_bytes = None  # a rename target did not exist in the base
            current = base.current_bytes(path)
            if current != base_bytes:
                result = merge3(base_bytes, current, new, labels=("yours", "base", "session"))
                if not result.clean:
                    conflicts.append(
                        {
                            "path": path,
                            "regions": [
                                {"base": r.base, "ours": r.ours, "theirs": r.theirs}
                                for r in result.conflicts
                            ],
                        }
                    )
                    continue
                new = None if result.deleted else result.content
                plan.merged.append(path)
            if current is None and new is None:
                continue
            old_blob = manager.blobs.put(current) if current is not None else None
            new_blob = manager.blobs.put(new) if new is not None else None
            plan.files.append(JournalFile(path, old_blob, _exec_of(real), new_blob, new_exec))
    if conflicts:
        names = ", ".join(str(c["path"]) for c in conflicts)
        raise MergeConflict(
            f"You changed {names} since session {session.id} started, and the session's "
            "accepted changes conflict with yours. Nothing was written. Resolve the "
            "conflicts (edit the file or the session) and commit again.",
            conflicts=conflicts,
        )
    if not plan.files:
        raise CommitRefused(
            f"Session {session.id} has no accepted hunks to apply. Accept some with "
            f"`briotui sessions accept {session.id} [HUNK...]` first."
        )
    return plan


def _tmp_path(target: Path, commit_id: int, seq: int) -> Path:
    return target.with_name(f".{target.name}.brio-{commit_id}-{seq}.tmp")


def _mkdirs(directory: Path, root: Path) -> None:
    missing: list[Path] = []
    d = directory
    while not d.exists() and d != root:
        missing.append(d)
        d = d.parent
    for m in reversed(missing):
        m.mkdir()
        fsync_dir(m.parent)


def _apply_one(manager: SessionManager, f: JournalFile, commit_id: int, seq: int) -> None:
    target = manager.policy.resolve(manager.root, f.path, allow_hardlinks=True)
    if f.new_blob is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target)
        failpoint("file-deleted")
        fsync_dir(target.parent)
        return
    data = manager.blobs.get(f.new_blob)
    _mkdirs(target.parent, manager.root)
    tmp = _tmp_path(target, commit_id, seq)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = 0o644
    if f.new_exec:
        mode |= (mode & 0o444) >> 2 | stat.S_IXUSR
    else:
        mode &= ~0o111
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        half = len(data) // 2
        os.write(fd, data[:half])
        failpoint("tmp-partial")
        view = memoryview(data)[half:]
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
    failpoint("tmp-synced")
    os.replace(tmp, target)
    failpoint("renamed")
    fsync_dir(target.parent)


def apply_journaled(
    manager: SessionManager,
    session_id: str,
    files: list[JournalFile],
    *,
    message: str,
    mark_session: str | None = "committed",
) -> int:
    """Journal ``files``, apply them, mark the journal done; returns the journal id."""
    now = time.time()
    failpoint("before-journal")
    with manager.store.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO commits (session_id, state, message, created) VALUES (?, 'applying',"
            " ?, ?)",
            (session_id, message, now),
        )
        commit_id = int(cur.lastrowid or 0)
        conn.executemany(
            "INSERT INTO commit_files (commit_id, seq, path, old_blob, old_exec, new_blob,"
            " new_exec) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (commit_id, seq, f.path, f.old_blob, int(f.old_exec), f.new_blob, int(f.new_exec))
                for seq, f in enumerate(files)
            ],
        )
    failpoint("after-journal")
    for seq, f in enumerate(files):
        _apply_one(manager, f, commit_id, seq)
    failpoint("before-done")
    _finish(manager, commit_id, session_id, mark_session)
    failpoint("after-done")
    return commit_id


def _finish(
    manager: SessionManager, commit_id: int, session_id: str, mark_session: str | None
) -> None:
    with manager.store.transaction() as conn:
        conn.execute(
            "UPDATE commits SET state = 'done', finished = ? WHERE id = ?",
            (time.time(), commit_id),
        )
        if mark_session is not None:
            conn.execute(
                "UPDATE sessions SET state = ?, commit_id = ?, updated = ? WHERE id = ?",
                (mark_session, commit_id, time.time(), session_id),
            )


def _journal_files(manager: SessionManager, commit_id: int) -> list[JournalFile]:
    rows = manager.store.query(
        "SELECT * FROM commit_files WHERE commit_id = ? ORDER BY seq", (commit_id,)
    )
    return [
        JournalFile(
            r["path"], r["old_blob"], bool(r["old_exec"]), r["new_blob"], bool(r["new_exec"])
        )
        for r in rows
    ]


def recover(manager: SessionManager) -> list[str]:
    """Finish every commit a crash interrupted; returns notices for the user."""
    notices: list[str] = []
    rows = manager.store.query(
        "SELECT id, session_id, message FROM commits WHERE state = 'applying' ORDER BY id"
    )
    for row in rows:
        commit_id = int(row["id"])
        files = _journal_files(manager, commit_id)
        for seq, f in enumerate(files):
            target = manager.policy.resolve(manager.root, f.path, allow_hardlinks=True)
            current = manager.root.joinpath(f.path)
            try:
                now = current.read_bytes()
            except FileNotFoundError:
                now = None
            old = manager.blobs.get(f.old_blob) if f.old_blob else None
            new = manager.blobs.get(f.new_blob) if f.new_blob else None
            if now == new and (new is None or _exec_of(target) == f.new_exec):
                pass
            elif now in (old, new):
                _apply_one(manager, f, commit_id, seq)
            else:
                notices.append(
                    f"{f.path} changed after an interrupted commit; it was left as it is."
                )
            _tmp_path(target, commit_id, seq).unlink(missing_ok=True)
        is_rollback = row["message"].startswith("rollback")
        _finish(
            manager, commit_id, row["session_id"], "rolled-back" if is_rollback else "committed"
        )
        notices.append(
            f"An interrupted commit of session {row['session_id']} was finished "
            f"({len(files)} files)."
        )
    return notices


def _unrelated_staged(root: Path, paths: set[str]) -> list[str]:
    head = head_commit(root)
    out = run_git(
        ["diff-index", "--cached", "--name-only", "-z", "--no-renames", head or EMPTY_TREE],
        root,
    ).stdout
    staged = [os.fsdecode(p) for p in out.split(b"\0") if p]
    return sorted(p for p in staged if p not in paths)


def git_commit_paths(
    root: Path,
    files: list[JournalFile],
    message: str,
    *,
    provenance: str | None = None,
) -> str:
    """Commit exactly ``files`` (as they now are in the working tree) on HEAD.

    Args:
        root: The working tree.
        files: The applied files (deleted where ``new_blob`` is None).
        message: The commit message.
        provenance: An optional trailer value, added as ``Brio-Provenance: ...``.

    Returns:
        The new commit's id.
    """
    head = head_commit(root)
    written = [f for f in files if f.new_blob is not None]
    shas: list[str] = []
    if written:
        out = run_git(
            ["hash-object", "-w", "--no-filters", "--stdin-paths"],
            root,
            input="".join(f.path + "\n" for f in written).encode(),
        ).stdout
        shas = out.decode().split()
    info = []
    for f, sha in zip(written, shas, strict=True):
        info.append(f"{'100755' if f.new_exec else '100644'} {sha}\t{f.path}\n")
    for f in files:
        if f.new_blob is None:
            info.append(f"0 {ZERO_SHA}\t{f.path}\n")
    run_git(
        ["update-index", "--add", "--remove", "--index-info"], root, input="".join(info).encode()
    )
    tree = run_git(["write-tree"], root).stdout.decode().strip()
    text = message.strip() or "Changes from briotui"
    if provenance:
        text += f"\n\nBrio-Provenance: {provenance}"
    args = ["commit-tree", tree, "-F", "-"]
    if head:
        args += ["-p", head]
    commit = run_git(args, root, input=(text + "\n").encode()).stdout.decode().strip()
    run_git(["update-ref", "-m", "briotui: commit session", "HEAD", commit, head or ZERO_SHA], root)
    return commit


def commit_session(
    session: Session,
    *,
    git: bool = False,
    message: str | None = None,
    include_staged: bool = False,
    provenance: str | None = None,
) -> CommitResult:
    """Apply the session's accepted hunks to the working tree; optionally git-commit them.

    Args:
        session: An open session with accepted hunks.
        git: Also make a git commit of exactly the applied files.
        message: The commit message (default: the session's task).
        include_staged: Let unrelated staged changes into the git commit.
        provenance: Opt-in trailer text naming the agents and models.

    Raises:
        SessionStateError: The session is not open.
        CommitRefused: Nothing accepted; ``git`` outside a repository; unrelated
            staged changes.
        MergeConflict: The user's edits conflict; nothing was written.
    """
    manager = session.manager
    session.reload_state()
    if session.state != "open":
        raise SessionStateError(f"Session {session.id} is {session.state}; commit refused.")
    if git and not is_git_worktree(manager.root):
        raise CommitRefused(
            f"{manager.root} is not a git repository, so there is no git commit to make. "
            "Commit without --git to apply the changes to the files only."
        )
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
    commit_id = apply_journaled(manager, session.id, plan.files, message=text)
    git_sha: str | None = None
    if git:
        git_sha = git_commit_paths(manager.root, plan.files, text, provenance=provenance)
        parent = (
            run_git(["rev-parse", "-q", "--verify", f"{git_sha}^"], manager.root, check=False)
            .stdout.decode()
            .strip()
            or None
        )
        manager.store.execute(
            "UPDATE commits SET git_commit = ?, git_parent = ? WHERE id = ?",
            (git_sha, parent, commit_id),
        )
    session.reload_state()
    return CommitResult(
        commit_id=commit_id,
        written=tuple(f.path for f in plan.files if f.new_blob is not None),
        deleted=tuple(f.path for f in plan.files if f.new_blob is None),
        merged=tuple(plan.merged),
        git_commit=git_sha,
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
    for f in files:
        now = manager.root.joinpath(f.path)
        try:
            data: bytes | None = now.read_bytes()
        except FileNotFoundError:
            data = None
        new = manager.blobs.get(f.new_blob) if f.new_blob else None
        if data != new:
            changed.append(f.path)
        undo.append(JournalFile(f.path, f.new_blob, f.new_exec, f.old_blob, f.old_exec))
    if changed and not force:
        raise MergeConflict(
            "These files changed after the commit: "
            + ", ".join(changed)
            + ". Rolling back would overwrite those edits; nothing was changed. Pass "
            "--force to restore the pre-commit content anyway.",
            conflicts=[{"path": p, "regions": []} for p in changed],
        )
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
