"""A session's base: the project as it was when the session was created, kept cheaply.

Copying the project would make sessions O(project). Instead a :class:`BaseSnapshot`
records a manifest (path -> size, mtime, inode, mode) of HEAD plus the working tree's
tracked and untracked-not-ignored files, and keeps the *bytes* only where they cannot
be found again:

* a file whose stat still matches the manifest is read from the working tree;
* in a git project, a file that was clean at creation is read from the HEAD commit
  recorded then (``git cat-file``), however the user has changed it since;
* files that were dirty or untracked at creation are copied into the blob store then
  (usually few); in a non-git project a file's base bytes are captured the first time
  a session changes it (:meth:`BaseSnapshot.capture`).

Snapshots are immutable apart from captures, and shared by a session and all its forks.

The base index persists across processes: the last base made is named in
``bases/latest.json`` (with the HEAD, size limit and protected names it was made
with), so a new process (a CLI run) does not list and stat the whole project again.
:func:`load_latest` loads it and :meth:`BaseSnapshot.refreshed` brings it up to date
from one ``git status``: git compares every file with its index entry (size, mtime,
ctime, inode: git's own stat cache, racy timestamps included) and names each file
that differs from HEAD or the index, and each untracked one. The files it names, and
those that were dirty or left out in the loaded base, are stat-ed and re-read as in
:meth:`BaseSnapshot.derive`; every other file is still clean, so its base bytes are
HEAD's, which the loaded base already reads (from the working tree while its stat
matches the manifest, else with ``git cat-file``). A different HEAD, size limit or
protected set, or a chain of derived bases over :data:`MAX_CHAIN` long, rebuilds.
HEAD comes from the same ``git status`` (``--porcelain=v2 --branch``): one git process,
started before the recorded base is read (:func:`start_status`), so that git and the
loading of a large manifest run at once. A built base's manifest stores its rows as
columns (paths joined by NUL, numbers as packed little-endian integers), which load
several times faster than one JSON list per file; a derived base's few changed rows
stay JSON lists.

What a base holds is bounded: files over the session size limit, FIFOs, devices and
sockets are left out (never opened, never read) and listed in :attr:`BaseSnapshot.left_out`
with the reason; git-ignored files are never listed (git's own ignore rules). A symlink
is content, as in git: its bytes are its target, read with ``readlink``; it is never
followed. Every read walks the path from the project root without following a
symlinked parent (:mod:`briotui.kernel.vfs.safefs`).
"""

from __future__ import annotations

import base64
import bisect
import functools
import json
import os
import secrets
import stat
import sys
import threading
import time
from array import array
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from briotui.kernel.errors import FileTooLarge, GitError, PathDenied, WorkspaceFileNotFound
from briotui.kernel.store import Store
from briotui.kernel.vfs import safefs
from briotui.kernel.vfs.blobs import BlobStore
from briotui.kernel.vfs.gitio import GitRun, head_commit, is_git_worktree, run_git, start_git
from briotui.kernel.vfs.paths import PathPolicy

UNLIMITED = 1 << 62
CAPTURE_BATCH = 64 << 20
"""Bytes of captured files held in memory before they are stored (one flush each)."""


class BaseFile(NamedTuple):
    """One file of the base manifest (a named tuple: a 50k-file manifest loads fast).

    Attributes:
        size: Bytes at creation.
        mtime_ns: Modification time at creation.
        ino: Inode at creation.
        executable: Whether the owner executable bit was set.
        symlink: Whether it is a symlink (its content is its target; never followed).
    """

    size: int
    mtime_ns: int
    ino: int
    executable: bool
    symlink: bool = False

    def matches(self, st: os.stat_result) -> bool:
        """Whether ``st`` (an lstat) is the same file version as at creation."""
        return (
            st.st_size == self.size
            and st.st_mtime_ns == self.mtime_ns
            and st.st_ino == self.ino
            and stat.S_ISLNK(st.st_mode) == self.symlink
        )


