"""Opening the project database (``.brio/state.db``): WAL, migrations, corruption handling.

One file, two faces. :class:`Store` is a thread-safe synchronous connection (the
session layer and the crash-safe commit journal run on worker threads and in a
synchronous commit path, where durability must not depend on an event loop).
:func:`open_async` gives an :mod:`aiosqlite` connection to the same file for the
kernel's async code. Both go through :func:`migrate`, so there is one schema source
(:mod:`briotui.kernel.store.migrations`).

Records the kernel keeps of its work (tasks, transcripts, usage, commands) are not
worth a disk flush on the event loop each: :meth:`Store.write` queues them for one
writer thread, which commits whatever has queued in one transaction (group commit) on a
connection of its own with ``synchronous=NORMAL``. Measured on the development box, a
commit costs about 3 ms with ``FULL`` (an fsync of the WAL each time) against 15 us
with ``NORMAL``. In WAL mode a ``NORMAL`` commit is in the operating system's page
cache when COMMIT returns, so it survives a killed *process* (SIGKILL, a crash); only a
power loss or a kernel panic can lose the last transactions, which for these records
is an acceptable trade. Anything that reads or writes synchronously through the store
first commits what is queued (:meth:`Store.flush`), so this process always reads its
own writes in order. The commit journal's synchronous transactions keep ``FULL``: a
file is only touched once its journal row is on disk, power loss included.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from briotui.kernel.errors import StoreError, StoreTooNew
from briotui.kernel.paths import BRIO_DIR, write_gitignore
from briotui.kernel.store.migrations import MIGRATIONS, latest_version

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 10.0
"""How long a connection waits for another writer before giving up."""

WRITE_RETRIES = 3
"""How often the writer tries to start a transaction before it waits and tries later."""

RETRY_PAUSE_S = 1.0
"""How long the writer waits before trying again while the database stays locked."""

Statement = tuple[str, Sequence[Any]]
"""One SQL statement and its parameters."""


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(
        str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        conn.close()
        raise StoreError(
            f"{path} could not be switched to WAL mode (got {mode!r}). Put the project "
            "on a local filesystem that supports SQLite WAL."
        )
    # FULL: a committed transaction is on disk before COMMIT returns. The commit
    # journal's crash safety depends on it.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in ``conn`` (0 for a fresh database)."""
    has = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'"
    ).fetchone()
    if not has:
        return 0
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring ``conn`` up to the latest schema; returns the version.

    Raises:
        StoreTooNew: The database is from a newer briotui.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(conn)
        latest = latest_version()
        if current > latest:
            raise StoreTooNew(
                f"{path} has schema version {current}, but this briotui knows up to "
                f"{latest}. Upgrade briotui, or move {path.name} aside to start fresh."
            )
        if current == 0:
            conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        for version in range(current + 1, latest + 1):
            MIGRATIONS[version - 1](conn)
            conn.execute("UPDATE schema_version SET version = ?", (version,))
        conn.execute("COMMIT")
        return latest
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _move_aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    path.rename(target)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(target.with_name(target.name + suffix))
    return target


def _open_checked(path: Path) -> tuple[sqlite3.Connection, list[str]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.parent.name == BRIO_DIR:  # keep the local state out of the user's git status
        write_gitignore(path.parent)
    notices: list[str] = []
    try:
        conn = _connect(path)
        ok = conn.execute("PRAGMA quick_check").fetchone()[0]
        if ok != "ok":
            conn.close()
            raise sqlite3.DatabaseError(f"quick_check: {ok}")
    except sqlite3.DatabaseError as exc:
        if not path.exists():
            raise StoreError(f"{path} cannot be opened: {exc}.") from exc
        moved = _move_aside(path)
        message = (
            f"{path} was not a usable database ({exc}). It was moved to {moved} (nothing "
            "was deleted) and a fresh database was created. Sessions recorded in the old "
            "file are not visible; keep the moved file if you want to recover them."
        )
        log.warning(message)
        notices.append(message)
        conn = _connect(path)
    migrate(conn, path)
    return conn, notices


class _Writer:
    """One thread committing queued writes in groups, on a ``synchronous=NORMAL`` connection.

    Whoever commits holds ``_commit_lock`` and takes *everything* queued at that moment,
    so commits happen in submission order whether the writer thread or a caller of
    :meth:`flush` (a reader wanting its own writes, or exit) does them.
    """

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(
            str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: durable against a killed process, not against power loss
        # (see the module docstring for the measurement behind the choice).
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._pending: list[Sequence[Statement]] = []
        self._cond = threading.Condition()
        self._commit_lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="brio-store-writer", daemon=True)
        self._thread.start()
        _writers.add(self)

    def submit(self, group: Sequence[Statement]) -> None:
        with self._cond:
            if self._closed:
                raise StoreError("The project database is closed; nothing more can be recorded.")
            self._pending.append(group)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return  # close() commits what is still queued
            try:
                if not self.flush():  # the database stays locked: try again a bit later
                    with self._cond:
                        if not self._closed:
                            self._cond.wait(RETRY_PAUSE_S)
            except Exception:  # keep writing later groups; this one is lost and logged
                log.exception("queued records could not be written")

    def flush(self) -> bool:
        """Commit everything queued so far (in this thread), then return whether it was.

        While another process holds the database's write lock past the retries, the
        records stay queued, in order, for the next try (never dropped).
        """
        with self._commit_lock:
            with self._cond:
                groups, self._pending = self._pending, []
            if not groups or self._commit(groups):
                return True
            with self._cond:
                self._pending[:0] = groups
            return False

    def _commit(self, groups: list[Sequence[Statement]]) -> bool:
        conn = self._conn
        for attempt in range(WRITE_RETRIES):
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:  # the database stayed locked
                if attempt == WRITE_RETRIES - 1:
                    log.warning(
                        "%d queued record(s) wait: the database stays locked (%s)",
                        len(groups),
                        exc,
                    )
                    return False
        try:
            for group in groups:  # a failing group is rolled back alone
                conn.execute("SAVEPOINT brio_write")
                try:
                    for sql, params in group:
                        conn.execute(sql, params)
                except sqlite3.Error as exc:
                    conn.execute("ROLLBACK TO brio_write")
                    log.error("a queued record was not written: %s (%s)", exc, group[0][0][:80])
                conn.execute("RELEASE brio_write")
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if not self.flush():
            log.error(
                "%d queued record(s) were not written: the database stayed locked",
                len(self._pending),
            )
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=BUSY_TIMEOUT_S)
        with self._commit_lock:
            self._conn.close()
        _writers.discard(self)


