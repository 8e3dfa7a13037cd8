"""The project database's schema, as an ordered list of migrations (the one schema source).

Each migration is a function taking a :class:`sqlite3.Connection` inside an open
transaction. Its version is its position in :data:`MIGRATIONS` plus one. Adding a table
later (tasks, audit, usage) is one new function appended to the list; never edit one
that has shipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

Migration = Callable[[sqlite3.Connection], None]


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run several statements inside the caller's transaction.

    (:meth:`sqlite3.Connection.executescript` would commit first, breaking the
    all-or-nothing migration.)
    """
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            conn.execute(pending)
            pending = ""
    if pending.strip():
        conn.execute(pending)


def _v1_sessions(conn: sqlite3.Connection) -> None:
    """Sessions, their changed files, hunk decisions, feedback and the commit journal."""
    run_script(
        conn,
        """
        CREATE TABLE bases (
            id          TEXT PRIMARY KEY,
            created     REAL NOT NULL,
            head        TEXT,            -- the git HEAD commit at creation, if any
            is_git      INTEGER NOT NULL
        );
        CREATE TABLE sessions (
            id          TEXT PRIMARY KEY,
            parent_id   TEXT REFERENCES sessions(id),
            base_id     TEXT NOT NULL REFERENCES bases(id),
            state       TEXT NOT NULL,   -- open | committed | discarded | rolled-back
            label       TEXT NOT NULL DEFAULT '',
            task        TEXT NOT NULL DEFAULT '',
            created     REAL NOT NULL,
            updated     REAL NOT NULL,
            commit_id   INTEGER
        );
        -- layer 'work' is the session's current overlay; 'fork' is the overlay it was
        -- forked from (the merge base when merging back into the parent).
        CREATE TABLE session_files (
            session_id  TEXT NOT NULL REFERENCES sessions(id),
            layer       TEXT NOT NULL,
            path        TEXT NOT NULL,
            blob        TEXT,            -- NULL: deleted in the session
            executable  INTEGER NOT NULL DEFAULT 0,
            origin      TEXT,            -- the base path it was renamed from, if any
            size        INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (session_id, layer, path)
        );
        CREATE TABLE hunk_decisions (
            session_id  TEXT NOT NULL REFERENCES sessions(id),
            hunk_id     TEXT NOT NULL,
            path        TEXT NOT NULL,
            decision    TEXT NOT NULL,   -- accepted | rejected | pending
            reason      TEXT NOT NULL DEFAULT '',
            updated     REAL NOT NULL,
            PRIMARY KEY (session_id, hunk_id)
        );
        CREATE TABLE feedback (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id  TEXT NOT NULL REFERENCES sessions(id),
            hunk_id     TEXT NOT NULL,
            path        TEXT NOT NULL,
            reason      TEXT NOT NULL DEFAULT '',
            hunk        TEXT NOT NULL,
            created     REAL NOT NULL,
            delivered   INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE commits (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id  TEXT NOT NULL REFERENCES sessions(id),
            state       TEXT NOT NULL,   -- applying | done | rolled-back
            message     TEXT NOT NULL DEFAULT '',
            created     REAL NOT NULL,
            finished    REAL,
            git_commit  TEXT,
            git_parent  TEXT
        );
        CREATE TABLE commit_files (
            commit_id   INTEGER NOT NULL REFERENCES commits(id),
            seq         INTEGER NOT NULL,
            path        TEXT NOT NULL,
            old_blob    TEXT,            -- NULL: the file did not exist before
            old_exec    INTEGER NOT NULL DEFAULT 0,
            new_blob    TEXT,            -- NULL: the commit deletes the file
            new_exec    INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (commit_id, path)
        );
        -- base bytes kept for files a session changed (see vfs.snapshot)
        CREATE TABLE base_captures (
            base_id     TEXT NOT NULL REFERENCES bases(id),
            path        TEXT NOT NULL,
            blob        TEXT NOT NULL,
            PRIMARY KEY (base_id, path)
        );
        CREATE INDEX commits_state ON commits(state);
        """,
    )


MIGRATIONS: list[Migration] = [_v1_sessions]
"""Every migration in order; version N is ``MIGRATIONS[N - 1]``."""


def latest_version() -> int:
    """The schema version this briotui writes."""
    return len(MIGRATIONS)
