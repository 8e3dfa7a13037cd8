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


def _v2_capabilities_tasks_usage(conn: sqlite3.Connection) -> None:
    """Grants, the append-only audit log, tasks, conversations and usage."""
    run_script(
        conn,
        """
        CREATE TABLE grants (
            id          TEXT PRIMARY KEY,
            agent       TEXT NOT NULL,
            capability  TEXT NOT NULL,   -- read | write | shell | sql | mesh | mcp
            pattern     TEXT NOT NULL,   -- path glob, argv pattern, table prefix, peer glob
            lifetime    TEXT NOT NULL,   -- once | task | session | project
            scope_id    TEXT NOT NULL DEFAULT '',  -- the task or session it is bound to
            source      TEXT NOT NULL,   -- user | policy | delegated
            parent_id   TEXT REFERENCES grants(id),
            created     REAL NOT NULL,
            revoked     REAL,
            used        INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX grants_agent ON grants(agent, capability);
        CREATE TABLE audit (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            at          REAL NOT NULL,
            agent       TEXT NOT NULL,
            instance    TEXT NOT NULL DEFAULT '',
            task_id     TEXT NOT NULL DEFAULT '',
            capability  TEXT NOT NULL,
            target      TEXT NOT NULL,
            decision    TEXT NOT NULL,   -- allowed | denied
            decided_by  TEXT NOT NULL,   -- <source>:<grant id> | user:<answer> | policy:<mode>
            reason      TEXT NOT NULL DEFAULT ''
        );
        CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE TABLE tasks (
            id          TEXT PRIMARY KEY,
            parent_id   TEXT REFERENCES tasks(id),
            agent       TEXT NOT NULL,
            goal        TEXT NOT NULL,
            status      TEXT NOT NULL,   -- pending | running | waiting | done | failed | cancelled
            session_id  TEXT,
            created     REAL NOT NULL,
            updated     REAL NOT NULL,
            result      TEXT NOT NULL DEFAULT ''
        );
        CREATE TABLE messages (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            task_id     TEXT NOT NULL,
            agent       TEXT NOT NULL,
            role        TEXT NOT NULL,   -- system | user | assistant
            content     TEXT NOT NULL,
            provider    TEXT NOT NULL DEFAULT '',
            model       TEXT NOT NULL DEFAULT '',
            created     REAL NOT NULL
        );
        CREATE INDEX messages_task ON messages(task_id);
        CREATE TABLE reviews (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id  TEXT NOT NULL,
            task_id     TEXT NOT NULL DEFAULT '',
            verdict     TEXT NOT NULL,   -- approve | request-changes
            findings    TEXT NOT NULL,   -- JSON list of {hunk_id, severity, message, suggestion}
            created     REAL NOT NULL
        );
        CREATE TABLE command_runs (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id  TEXT NOT NULL,
            task_id     TEXT NOT NULL DEFAULT '',
            agent       TEXT NOT NULL,
            argv        TEXT NOT NULL,   -- JSON list
            exit_code   INTEGER NOT NULL,
            created     REAL NOT NULL
        );
        CREATE TABLE usage (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            task_id     TEXT NOT NULL DEFAULT '',
            session_id  TEXT NOT NULL DEFAULT '',
            agent       TEXT NOT NULL,
            provider    TEXT NOT NULL DEFAULT '',
            model       TEXT NOT NULL DEFAULT '',
            input_tokens  INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd    REAL,
            fuel        INTEGER NOT NULL DEFAULT 0,
            wall_ms     REAL NOT NULL DEFAULT 0,
            created     REAL NOT NULL
        );
        """,
    )