def _stat_file(root: Path, rel: str, max_size: int) -> BaseFile | str | None:
    """The manifest entry of ``rel`` now: None if it is gone or a directory, a reason
    (text) if it is left out: a FIFO, device or socket, or a file over ``max_size``."""
    try:
        st = os.lstat(f"{root}/{rel}")
    except OSError:
        return None  # listed in the index but deleted in the working tree
    return _entry_of(st, max_size)


def _lstat(root: Path, rel: str) -> os.stat_result | None:
    try:
        return os.lstat(f"{root}/{rel}")
    except OSError:
        return None


def _entry_of(st: os.stat_result, max_size: int) -> BaseFile | str | None:
    if stat.S_ISDIR(st.st_mode):
        return None
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        return safefs.special_reason(safefs.kind_of(st.st_mode))
    if st.st_size > max_size:
        return safefs.too_large_reason(st.st_size, max_size)
    return BaseFile(
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        ino=st.st_ino,
        executable=bool(st.st_mode & stat.S_IXUSR) and not stat.S_ISLNK(st.st_mode),
        symlink=stat.S_ISLNK(st.st_mode),
    )


def _manifest_files(
    raw: dict[str, Any], manifest_dir: Path
) -> tuple[dict[str, BaseFile], dict[str, str]]:
    """The files and left-out paths of a manifest; a derived base's manifest holds only
    its changes."""
    files: dict[str, BaseFile] = {}
    left_out: dict[str, str] = {}
    parent = raw.get("parent")
    if parent:
        files, left_out = _manifest_files(
            json.loads((manifest_dir / f"{parent}.json").read_text()), manifest_dir
        )
        for rel in raw.get("removed", ()):
            files.pop(rel, None)
            left_out.pop(rel, None)
    packed = raw.get("packed")
    if packed is not None:
        files.update(_unpack(packed))
    new = tuple.__new__  # what BaseFile._make does, without its call per row
    files.update(
        {
            p: new(BaseFile, (v[0], v[1], v[2], v[3] & 1 == 1, v[3] & 2 == 2))
            for p, v in raw["files"].items()
        }
    )
    if left_out:
        for p in raw["files"]:
            left_out.pop(p, None)
    for p, why in raw.get("left_out", {}).items():
        files.pop(p, None)
        left_out[p] = why
    return files, left_out


def _manifest_row(f: BaseFile) -> list[int]:
    return [f.size, f.mtime_ns, f.ino, int(f.executable) | (2 if f.symlink else 0)]


_EXEC_BIT = bytes(i & 1 for i in range(256))
_LINK_BIT = bytes((i >> 1) & 1 for i in range(256))


def _column(code: str, values: Iterable[int]) -> str:
    col = array(code, values)
    if sys.byteorder == "big":
        col.byteswap()  # stored little-endian
    return base64.b64encode(col.tobytes()).decode("ascii")


def _uncolumn(code: str, text: str) -> array[int]:
    col = array(code)
    col.frombytes(base64.b64decode(text))
    if sys.byteorder == "big":
        col.byteswap()
    return col


def _pack(files: dict[str, BaseFile]) -> dict[str, str]:
    """A built base's rows as columns (the paths joined by NUL, each number column as
    little-endian 64-bit integers in base64): a 50k-file manifest loads several times
    faster than as one JSON list per file."""
    rows = list(files.values())
    return {
        "paths": "\0".join(files),
        "size": _column("q", (f.size for f in rows)),
        "mtime_ns": _column("q", (f.mtime_ns for f in rows)),
        "ino": _column("Q", (f.ino for f in rows)),
        "flags": base64.b64encode(
            bytes(int(f.executable) | (2 if f.symlink else 0) for f in rows)
        ).decode("ascii"),
    }


