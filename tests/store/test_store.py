"""The project store: WAL, migrations, too-new refusal, corrupt files moved aside."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from briotui.kernel.errors import StoreTooNew
from briotui.kernel.store import Store, latest_version, migrations, open_async, schema_version


def test_fresh_store_is_wal_and_migrated(tmp_path: Path) -> None:
    store = Store.open(tmp_path / ".brio" / "state.db")
    assert store.query("PRAGMA journal_mode")[0][0] == "wal"
    assert store.query("SELECT version FROM schema_version")[0][0] == latest_version()
    tables = {r[0] for r in store.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "sessions",
        "session_files",
        "hunk_decisions",
        "commits",
        "commit_files",
        "feedback",
    } <= tables
    assert store.integrity_check() == "ok"
    store.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_version SET version = 999")
    conn.commit()
    conn.close()
    with pytest.raises(StoreTooNew, match="Upgrade briotui"):
        Store.open(path)


def test_corrupt_file_is_moved_aside_not_deleted(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    garbage = b"this is not a database" * 100
    path.write_bytes(garbage)
    store = Store.open(path)
    assert store.notices
    assert "moved to" in store.notices[0]
    aside = list(tmp_path.glob("state.db.corrupt-*"))
    assert len(aside) == 1
    assert aside[0].read_bytes() == garbage
    assert store.integrity_check() == "ok"
    store.close()


def test_adding_a_migration_is_one_function(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.db"
    Store.open(path).close()

    def v_next(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE added_later (id INTEGER PRIMARY KEY, what TEXT)")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, v_next])
    import briotui.kernel.store.db as db

    monkeypatch.setattr(db, "MIGRATIONS", migrations.MIGRATIONS)
    store = Store.open(path)
    assert store.query("SELECT version FROM schema_version")[0][0] == latest_version()
    store.execute("INSERT INTO added_later (what) VALUES ('x')")
    store.close()


def test_failed_migration_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.db"
    Store.open(path).close()
    shipped = latest_version()

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half (x)")
        raise RuntimeError("boom")

    import briotui.kernel.store.db as db

    monkeypatch.setattr(db, "MIGRATIONS", [*migrations.MIGRATIONS, broken])
    monkeypatch.setattr(migrations, "MIGRATIONS", db.MIGRATIONS)
    with pytest.raises(RuntimeError):
        Store.open(path)
    conn = sqlite3.connect(path)
    assert schema_version(conn) == shipped
    assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name='half'").fetchone()
    conn.close()


async def test_async_face_shares_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = await open_async(path)
    try:
        async with conn.execute("SELECT version FROM schema_version") as cur:
            row = await cur.fetchone()
        assert row is not None
        assert row[0] == latest_version()
    finally:
        await conn.close()