def _v3_session_symlinks_left_out(conn: sqlite3.Connection) -> None:
    """Symlinks as session content, and what a session left out (and why)."""
    run_script(
        conn,
        """
        -- 1: the entry is a symlink; its blob holds the link's target bytes (git mode 120000)
        ALTER TABLE session_files ADD COLUMN symlink INTEGER NOT NULL DEFAULT 0;
        -- paths a command created in a session's work directory that the session did
        -- not take (FIFOs, devices, files over the size limit, refused paths)
        CREATE TABLE session_left_out (
            session_id  TEXT NOT NULL REFERENCES sessions(id),
            path        TEXT NOT NULL,
            reason      TEXT NOT NULL,
            PRIMARY KEY (session_id, path)
        );
        """,
    )


def _v4_commit_journal_links_and_git(conn: sqlite3.Connection) -> None:
    """The commit journal records symlink entries, its temp-name token and the git step."""
    run_script(
        conn,
        """
        -- a symlink entry: its blob is the link's target path (git mode 120000)
        ALTER TABLE commit_files ADD COLUMN old_symlink INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE commit_files ADD COLUMN new_symlink INTEGER NOT NULL DEFAULT 0;
        -- the random part of this commit's temp file names (NULL: an older briotui's)
        ALTER TABLE commits ADD COLUMN tmp_token TEXT;
        -- NULL: no git commit wanted | wanted | done
        ALTER TABLE commits ADD COLUMN git_state TEXT;
        ALTER TABLE commits ADD COLUMN git_message TEXT;
        -- the commit object made before the files were touched, its tree, and the
        -- update-index --index-info lines of the committed paths
        ALTER TABLE commits ADD COLUMN git_planned TEXT;
        ALTER TABLE commits ADD COLUMN git_tree TEXT;
        ALTER TABLE commits ADD COLUMN git_index TEXT;
        """,
    )


def _v5_provider_failures(conn: sqlite3.Connection) -> None:
    """Every failed attempt at a model request (the router retried or fell back)."""
    run_script(
        conn,
        """
        CREATE TABLE provider_failures (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            task_id     TEXT NOT NULL DEFAULT '',
            session_id  TEXT NOT NULL DEFAULT '',
            agent       TEXT NOT NULL,
            provider    TEXT NOT NULL,
            model       TEXT NOT NULL DEFAULT '',
            error_kind  TEXT NOT NULL,   -- a ProviderError cause: overloaded, timeout, ...
            message     TEXT NOT NULL DEFAULT '',
            created     REAL NOT NULL
        );
        CREATE INDEX provider_failures_task ON provider_failures(task_id);
        """,
    )


def _v6_command_run_output(conn: sqlite3.Connection) -> None:
    """A command run's duration and output (its tail), so a failed test run says why."""
    run_script(
        conn,
        """
        ALTER TABLE command_runs ADD COLUMN duration_ms INTEGER NOT NULL DEFAULT 0;
        -- the end of stdout then stderr, at most 64,000 characters
        ALTER TABLE command_runs ADD COLUMN output TEXT NOT NULL DEFAULT '';
        -- 1: the output lost its beginning
        ALTER TABLE command_runs ADD COLUMN truncated INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX command_runs_session ON command_runs(session_id);
        """,
    )


def _v7_session_conflicts(conn: sqlite3.Connection) -> None:
    """The conflicting regions a merge left in a session, for the user to resolve."""
    run_script(
        conn,
        """
        CREATE TABLE session_conflicts (
            session_id  TEXT NOT NULL,
            path        TEXT NOT NULL,
            branch      TEXT NOT NULL,   -- the branch session holding the other side
            regions     TEXT NOT NULL,   -- JSON list of {base, ours, theirs}
            created     REAL NOT NULL,
            PRIMARY KEY (session_id, path, branch)
        );
        """,
    )


