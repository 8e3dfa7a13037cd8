"""A commit's old bytes that are HEAD's blobs stay in git; rollback reads them from there.

The commit journal names each file's old bytes by id. When they are exactly HEAD's
blob of the path (the usual case: the user did not edit the file), the commit copies
nothing into the blob store; ``sessions rollback`` reads them back from git, checked
against the journal's id, and says so plainly when git no longer has them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from briotui.cli.main import main
from briotui.kernel.vfs import SessionManager
from briotui.kernel.vfs.gitio import run_git

NEW_UTIL = b"def f():\n    return 2\n"
NEW_RUN = b"#!/bin/sh\necho changed\n"


def _blob_files(root: Path) -> set[str]:
    blobs = root / ".brio" / "sessions" / "blobs"
    return {str(p.relative_to(blobs)) for p in blobs.rglob("*") if p.is_file()}


def _committed_session(repo_dir: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """A session changing util.py, the executable run.sh and deleting README.md,
    committed through the CLI (files only); returns its id."""
    m = SessionManager.open(repo_dir)
    s = m.create(task="edit three files")
    s.write("src/util.py", NEW_UTIL, False)
    s.write("bin/run.sh", NEW_RUN, True)
    s.delete("README.md")
    m.close()
    sid = s.id
    assert main(["-C", str(repo_dir), "sessions", "accept", sid, "--json"]) == 0
    capsys.readouterr()
    return sid


def test_commit_copies_none_of_heads_old_bytes_and_rollback_restores_them(
    repo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = {rel: (repo_dir / rel).read_bytes() for rel in ("src/util.py", "bin/run.sh", "README.md")}
    sid = _committed_session(repo_dir, capsys)
    before = _blob_files(repo_dir)
    assert main(["-C", str(repo_dir), "sessions", "commit", sid, "--json"]) == 0
    capsys.readouterr()
    assert (repo_dir / "src/util.py").read_bytes() == NEW_UTIL
    # nothing copied: the old bytes are HEAD's blobs, which the journal names
    assert _blob_files(repo_dir) == before
    m = SessionManager.open(repo_dir)
    try:
        rows = m.store.query("SELECT path, old_git FROM commit_files ORDER BY path")
    finally:
        m.close()
    head = {
        rel: run_git(["rev-parse", f"HEAD:{rel}"], repo_dir).stdout.decode().strip() for rel in old
    }
    assert {r["path"]: r["old_git"] for r in rows} == head

    assert main(["-C", str(repo_dir), "sessions", "rollback", sid, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["restored"]
    for rel, data in old.items():
        assert (repo_dir / rel).read_bytes() == data
    assert os.stat(repo_dir / "bin/run.sh").st_mode & 0o100
    assert run_git(["status", "--porcelain"], repo_dir).stdout == b""


def test_rollback_says_so_when_git_lost_the_old_bytes(
    repo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sid = _committed_session(repo_dir, capsys)
    assert main(["-C", str(repo_dir), "sessions", "commit", sid]) == 0
    capsys.readouterr()
    # the journal names an object git no longer has (pruned since, say): the session's
    # base still reads HEAD, so only the rollback's old bytes are gone
    m = SessionManager.open(repo_dir)
    try:
        m.store.execute(
            "UPDATE commit_files SET old_git = ? WHERE path = 'src/util.py'", ("1" * 40,)
        )
    finally:
        m.close()
    assert main(["-C", str(repo_dir), "sessions", "rollback", sid]) == 2
    err = capsys.readouterr().err
    assert "Old content missing" in err
    assert "src/util.py" in err
    assert "Traceback" not in err
    # nothing changed: every file is still the commit's, the session still committed
    assert (repo_dir / "src/util.py").read_bytes() == NEW_UTIL
    assert (repo_dir / "bin/run.sh").read_bytes() == NEW_RUN
    assert not (repo_dir / "README.md").exists()
    m = SessionManager.open(repo_dir)
    try:
        assert m.get(sid).state == "committed"
    finally:
        m.close()


def test_old_bytes_the_user_changed_are_copied(repo_dir: Path) -> None:
    """Bytes that are not HEAD's (the user edited the file after the session started)
    are copied into the blob store before the journal names them, and rollback puts
    them back."""
    m = SessionManager.open(repo_dir)
    try:
        s = m.create(task="t")
        app = (repo_dir / "src/app.py").read_bytes()
        s.write("src/app.py", app.replace(b"line 3\n", b"three\n"), False)
        s.accept()
        yours = app.replace(b"line 30\n", b"thirty\n")
        (repo_dir / "src/app.py").write_bytes(yours)
        s.commit()
        rows = m.store.query("SELECT old_blob, old_git FROM commit_files")
        assert rows[0]["old_git"] is None
        assert m.blobs.get(rows[0]["old_blob"]) == yours
        s.rollback()
        assert (repo_dir / "src/app.py").read_bytes() == yours
    finally:
        m.close()
