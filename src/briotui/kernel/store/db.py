"""Opening the project database (``.brio/state.db``): WAL, migrations, corruption handling.

One file, two faces. :class:`Store` is a thread-safe synchronous connection (the
session layer and the crash-safe commit journal run on worker threads and in a
synchronous commit path, where durability must not depend on an event loop).
:func:`open_async` gives an :mod:`aiosqlite` connection to the same file for the
kernel's async code. Both go through :func:`migrate`, so there is one schema source
(:mod:`briotui.kernel.store.migrations`).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
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

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``), committed durably on exit."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run a read query; returns all rows."""
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
        """Close the connection."""
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