def _v8_task_titles_hunk_provenance(conn: sqlite3.Connection) -> None:
    """What a restart must show again: a task's title in the task tree ("Plan the
    change", "Fix round 1") and who wrote each hunk of a session."""
    run_script(
        conn,
        """
        -- the title the task tree shows ('' : the goal's first line)
        ALTER TABLE tasks ADD COLUMN title TEXT NOT NULL DEFAULT '';
        CREATE TABLE hunk_provenance (
            session_id  TEXT NOT NULL,
            hunk_id     TEXT NOT NULL,
            task_id     TEXT NOT NULL DEFAULT '',  -- the run that wrote it
            agent       TEXT NOT NULL,
            model       TEXT NOT NULL DEFAULT '',  -- provider/model of its last reply
            created     REAL NOT NULL,
            PRIMARY KEY (session_id, hunk_id)
        );
        """,
    )


def _v9_run_journal(conn: sqlite3.Connection) -> None:
    """The run journal: each agent run's host calls in order, so a run can be replayed
    exactly (``briotui replay``) and an interrupted task resumed without asking the
    model again for what it already answered."""
    run_script(
        conn,
        """
        CREATE TABLE journal_runs (
            run_id      TEXT PRIMARY KEY,      -- the agent run's task id
            top_id      TEXT NOT NULL,         -- the top-level task it belongs to
            run_key     TEXT NOT NULL,         -- its place in the task (random parts left out)
            ordinal     INTEGER NOT NULL,      -- the n-th run with that key in the task
            agent       TEXT NOT NULL,
            runtime     TEXT NOT NULL DEFAULT '',  -- the component it ran on (kind:digest)
            code        TEXT NOT NULL DEFAULT '',  -- the blob holding the code the run loaded
            task        TEXT NOT NULL,         -- the task input: {id, goal, context} (JSON)
            session_id  TEXT NOT NULL DEFAULT '',
            status      TEXT NOT NULL,         -- running | done | failed | cancelled
            outcome     TEXT NOT NULL DEFAULT '',  -- {summary, data} or {error} (JSON)
            calls       INTEGER NOT NULL DEFAULT 0,
            started     REAL NOT NULL,
            ended       REAL
        );
        CREATE INDEX journal_runs_top ON journal_runs(top_id, started);
        CREATE TABLE journal_calls (
            run_id      TEXT NOT NULL,
            seq         INTEGER NOT NULL,      -- 1, 2, ... in the order the agent called
            call        TEXT NOT NULL,         -- iface.name
            digest      TEXT NOT NULL,         -- of the call and its arguments
            result      TEXT,                  -- the result (hostcodec JSON), or NULL:
            blob        TEXT,                  -- ... then the blob holding it (large ones)
            PRIMARY KEY (run_id, seq)
        ) WITHOUT ROWID;
        """,
    )


def _v10_commit_old_bytes_in_git(conn: sqlite3.Connection) -> None:
    """A commit's old bytes that git already holds (HEAD's blob of the path) are not
    copied into the blob store: the journal names git's object instead."""
    run_script(
        conn,
        """
        -- the git blob id of the old bytes when they are HEAD's blob of the path and
        -- were not copied into the blob store (NULL: old_blob is in the blob store)
        ALTER TABLE commit_files ADD COLUMN old_git TEXT;
        """,
    )


def _v11_task_outcome(conn: sqlite3.Connection) -> None:
    """How a request ended (verified, partial, failed...), beside its status: a request
    that ran to its end but changed nothing is ``done`` with the outcome ``failed``."""
    run_script(
        conn,
        """
        ALTER TABLE tasks ADD COLUMN outcome TEXT NOT NULL DEFAULT '';
        """,
    )


MIGRATIONS: list[Migration] = [
    _v1_sessions,
    _v2_capabilities_tasks_usage,
    _v3_session_symlinks_left_out,
    _v4_commit_journal_links_and_git,
    _v5_provider_failures,
    _v6_command_run_output,
    _v7_session_conflicts,
    _v8_task_titles_hunk_provenance,
    _v9_run_journal,
    _v10_commit_old_bytes_in_git,
    _v11_task_outcome,
]
"""Every migration in order; version N is ``MIGRATIONS[N - 1]``."""


def latest_version() -> int:
    """The schema version this briotui writes."""
    return len(MIGRATIONS)