def _unpack(packed: dict[str, str]) -> dict[str, BaseFile]:
    """The rows :func:`_pack` wrote.

    Raises:
        ValueError: The columns do not have one value per path (a damaged manifest).
    """
    paths = packed["paths"].split("\0") if packed["paths"] else []
    sizes = _uncolumn("q", packed["size"])
    mtimes = _uncolumn("q", packed["mtime_ns"])
    inos = _uncolumn("Q", packed["ino"])
    flags = base64.b64decode(packed["flags"])
    if not len(paths) == len(sizes) == len(mtimes) == len(inos) == len(flags):
        raise ValueError("a base manifest's columns differ in length")
    make = functools.partial(tuple.__new__, BaseFile)
    rows = zip(
        sizes,
        mtimes,
        inos,
        map(bool, flags.translate(_EXEC_BIT)),
        map(bool, flags.translate(_LINK_BIT)),
        strict=True,
    )
    return dict(zip(paths, map(make, rows), strict=True))


_STATUS = ["status", "--porcelain=v2", "-z", "--branch", "--untracked-files=all", "--no-renames"]


def start_status(root: Path) -> GitRun:
    """Start the ``git status`` :meth:`BaseSnapshot.refreshed` reads, so that it runs
    while this process loads the recorded base (the two take about as long).

    Raises:
        GitError: git is missing.
    """
    return start_git(_STATUS, root)


def _status(root: Path, started: GitRun | None = None) -> tuple[str | None, set[str]]:
    """HEAD's commit and the paths ``git status`` names (changed against HEAD or the
    index, deleted, untracked and not ignored), from one run (``started``, if given).

    Raises:
        GitError: git failed (not a repository any more...).
    """
    out = (started or start_status(root)).result().stdout
    head: str | None = None
    paths: set[str] = set()
    for item in out.split(b"\0"):
        if item.startswith(b"# branch.oid "):
            oid = item[len(b"# branch.oid ") :].decode()
            head = None if oid == "(initial)" else oid
        elif item.startswith(b"1 "):
            paths.add(os.fsdecode(item.split(b" ", 8)[8]))
        elif item.startswith(b"u "):
            paths.add(os.fsdecode(item.split(b" ", 10)[10]))
        elif item.startswith(b"? "):
            paths.add(os.fsdecode(item[2:]))
    return head, paths


def _split_z(data: bytes) -> list[str]:
    return [os.fsdecode(p) for p in data.split(b"\0") if p]


