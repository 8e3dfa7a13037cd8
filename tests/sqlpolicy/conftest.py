"""Fixtures for the agent SQL tests: a shared agents database with another agent's secret."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from briotui.kernel.sqlpolicy import AgentSql

SECRET = "S3CRET-7f4e1c-do-not-leak"
"""Stored in every table the attacker (prefix ``a1``) does not own."""

FOREIGN_TABLES = ("a10_x", "a1", "other", "A1x_t")
"""Tables in the database the attacker must never read or change.

``a10_x`` shares the attacker's prefix as a string prefix, ``a1`` is the bare
prefix, ``A1x_t`` differs only after the prefix.
"""


def open_agent(db: Path, prefix: str, **limits: int) -> AgentSql:
    """An :class:`AgentSql` with small, test-friendly limits."""
    opts = {"max_rows": 500, "max_result_bytes": 200_000, "max_steps": 2_000_000}
    opts.update(limits)
    return AgentSql.open(db, prefix, **opts)


def fingerprint(db: Path, owner_prefix: str = "a1") -> list[tuple[object, ...]]:
    """Everything outside ``owner_prefix``: schema rows and every row of those tables.

    Read with a plain connection (no policy), ordered, so two fingerprints are equal
    exactly when nothing foreign changed.
    """
    conn = sqlite3.connect(db)
    try:
        out: list[tuple[object, ...]] = []
        schema = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name"
        ).fetchall()
        for type_, name, tbl, sql in schema:
            if str(tbl).lower().startswith(owner_prefix + "_") and len(tbl) > len(owner_prefix) + 1:
                continue
            out.append(("schema", type_, name, tbl, sql))
            if type_ == "table":
                quoted = '"' + str(name).replace('"', '""') + '"'
                for row in conn.execute(f"SELECT * FROM {quoted} ORDER BY rowid"):
                    out.append(("row", name, *row))
        return out
    finally:
        conn.close()


def own_contents(db: Path, owner_prefix: str = "a1") -> str:
    """All rows of the owner's own tables, as text (to look for a smuggled secret)."""
    conn = sqlite3.connect(db)
    try:
        parts: list[str] = []
        for (name,) in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'"):
            if str(name).lower().startswith(owner_prefix + "_"):
                quoted = '"' + str(name).replace('"', '""') + '"'
                parts.append(repr(conn.execute(f"SELECT * FROM {quoted}").fetchall()))
        return "\n".join(parts)
    finally:
        conn.close()


@pytest.fixture
def agents_db(tmp_path: Path) -> Path:
    """A shared agents database where other prefixes' tables hold :data:`SECRET`."""
    db = tmp_path / "agents.db"
    conn = sqlite3.connect(db)
    for table in FOREIGN_TABLES:
        conn.execute(f'CREATE TABLE "{table}" (id INTEGER PRIMARY KEY, secret TEXT, n INT)')
        conn.execute(f'INSERT INTO "{table}" (secret, n) VALUES (?, 1), (?, 2)', (SECRET, SECRET))
    conn.execute("CREATE INDEX a10_x_secret ON a10_x(secret)")
    conn.execute("CREATE TABLE a10_seq (id INTEGER PRIMARY KEY AUTOINCREMENT, v)")
    conn.execute("INSERT INTO a10_seq (v) VALUES (?)", (SECRET,))
    conn.commit()
    conn.close()
    return db


@pytest.fixture
def attacker(agents_db: Path) -> Iterator[AgentSql]:
    """Prefix ``a1`` with a table ``a1_t(id, v, secret)`` of its own."""
    sql = open_agent(agents_db, "a1")
    sql.execute("CREATE TABLE a1_t (id INTEGER PRIMARY KEY, v TEXT, secret TEXT)")
    sql.execute("INSERT INTO a1_t (v, secret) VALUES ('mine', 'mine')")
    yield sql
    sql.close()