_writers: weakref.WeakSet[_Writer] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    """Commit what is queued in every open store when the interpreter exits."""
    for writer in list(_writers):
        with contextlib.suppress(Exception):
            writer.flush()


class Store:
    """A thread-safe synchronous connection to the project database.

    Attributes:
        path: The database file.
        notices: Messages for the user from opening (e.g. a corrupt file moved aside).
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, notices: list[str]) -> None:
        self.path = path
        self.notices = notices
        self._conn = conn
        self._lock = threading.RLock()
        self._writer: _Writer | None = None
        self._writer_lock = threading.Lock()
        self._closed = False
        self._inside = threading.local()
        """Per thread: inside :meth:`transaction` (whose write lock the writer would
        wait for, so reads there do not flush)."""

    @classmethod
    def open(cls, path: Path | str) -> Store:
        """Open (creating and migrating if needed) the database at ``path``.

        Raises:
            StoreTooNew: The file is from a newer briotui.
            StoreError: It cannot be opened at all.
        """
        p = Path(path)
        conn, notices = _open_checked(p)
        return cls(p, conn, notices)

    def write(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Queue one statement for the writer thread; returns at once (see the module).

        It is committed within about a commit's time, in order with every other write,
        and before anything this process reads or writes synchronously through the
        store. Failures are logged (the caller has moved on).
        """
        self.write_many([(sql, params)])

    def write_many(self, statements: Sequence[Statement]) -> None:
        """Queue statements that are committed together or not at all."""
        if statements:
            self._queue().submit(list(statements))

    def flush(self) -> None:
        """Commit what :meth:`write` queued (in the calling thread) before returning.

        Inside :meth:`transaction` it does nothing: the queue was flushed when the
        transaction began, and committing now would wait for that transaction's lock.
        """
        writer = self._writer
        if writer is not None and not getattr(self._inside, "depth", 0):
            writer.flush()

    def _queue(self) -> _Writer:
        writer = self._writer
        if writer is None:
            with self._writer_lock:
                if self._closed:
                    raise StoreError(f"{self.path} is closed; nothing more can be recorded.")
                if self._writer is None:
                    self._writer = _Writer(self.path)
                writer = self._writer
        return writer

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``), committed durably on exit."""
        self.flush()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._inside.depth = getattr(self._inside, "depth", 0) + 1
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            finally:
                self._inside.depth -= 1
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run a read query; returns all rows."""
        self.flush()
        with self._lock:
            return list(self._conn.execute(sql, params).fetchall())

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement in its own transaction."""
        with self.transaction() as conn:
            conn.execute(sql, params)

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: "ok" when the file is sound."""
        with self._lock:
            return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        """Commit what is queued and close the connections."""
        with self._writer_lock:
            writer, self._writer = self._writer, None
            self._closed = True
        if writer is not None:
            writer.close()
        with self._lock:
            self._conn.close()


async def open_async(path: Path | str) -> aiosqlite.Connection:
    """An :mod:`aiosqlite` connection to the migrated database at ``path``.

    Migrations, WAL and corruption handling run first through the same code as
    :meth:`Store.open`.
    """
    p = Path(path)
    conn, _ = _open_checked(p)
    conn.close()
    aconn = await aiosqlite.connect(str(p), timeout=BUSY_TIMEOUT_S)
    await aconn.execute("PRAGMA synchronous=FULL")
    await aconn.execute("PRAGMA foreign_keys=ON")
    return aconn