class BaseSnapshot:
    """The base of one or more sessions.

    Attributes:
        id: The base's id (a row in ``bases``).
        root: The project root.
        head: The git commit HEAD pointed at, or None.
        is_git: Whether the project is a git working tree.
        files: The manifest.
        left_out: Paths of the project not in the base, with the reason (special
            files, files over the size limit).
        max_file_size: The size limit the base was built with.
    """

    def __init__(
        self,
        *,
        base_id: str,
        root: Path,
        head: str | None,
        is_git: bool,
        files: dict[str, BaseFile],
        clean: frozenset[str],
        captured: dict[str, str],
        store: Store,
        blobs: BlobStore,
        policy: PathPolicy,
        left_out: dict[str, str] | None = None,
        max_file_size: int = UNLIMITED,
    ) -> None:
        self.id = base_id
        self.root = root
        self.head = head
        self.is_git = is_git
        self.files = files
        self.left_out = dict(left_out or {})
        self.max_file_size = max_file_size
        self._clean = clean
        self._captured = captured
        self._store = store
        self._blobs = blobs
        self._policy = policy
        self._lock = threading.Lock()
        self._sorted: list[str] | None = None
        self.depth = 0
        """How many derived bases lie between this one and a full manifest."""

    # -- building and loading -------------------------------------------------------

    @classmethod
    def build(
        cls,
        root: Path,
        store: Store,
        blobs: BlobStore,
        policy: PathPolicy,
        manifest_dir: Path,
        *,
        max_file_size: int = UNLIMITED,
    ) -> BaseSnapshot:
        """Snapshot the project at ``root`` now and record it in ``store``.

        Files over ``max_file_size`` and special files are left out (stat only, never
        opened) and listed in :attr:`left_out`.
        """
        is_git = is_git_worktree(root)
        head: str | None = None
        dirty: set[str] = set()
        if is_git:
            head = head_commit(root)
            listed = _split_z(
                run_git(
                    ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], root
                ).stdout
            )
            status = run_git(
                ["status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames"],
                root,
            ).stdout
            for item in _split_z(status):
                dirty.add(item[3:])
            if head is None:
                dirty.update(listed)
        files: dict[str, BaseFile] = {}
        left_out: dict[str, str] = {}
        if is_git:
            for rel in listed:
                if policy.is_protected(rel):
                    continue
                meta = _stat_file(root, rel, max_file_size)
                if isinstance(meta, str):
                    left_out[rel] = meta
                elif meta is not None:
                    files[rel] = meta
        else:

            def too_deep(rel: str) -> None:
                left_out[rel] = f"nested more than {safefs.MAX_DEPTH} directories deep"

            for found in safefs.walk(root, skip_dir=policy.is_protected_name, too_deep=too_deep):
                if policy.is_protected(found.rel):
                    continue
                meta = _entry_of(found.st, max_file_size)
                if isinstance(meta, str):
                    left_out[found.rel] = meta
                elif meta is not None:
                    files[found.rel] = meta
        base_id = "b-" + secrets.token_hex(6)
        captured: dict[str, str] = {}
        clean = frozenset(files.keys() - dirty) if is_git and head else frozenset()
        snap = cls(
            base_id=base_id,
            root=root,
            head=head,
            is_git=is_git,
            files=files,
            clean=clean,
            captured=captured,
            store=store,
            blobs=blobs,
            policy=policy,
            left_out=left_out,
            max_file_size=max_file_size,
        )
        manifest_dir.mkdir(parents=True, exist_ok=True)
        manifest = {
            "packed": _pack(files),
            "files": {},
            "dirty": sorted(files.keys() - clean),
            "left_out": left_out,
        }
        snap._record(manifest, manifest_dir)
        if is_git:
            snap.capture_many(sorted(files.keys() - clean))
        return snap

    def _record(self, manifest: dict[str, Any], manifest_dir: Path) -> None:
        """Write this base's manifest (temp file, rename) and its row and captures."""
        manifest_dir.mkdir(parents=True, exist_ok=True)
        tmp = manifest_dir / f".{self.id}.tmp"
        tmp.write_text(json.dumps(manifest, separators=(",", ":")))
        os.replace(tmp, manifest_dir / f"{self.id}.json")
        with self._store.transaction() as conn:
            conn.execute(
                "INSERT INTO bases (id, created, head, is_git) VALUES (?, ?, ?, ?)",
                (self.id, time.time(), self.head, int(self.is_git)),
            )
            conn.executemany(
                "INSERT OR IGNORE INTO base_captures (base_id, path, blob) VALUES (?, ?, ?)",
                [(self.id, p, b) for p, b in self._captured.items()],
            )

    def derive(
        self, changed: set[str], manifest_dir: Path, *, dropped: frozenset[str] = frozenset()
    ) -> BaseSnapshot:
        """A new base: this one with ``changed`` paths re-read from the working tree.

        O(len(changed)), not O(project): the kernel keeps a live base while it watches
        the project and derives from it instead of rebuilding. Changed files count as
        dirty: their bytes are captured now, like any dirty file at creation.
        ``dropped`` paths leave the base (files git now ignores).
        """
        changed = {rel for rel in changed if not self._policy.is_protected(rel)} | dropped
        new = sorted(rel for rel in changed if rel not in self.files)
        if self.is_git and new:  # a new file the user's .gitignore excludes stays out
            ignored = run_git(
                ["check-ignore", "-z", "--stdin"],
                self.root,
                input=b"\0".join(os.fsencode(p) for p in new) + b"\0",
                check=False,
            ).stdout
            changed -= set(_split_z(ignored))
        files = dict(self.files)
        left_out = dict(self.left_out)
        delta: dict[str, BaseFile] = {}
        delta_left: dict[str, str] = {}
        removed: list[str] = []
        for rel in sorted(changed):
            meta = None if rel in dropped else _stat_file(self.root, rel, self.max_file_size)
            if isinstance(meta, str):
                files.pop(rel, None)
                left_out[rel] = delta_left[rel] = meta
            elif meta is None:
                was_file = files.pop(rel, None) is not None
                if left_out.pop(rel, None) is not None or was_file:
                    removed.append(rel)
            else:
                left_out.pop(rel, None)
                files[rel] = delta[rel] = meta
        base_id = "b-" + secrets.token_hex(6)
        with self._lock:
            captured = {p: b for p, b in self._captured.items() if p not in changed}
        snap = BaseSnapshot(
            base_id=base_id,
            root=self.root,
            head=self.head,
            is_git=self.is_git,
            files=files,
            clean=self._clean - changed,
            captured=captured,
            store=self._store,
            blobs=self._blobs,
            policy=self._policy,
            left_out=left_out,
            max_file_size=self.max_file_size,
        )
        snap.depth = self.depth + 1
        manifest = {
            "parent": self.id,
            "depth": snap.depth,
            "files": {p: _manifest_row(f) for p, f in delta.items()},
            "removed": removed,
            "dirty": sorted(files.keys() - snap._clean),
            "left_out": delta_left,
        }
        snap._record(manifest, manifest_dir)
        if self.is_git:
            snap.capture_many(sorted(set(delta)))
        return snap

    @classmethod
    def load(
        cls,
        base_id: str,
        root: Path,
        store: Store,
        blobs: BlobStore,
        policy: PathPolicy,
        manifest_dir: Path,
        *,
        max_file_size: int = UNLIMITED,
    ) -> BaseSnapshot:
        """Load a recorded base."""
        rows = store.query("SELECT head, is_git FROM bases WHERE id = ?", (base_id,))
        if not rows:
            raise WorkspaceFileNotFound(f"The base {base_id} of a session is not recorded.")
        raw = json.loads((manifest_dir / f"{base_id}.json").read_text())
        files, left_out = _manifest_files(raw, manifest_dir)
        is_git = bool(rows[0]["is_git"])
        head = rows[0]["head"]
        clean = frozenset(files.keys() - set(raw["dirty"])) if is_git and head else frozenset()
        captured = {
            r["path"]: r["blob"]
            for r in store.query(
                "SELECT path, blob FROM base_captures WHERE base_id = ?", (base_id,)
            )
        }
        snap = cls(
            base_id=base_id,
            root=root,
            head=head,
            is_git=is_git,
            files=files,
            clean=clean,
            captured=captured,
            store=store,
            blobs=blobs,
            policy=policy,
            left_out=left_out,
            max_file_size=max_file_size,
        )
        snap.depth = int(raw.get("depth", 0))
        return snap

    def refreshed(self, manifest_dir: Path, status: GitRun | None = None) -> BaseSnapshot | None:
        """This base brought up to date with the working tree (see the module
        docstring): itself when nothing changed, else a base derived from it; None
        when HEAD moved (or git cannot tell): build a new one.

        Only for a git base.

        Args:
            manifest_dir: Where manifests are kept.
            status: The ``git status`` to read, started before this base was loaded
                (:func:`start_status`); None: run one now.
        """
        assert self.is_git
        try:
            head, now_dirty = _status(self.root, status)
        except GitError:
            return None
        if head is None or head != self.head:
            return None
        was_dirty = set(self.files.keys() - self._clean)
        # Dirty before and not now: reverted to HEAD, deleted, or now ignored by git.
        settled = sorted(was_dirty - now_dirty)
        ignored: frozenset[str] = frozenset()
        if settled:
            ignored = frozenset(
                _split_z(
                    run_git(
                        ["check-ignore", "-z", "--stdin"],
                        self.root,
                        input=b"\0".join(os.fsencode(p) for p in settled) + b"\0",
                        check=False,
                    ).stdout
                )
            )
        changed = (now_dirty | was_dirty | set(self.left_out)) - ignored
        if not ignored and all(self._same_now(rel) for rel in changed):
            return self
        return self.derive(changed, manifest_dir, dropped=ignored)

    def _same_now(self, rel: str) -> bool:
        """Whether ``rel`` in the working tree is as this base recorded it (by lstat)."""
        st = _lstat(self.root, rel)
        meta = self.files.get(rel)
        if meta is not None:
            return (
                st is not None
                and meta.matches(st)
                and meta.executable == (bool(st.st_mode & stat.S_IXUSR) and not meta.symlink)
            )
        if rel in self.left_out:
            return st is not None and _entry_of(st, self.max_file_size) == self.left_out[rel]
        return st is None or _entry_of(st, self.max_file_size) is None

    # -- reading ----------------------------------------------------------------------

    def sorted_paths(self) -> list[str]:
        """Every base path, sorted (for prefix scans)."""
        with self._lock:
            if self._sorted is None:
                self._sorted = sorted(self.files)
            return self._sorted

    def paths_under(self, prefix: str) -> list[str]:
        """Base paths under directory ``prefix`` ("" for all), sorted."""
        paths = self.sorted_paths()
        if not prefix:
            return paths
        lo = bisect.bisect_left(paths, prefix + "/")
        hi = bisect.bisect_left(paths, prefix + "0")  # '0' sorts right after '/'
        return paths[lo:hi]

    def read(self, rel: str) -> bytes:
        """The base bytes of ``rel`` (a symlink's target for a symlink; never followed).

        Raises:
            WorkspaceFileNotFound: ``rel`` is not in the base.
            PathDenied: It is now something that cannot be read (a directory, a FIFO).
            FileTooLarge: It grew over the size limit since.
        """
        meta = self.files.get(rel)
        if meta is None:
            raise WorkspaceFileNotFound(f"{rel!r} does not exist in the session.")
        bid = self._captured.get(rel)
        if bid is not None:
            return self._blobs.get(bid)
        with safefs.DirFds(self.root) as fds:
            fd, name = fds.parent(rel)
            st = None
            if fd is not None:
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    st = None
            if fd is not None and st is not None and meta.matches(st):
                data = self._read_at(fd, name, rel, meta.symlink)
                again = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if meta.matches(again):
                    return data
        if rel in self._clean and self.head:
            return run_git(["cat-file", "blob", f"{self.head}:{rel}"], self.root).stdout
        # Not recoverable: a non-git project's file the session never changed, edited
        # since by the user. The session sees the user's version, if it is still the
        # same kind of thing.
        current = self.current_entry(rel)
        if current is None or current[1] != meta.symlink:
            raise WorkspaceFileNotFound(
                f"{rel!r} was deleted or replaced in the working tree and its original "
                "content was not kept (this project is not a git repository)."
            )
        return current[0]

    def _read_at(self, fd: int, name: str, rel: str, symlink: bool) -> bytes:
        if symlink:
            return safefs.readlink_at(fd, name)
        try:
            return safefs.read_regular_at(fd, name, self.max_file_size, shown=rel)
        except WorkspaceFileNotFound:
            raise
        except PathDenied as exc:
            raise PathDenied(f"{exc.message} briotui never opens special files.") from None

    def capture(self, rel: str) -> None:
        """Keep the base bytes of ``rel`` in the blob store (before a session changes it).

        Raises:
            PathDenied: The file is a link out of the project or a hard link.
        """
        if rel not in self.files or rel in self._captured:
            return
        if rel in self._clean and self.head:
            return  # recoverable from git at any time
        self.capture_many([rel], strict=True)

    def capture_many(self, rels: list[str], *, strict: bool = False) -> None:
        """Capture several files in one transaction; unreadable ones are skipped
        unless ``strict`` (reading them later raises the reason). The blobs are stored
        in batches of up to :data:`CAPTURE_BATCH` bytes, each made durable at once
        (:meth:`~briotui.kernel.vfs.blobs.BlobStore.put_many`), not two fsyncs each."""
        kept: list[tuple[str, str, str]] = []
        batch: list[tuple[str, bytes]] = []
        size = 0

        def flush() -> None:
            nonlocal size
            ids = self._blobs.put_many([data for _, data in batch])
            for (rel, _), bid in zip(batch, ids, strict=True):
                with self._lock:
                    self._captured.setdefault(rel, bid)
                kept.append((self.id, rel, bid))
            batch.clear()
            size = 0

        for rel in rels:
            if rel in self._captured:
                continue
            try:
                data = self.read(rel)
            except (PathDenied, WorkspaceFileNotFound, FileTooLarge):
                if strict:
                    raise
                continue
            batch.append((rel, data))
            size += len(data)
            if size >= CAPTURE_BATCH:
                flush()
        if batch:
            flush()
        if kept:
            with self._store.transaction() as conn:
                conn.executemany(
                    "INSERT OR IGNORE INTO base_captures (base_id, path, blob) VALUES (?, ?, ?)",
                    kept,
                )

    def current_entry(self, rel: str) -> tuple[bytes, bool] | None:
        """The working tree's version of ``rel`` now: its bytes (a symlink's target) and
        whether it is a symlink, or None if it does not exist. Nothing is followed.

        Raises:
            PathDenied: It is a directory or a special file (never opened).
            FileTooLarge: It is over the size limit.
        """
        with safefs.DirFds(self.root) as fds:
            fd, name = fds.parent(rel)
            if fd is None:
                return None
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return None
            if stat.S_ISDIR(st.st_mode):
                raise PathDenied(f"{rel!r} is a directory in the working tree.")
            if stat.S_ISLNK(st.st_mode):
                return safefs.readlink_at(fd, name), True
            try:
                return self._read_at(fd, name, rel, False), False
            except WorkspaceFileNotFound:
                return None

    def current_bytes(self, rel: str) -> bytes | None:
        """The working tree's bytes of ``rel`` now (a symlink's target for a symlink),
        or None if it does not exist. See :meth:`current_entry`."""
        found = self.current_entry(rel)
        return None if found is None else found[0]

    def changed_since(self, rel: str) -> bool:
        """Whether the working-tree file ``rel`` differs (by lstat) from the manifest."""
        meta = self.files.get(rel)
        with safefs.DirFds(self.root) as fds:
            st = fds.lstat(rel)
        if st is None:
            return meta is not None
        return meta is None or not meta.matches(st)


