"""The session manager: every session of one project, and the watcher that keeps its base live.

:class:`SessionManager` opens the project's store, finishes or undoes an interrupted
commit (:func:`briotui.kernel.vfs.commit.recover`), watches the working tree (one
watchfiles thread; front ends subscribe with :meth:`SessionManager.on_change`) so new
sessions derive their base in O(changes), and creates, finds and lists sessions. It is
also where a session's commit, rollback and materialization are wired to their modules,
so :mod:`briotui.kernel.vfs.session` imports neither.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from briotui.kernel.errors import (
    GitError,
    PathRefused,
    SessionNotFound,
)
from briotui.kernel.paths import ProjectPaths
from briotui.kernel.store import Store
from briotui.kernel.vfs.blobs import BlobStore
from briotui.kernel.vfs.commit import (
    CommitResult,
    RollbackResult,
    commit_session,
    recover,
    rollback_session,
)
from briotui.kernel.vfs.materialize import Materialized
from briotui.kernel.vfs.paths import DEFAULT_POLICY, PathPolicy
from briotui.kernel.vfs.session import (
    DEFAULT_MAX_FILE_SIZE,
    OverlayEntry,
    Session,
    SessionId,
    SessionState,
)
from briotui.kernel.vfs.snapshot import (
    BaseSnapshot,
    has_latest,
    load_latest,
    record_latest,
    start_status,
)


@dataclass(frozen=True)
class SessionInfo:
    """A session's row, for listings.

    Attributes:
        id: The session id.
        parent_id: The session it was forked from.
        state: open, committed, discarded or rolled-back.
        label: A short name.
        task: The task text it was made for.
        created: Creation time (Unix seconds).
        changed_files: How many paths the session changed.
    """

    id: SessionId
    parent_id: SessionId | None
    state: SessionState
    label: str
    task: str
    created: float
    changed_files: int


class SessionManager:
    """All sessions of one project.

    Attributes:
        root: The project root (the user's working tree).
        paths: Where ``.brio`` things live.
        store: The project database.
        blobs: The blob store.
        policy: The path policy every session uses.
        max_file_size: The largest file a session accepts.
    """

    def __init__(
        self,
        paths: ProjectPaths,
        store: Store,
        *,
        policy: PathPolicy = DEFAULT_POLICY,
        max_file_size: int = DEFAULT_MAX_FILE_SIZE,
    ) -> None:
        self.paths = paths
        self.root = paths.root
        self.store = store
        self.blobs = BlobStore(paths.sessions / "blobs")
        self.policy = policy
        self.max_file_size = max_file_size
        self.recovery_notices: list[str] = []
        self._bases: dict[str, BaseSnapshot] = {}
        self._sessions: dict[str, Session] = {}
        self._lock = threading.RLock()
        self._live_base: BaseSnapshot | None = None
        self._pending: set[str] = set()
        self._watch_stop: threading.Event | None = None
        self._watch_thread: threading.Thread | None = None
        self._listeners: list[Callable[[int], None]] = []

    @classmethod
    def open(
        cls,
        project: Path | str,
        *,
        policy: PathPolicy = DEFAULT_POLICY,
        max_file_size: int = DEFAULT_MAX_FILE_SIZE,
    ) -> SessionManager:
        """Open the sessions of the project at ``project``; recovers interrupted commits.

        Raises:
            PathRefused: ``project`` is not a directory.
            StoreError: The database cannot be used.
        """
        paths = ProjectPaths.at(project)
        if not paths.root.is_dir():
            raise PathRefused(
                f"{paths.root} is not a directory. Run briotui inside a project directory "
                "or pass -C DIR."
            )
        store = Store.open(paths.database)
        manager = cls(paths, store, policy=policy, max_file_size=max_file_size)
        manager.recovery_notices = recover(manager)
        return manager

    def close(self) -> None:
        """Stop watching and close the database."""
        self.stop_watching()
        self.store.close()

    # -- a live base, kept current by watching the project ------------------------------

    def start_watching(self) -> None:
        """Watch the project so new sessions derive their base in O(changes).

        A long-running kernel (the TUI) calls this once: the first :meth:`create`
        builds a base from the whole project; later ones reuse it, re-reading only the
        paths the watcher saw change. Without a watcher every create rebuilds (the
        CLI's one-shot runs). A change that lands within the watcher's latency (tens of
        ms) of a create is seen by the next one, and is merged at commit anyway.
        """
        with self._lock:
            if self._watch_thread is not None:
                return
            self._watch_stop = threading.Event()
            ready = threading.Event()
            self._watch_thread = threading.Thread(
                target=self._watch, args=(self._watch_stop, ready), name="brio-watch", daemon=True
            )
            self._watch_thread.start()
        ready.wait(timeout=5)

    def stop_watching(self) -> None:
        """Stop the watcher; later creates rebuild their base."""
        with self._lock:
            stop, thread = self._watch_stop, self._watch_thread
            self._watch_stop = self._watch_thread = None
            self._live_base = None
        if stop is not None:
            stop.set()
        if thread is not None:
            thread.join(timeout=5)

    def on_change(self, listener: Callable[[int], None]) -> Callable[[], None]:
        """Call ``listener(n)`` whenever the number of paths changed on disk that no
        session base has taken in yet becomes ``n`` (from the watcher's thread, or the
        thread that creates a session). Returns a function that unsubscribes it.

        This is the one working-tree watcher: front ends subscribe here (through
        :meth:`briotui.kernel.kernel.Kernel.watch_project`) instead of polling.
        """
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _notify(self, pending: int) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(pending)

    def pending_changes(self) -> frozenset[str]:
        """Paths the watcher saw change that the live base has not taken in yet."""
        with self._lock:
            return frozenset(self._pending)

    @property
    def watching(self) -> bool:
        """Whether the project is being watched."""
        return self._watch_thread is not None

    def _watch(self, stop: threading.Event, ready: threading.Event) -> None:
        import watchfiles

        root = str(self.root)

        def keep(_change: watchfiles.Change, path: str) -> bool:
            rel = os.path.relpath(path, root)
            return not rel.startswith("..") and not self.policy.is_protected(
                rel.replace(os.sep, "/")
            )

        try:
            for changes in watchfiles.watch(
                root,
                watch_filter=keep,
                stop_event=stop,
                debounce=50,
                step=10,
                rust_timeout=100,
                yield_on_timeout=True,
            ):
                ready.set()  # the first yield (a timeout, at the latest) means it is watching
                if changes:
                    rels = {os.path.relpath(p, root).replace(os.sep, "/") for _, p in changes}
                    with self._lock:
                        before = len(self._pending)
                        self._pending |= rels
                        after = len(self._pending)
                    if after != before:
                        self._notify(after)
        finally:
            # stopped (or failed) before its first yield: whoever waits for it to be
            # ready must not wait out its 5 s (a TUI quit right after start did)
            ready.set()

    def _current_base(self) -> BaseSnapshot:
        """The base for a new session: the live one (derived if need be) or a new build."""
        with self._lock:
            live = self._live_base if self.watching else None
            pending, self._pending = self._pending, set()
        if pending:
            self._notify(0)
        if live is not None and live.is_git:
            from briotui.kernel.vfs.gitio import head_commit

            if head_commit(self.root) != live.head:
                live = None  # a commit or checkout: start from the new HEAD
        if live is None:
            snap = self._persisted_base() or BaseSnapshot.build(
                self.root,
                self.store,
                self.blobs,
                self.policy,
                self.manifest_dir,
                max_file_size=self.max_file_size,
            )
        elif pending:
            snap = live.derive(pending, self.manifest_dir)
        else:
            snap = live
        record_latest(snap, self.manifest_dir, self.policy)
        with self._lock:
            self._bases[snap.id] = snap
            if self.watching:
                self._live_base = snap
        return snap

    def _persisted_base(self) -> BaseSnapshot | None:
        """The base a previous process recorded, brought up to date (see
        :mod:`briotui.kernel.vfs.snapshot`), or None: build one.

        Its ``git status`` starts first and runs while the recorded base loads.
        """
        status = None
        if has_latest(self.manifest_dir) and self.is_git:
            try:
                status = start_status(self.root)
            except (GitError, OSError):
                status = None
        try:
            snap = load_latest(
                self.root,
                self.store,
                self.blobs,
                self.policy,
                self.manifest_dir,
                max_file_size=self.max_file_size,
            )
        except BaseException:
            if status is not None:
                status.cancel()
            raise
        if snap is None:
            if status is not None:
                status.cancel()
            return None
        with self._lock:
            snap = self._bases.setdefault(snap.id, snap)
        return snap.refreshed(self.manifest_dir, status)

    @property
    def manifest_dir(self) -> Path:
        """Where base manifests are kept."""
        return self.paths.sessions / "bases"

    @property
    def is_git(self) -> bool:
        """Whether the project is a git working tree."""
        from briotui.kernel.vfs.gitio import is_git_worktree

        return is_git_worktree(self.root)

    def base(self, base_id: str) -> BaseSnapshot:
        """The base snapshot ``base_id`` (cached; shared by the sessions that use it)."""
        with self._lock:
            snap = self._bases.get(base_id)
            if snap is None:
                snap = BaseSnapshot.load(
                    base_id,
                    self.root,
                    self.store,
                    self.blobs,
                    self.policy,
                    self.manifest_dir,
                    max_file_size=self.max_file_size,
                )
                self._bases[base_id] = snap
            return snap

    def create(self, *, label: str = "", task: str = "") -> Session:
        """A new session on the project's current state (HEAD plus working tree)."""
        return self._insert(self._current_base(), parent=None, overlay={}, label=label, task=task)

    def _insert(
        self,
        snap: BaseSnapshot,
        *,
        parent: Session | None,
        overlay: dict[str, OverlayEntry],
        label: str,
        task: str,
    ) -> Session:
        sid = SessionId("s-" + secrets.token_hex(4))
        now = time.time()
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO sessions (id, parent_id, base_id, state, label, task, created,"
                " updated) VALUES (?, ?, ?, 'open', ?, ?, ?, ?)",
                (sid, parent.id if parent else None, snap.id, label, task, now, now),
            )
            rows = [
                (sid, layer, p, e.blob, int(e.executable), e.origin, e.size, int(e.symlink))
                for layer in (("work", "fork") if parent else ("work",))
                for p, e in overlay.items()
            ]
            if rows:
                conn.executemany(
                    "INSERT INTO session_files (session_id, layer, path, blob, executable,"
                    " origin, size, symlink) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
        session = Session(
            self,
            sid,
            snap,
            parent_id=parent.id if parent else None,
            state="open",
            label=label,
            task=task,
            created=now,
            overlay=dict(overlay),
            fork_point=dict(overlay) if parent else None,
        )
        with self._lock:
            self._sessions[sid] = session
        return session

    def get(self, session_id: str) -> Session:
        """The session with that id (or a unique id prefix).

        Raises:
            SessionNotFound: No such session, or the prefix is ambiguous.
        """
        with self._lock:
            cached = self._sessions.get(session_id)
            if cached is not None:
                return cached
        rows = self.store.query(
            "SELECT * FROM sessions WHERE id = ? OR id LIKE ? ORDER BY created",
            (session_id, session_id.replace("%", "").replace("_", "\\_") + "%"),
        )
        exact = [r for r in rows if r["id"] == session_id]
        rows = exact or rows
        if not rows:
            raise SessionNotFound(
                f"No session {session_id!r} in {self.root}. List them with `briotui sessions list`."
            )
        if len(rows) > 1:
            raise SessionNotFound(
                f"{session_id!r} matches {len(rows)} sessions; give more of the id."
            )
        row = rows[0]
        with self._lock:
            cached = self._sessions.get(row["id"])
            if cached is not None:
                return cached
            overlay: dict[str, OverlayEntry] = {}
            fork: dict[str, OverlayEntry] = {}
            for f in self.store.query(
                "SELECT * FROM session_files WHERE session_id = ?", (row["id"],)
            ):
                entry = OverlayEntry(
                    f["blob"], bool(f["executable"]), f["size"], f["origin"], bool(f["symlink"])
                )
                (overlay if f["layer"] == "work" else fork)[f["path"]] = entry
            session = Session(
                self,
                SessionId(row["id"]),
                self.base(row["base_id"]),
                parent_id=row["parent_id"],
                state=row["state"],
                label=row["label"],
                task=row["task"],
                created=row["created"],
                overlay=overlay,
                fork_point=fork if row["parent_id"] else None,
            )
            self._sessions[session.id] = session
            return session

    def list(self) -> list[SessionInfo]:
        """Every session of the project, oldest first."""
        rows = self.store.query(
            "SELECT s.*, (SELECT COUNT(*) FROM session_files f WHERE f.session_id = s.id"
            " AND f.layer = 'work') AS n FROM sessions s ORDER BY created"
        )
        return [
            SessionInfo(
                SessionId(r["id"]),
                r["parent_id"],
                r["state"],
                r["label"],
                r["task"],
                r["created"],
                r["n"],
            )
            for r in rows
        ]

    def prune_candidates(self, also: Collection[str] = ()) -> tuple[SessionId, ...]:
        """The open sessions that only pile up: empty ones, branches (a branch is
        merged into its session or failed), and those in ``also`` (e.g. the sessions
        of failed or cancelled tasks). Discarding them keeps them in history.
        """
        return tuple(
            info.id
            for info in self.list()
            if info.state == "open"
            and (
                info.parent_id is not None or info.id in also or not self.get(info.id).diff().files
            )
        )

    # -- what a session does through its manager (so the session module imports neither) --

    def commit_session(
        self,
        session: Session,
        *,
        git: bool = False,
        message: str | None = None,
        include_staged: bool = False,
        provenance: str | None = None,
    ) -> CommitResult:
        """Apply ``session``'s accepted hunks (:func:`briotui.kernel.vfs.commit.commit_session`)."""
        return commit_session(
            session, git=git, message=message, include_staged=include_staged, provenance=provenance
        )

    def rollback_session(self, session: Session, *, force: bool = False) -> RollbackResult:
        """Discard or undo ``session``; see :func:`~briotui.kernel.vfs.commit.rollback_session`."""
        return rollback_session(session, force=force)

    def materialize(self, session: Session, dest: Path) -> Materialized:
        """``session``'s files in a real directory; see :class:`Materialized`."""
        m = Materialized(session, dest)
        m.sync_out()
        return m