MAX_CHAIN = 20
"""Derived bases a persisted base may lie behind before a process rebuilds it."""

_LATEST = "latest.json"


def _latest_key(head: str | None, max_file_size: int, policy: PathPolicy) -> dict[str, Any]:
    return {
        "head": head,
        "max_file_size": max_file_size,
        "protected": sorted(policy.protected),
    }


def record_latest(snap: BaseSnapshot, manifest_dir: Path, policy: PathPolicy) -> None:
    """Name ``snap`` the base a new process starts from (temp file, then rename)."""
    if not snap.is_git:
        return
    manifest_dir.mkdir(parents=True, exist_ok=True)
    data = {"base": snap.id, **_latest_key(snap.head, snap.max_file_size, policy)}
    tmp = manifest_dir / f".{_LATEST}.{secrets.token_hex(4)}.tmp"
    tmp.write_text(json.dumps(data))
    os.replace(tmp, manifest_dir / _LATEST)


def has_latest(manifest_dir: Path) -> bool:
    """Whether a previous process named a base to start from (see :func:`load_latest`)."""
    return (manifest_dir / _LATEST).is_file()


def load_latest(
    root: Path,
    store: Store,
    blobs: BlobStore,
    policy: PathPolicy,
    manifest_dir: Path,
    *,
    max_file_size: int,
) -> BaseSnapshot | None:
    """The base a previous process recorded, if it can be reused as a starting point:
    same size limit and protected names, a chain short enough. Not refreshed: HEAD is
    checked by :meth:`BaseSnapshot.refreshed`, from the same ``git status``."""
    try:
        data = json.loads((manifest_dir / _LATEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not is_git_worktree(root):
        return None
    key = _latest_key(data.get("head"), max_file_size, policy)
    if {k: data.get(k) for k in ("head", "max_file_size", "protected")} != key:
        return None
    try:
        snap = BaseSnapshot.load(
            str(data["base"]), root, store, blobs, policy, manifest_dir, max_file_size=max_file_size
        )
    except (OSError, ValueError, KeyError, WorkspaceFileNotFound):
        return None
    if not snap.is_git or snap.depth >= MAX_CHAIN:
        return None
    return snap
