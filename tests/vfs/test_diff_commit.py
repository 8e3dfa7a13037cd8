"""Diff and hunks, decisions, commit (with rebase), git commit, rollback, branch merge."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import git
import pytest

from briotui.kernel.errors import CommitRefused, MergeConflict
from briotui.kernel.vfs import SessionManager
from briotui.kernel.vfs.diff import file_change
from briotui.kernel.vfs.merge import merge3


def _edit_app(text: str, changes: dict[int, str]) -> bytes:
    lines = text.splitlines(keepends=True)
    for n, new in changes.items():
        lines[n - 1] = new
    return "".join(lines).encode()


def test_hunks_and_stable_ids(manager: SessionManager, repo_dir: Path) -> None:
    s = manager.create()
    app = (repo_dir / "src/app.py").read_text()
    s.write("src/app.py", _edit_app(app, {2: "TWO\n", 30: "THIRTY\n"}), False)
    hunks = s.diff().file("src/app.py").hunks  # type: ignore[union-attr]
    assert [h.kind for h in hunks] == ["text", "text"]
    first, second = hunks
    assert "#h-" + first.id in s.changes()
    # Changing the second hunk does not change the first's id, and vice versa.
    s.write("src/app.py", _edit_app(app, {2: "TWO\n", 30: "thirty!\n"}), False)
    again = s.diff().file("src/app.py").hunks  # type: ignore[union-attr]
    assert again[0].id == first.id
    assert again[1].id != second.id


def test_fidelity_binary_newline_mode_rename_delete(
    manager: SessionManager, repo_dir: Path
) -> None:
    s = manager.create()
    s.write("data/blob.bin", b"\x00\x01new binary", False)
    s.write("notes.txt", b"no trailing newline, edited", False)
    s.write("bin/run.sh", (repo_dir / "bin/run.sh").read_bytes(), False)  # drop +x
    s.write("src/tool.py", b"#!/usr/bin/env python\n", True)
    s.rename("src/util.py", "src/helpers.py")
    s.delete("README.md")
    d = s.diff()
    by = {f.path: f for f in d.files}
    assert by["data/blob.bin"].binary
    assert [h.kind for h in by["data/blob.bin"].hunks] == ["binary"]
    assert "\\ No newline at end of file" in by["notes.txt"].text()
    assert [h.kind for h in by["bin/run.sh"].hunks] == ["mode"]
    assert "old mode 100755\nnew mode 100644" in by["bin/run.sh"].text()
    assert by["src/helpers.py"].status == "renamed"
    assert by["src/helpers.py"].old_path == "src/util.py"
    assert by["README.md"].status == "deleted"
    assert by["src/tool.py"].status == "added"
    assert by["src/tool.py"].new_exec
    s.accept()
    result = s.commit()
    assert (repo_dir / "data/blob.bin").read_bytes() == b"\x00\x01new binary"
    assert (repo_dir / "notes.txt").read_bytes() == b"no trailing newline, edited"
    assert not os.stat(repo_dir / "bin/run.sh").st_mode & stat.S_IXUSR
    assert os.stat(repo_dir / "src/tool.py").st_mode & stat.S_IXUSR
    assert not (repo_dir / "src/util.py").exists()
    assert (repo_dir / "src/helpers.py").read_text() == "def f():\n    return 1\n"
    assert not (repo_dir / "README.md").exists()
    assert set(result.deleted) == {"README.md", "src/util.py"}
    assert not list(repo_dir.rglob("*.brio-*.tmp"))


def test_only_accepted_hunks_reach_the_tree(manager: SessionManager, repo_dir: Path) -> None:
    s = manager.create()
    app = (repo_dir / "src/app.py").read_text()
    s.write("src/app.py", _edit_app(app, {2: "TWO\n", 30: "THIRTY\n"}), False)
    s.write("extra.txt", b"new\n", False)
    first, second = s.diff().file("src/app.py").hunks  # type: ignore[union-attr]
    s.accept([first.id])
    s.reject([second.id], reason="keep 30 as is")
    result = s.commit()
    assert result.written == ("src/app.py",)
    assert (repo_dir / "src/app.py").read_bytes() == _edit_app(app, {2: "TWO\n"})
    assert not (repo_dir / "extra.txt").exists()
    assert "keep 30 as is" in s.feedback()
    assert s.feedback() == ""  # delivered once


def test_decisions_survive_reopen(repo_dir: Path) -> None:
    m = SessionManager.open(repo_dir)
    s = m.create()
    s.write("src/util.py", b"x\n", False)
    hid = s.diff().hunks()[0].id
    s.reject([hid], reason="no")
    m.close()
    m2 = SessionManager.open(repo_dir)
    assert m2.get(s.id).decisions() == {hid: ("rejected", "no")}
    m2.close()


def test_commit_refuses_with_nothing_accepted(manager: SessionManager) -> None:
    s = manager.create()
    s.write("a.txt", b"a\n", False)
    with pytest.raises(CommitRefused):
        s.commit()


def test_user_edit_clean_merge(manager: SessionManager, repo_dir: Path) -> None:
    s = manager.create()
    app = (repo_dir / "src/app.py").read_text()
    s.write("src/app.py", _edit_app(app, {30: "SESSION\n"}), False)
    (repo_dir / "src/app.py").write_bytes(_edit_app(app, {2: "USER\n"}))
    s.accept()
    result = s.commit()
    assert result.merged == ("src/app.py",)
    assert (repo_dir / "src/app.py").read_bytes() == _edit_app(app, {2: "USER\n", 30: "SESSION\n"})


def test_user_edit_real_conflict_overwrites_nothing(
    manager: SessionManager, repo_dir: Path
) -> None:
    s = manager.create()
    app = (repo_dir / "src/app.py").read_text()
    s.write("src/app.py", _edit_app(app, {10: "SESSION\n"}), False)
    s.write("other.txt", b"other\n", False)
    user = _edit_app(app, {10: "USER\n"})
    (repo_dir / "src/app.py").write_bytes(user)
    s.accept()
    with pytest.raises(MergeConflict) as info:
        s.commit()
    region = info.value.conflicts[0]["regions"][0]
    assert region["ours"] == "USER\n"
    assert region["theirs"] == "SESSION\n"
    assert region["base"] == "line 10\n"
    assert (repo_dir / "src/app.py").read_bytes() == user
    assert not (repo_dir / "other.txt").exists()
    assert s.state == "open"


def test_git_commit_exact_files_no_hooks(manager: SessionManager, repo_dir: Path) -> None:
    marker = repo_dir.parent / "hook-ran"
    hook = repo_dir / ".git/hooks/pre-commit"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    for name in ("commit-msg", "post-commit", "reference-transaction"):
        other = repo_dir / ".git/hooks" / name
        other.write_text(f"#!/bin/sh\ntouch {marker}\n")
        other.chmod(0o755)
    (repo_dir / "notes.txt").write_text("user's unrelated unstaged edit")
    s = manager.create(task="Make util return 2")
    s.write("src/util.py", b"def f():\n    return 2\n", False)
    s.delete("README.md")
    s.write("bin/new.sh", b"#!/bin/sh\n", True)
    s.accept()
    result = s.commit(git=True, provenance="coder (scripted/test)")
    repo = git.Repo(repo_dir)
    head = repo.head.commit
    assert head.hexsha == result.git_commit
    assert head.message.startswith("Make util return 2")
    assert "Brio-Provenance: coder (scripted/test)" in head.message
    assert head.author.email == "test@example.invalid"
    changed = set(repo.git.diff_tree("--no-commit-id", "--name-only", "-r", "HEAD").split())
    assert changed == {"src/util.py", "README.md", "bin/new.sh"}
    assert head.tree["bin/new.sh"].mode == 0o100755
    assert not marker.exists()
    assert repo.is_dirty(path="notes.txt")  # the user's edit was not committed


def test_git_commit_refuses_unrelated_staged(manager: SessionManager, repo_dir: Path) -> None:
    repo = git.Repo(repo_dir)
    (repo_dir / "notes.txt").write_text("staged by the user")
    repo.git.add("notes.txt")
    s = manager.create()
    s.write("src/util.py", b"x\n", False)
    s.accept()
    before = repo.head.commit.hexsha
    with pytest.raises(CommitRefused, match=r"notes\.txt"):
        s.commit(git=True)
    assert repo.head.commit.hexsha == before
    assert (repo_dir / "src/util.py").read_text() == "def f():\n    return 1\n"
    result = s.commit(git=True, include_staged=True)
    assert set(repo.git.diff_tree("--no-commit-id", "--name-only", "-r", "HEAD").split()) == {
        "src/util.py",
        "notes.txt",
    }
    assert result.git_commit


def test_git_refused_outside_a_repo(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    m = SessionManager.open(tmp_path)
    s = m.create()
    s.write("a.txt", b"b\n", False)
    s.accept()
    with pytest.raises(CommitRefused, match="not a git repository"):
        s.commit(git=True)
    s.commit()
    assert (tmp_path / "a.txt").read_text() == "b\n"
    m.close()


def test_rollback_of_committed_session_restores_and_reverts_git(
    manager: SessionManager, repo_dir: Path
) -> None:
    repo = git.Repo(repo_dir)
    before = repo.head.commit.hexsha
    s = manager.create(task="t")
    s.write("src/util.py", b"x\n", False)
    s.write("added.txt", b"new\n", False)
    s.delete("README.md")
    s.accept()
    s.commit(git=True)
    assert repo.head.commit.hexsha != before
    result = s.rollback()
    assert result.git_reverted
    assert repo.head.commit.hexsha == before
    assert (repo_dir / "src/util.py").read_text() == "def f():\n    return 1\n"
    assert not (repo_dir / "added.txt").exists()
    assert (repo_dir / "README.md").exists()
    assert not repo.is_dirty(untracked_files=False)
    assert s.state == "rolled-back"


def test_rollback_refuses_to_clobber_later_edits(manager: SessionManager, repo_dir: Path) -> None:
    s = manager.create()
    s.write("src/util.py", b"x\n", False)
    s.accept()
    s.commit()
    (repo_dir / "src/util.py").write_text("user after commit\n")
    with pytest.raises(MergeConflict):
        s.rollback()
    assert (repo_dir / "src/util.py").read_text() == "user after commit\n"


def test_rollback_of_open_session_discards(manager: SessionManager, repo_dir: Path) -> None:
    s = manager.create()
    s.write("src/util.py", b"x\n", False)
    s.rollback()
    assert s.state == "discarded"
    assert (repo_dir / "src/util.py").read_text() == "def f():\n    return 1\n"


def test_branch_merge_clean_conflict_and_strategies(
    manager: SessionManager, repo_dir: Path
) -> None:
    app = (repo_dir / "src/app.py").read_text()
    s = manager.create()
    a = s.fork(label="a")
    b = s.fork(label="b")
    a.write("src/app.py", _edit_app(app, {2: "A\n"}), False)
    b.write("src/app.py", _edit_app(app, {30: "B\n"}), False)
    b.write("b-only.txt", b"b\n", False)
    assert s.merge_from(a) == ["src/app.py"]
    assert set(s.merge_from(b)) == {"src/app.py", "b-only.txt"}
    assert s.read("src/app.py") == _edit_app(app, {2: "A\n", 30: "B\n"})
    c = s.fork()
    d = s.fork()
    c.write("src/app.py", _edit_app(app, {2: "C\n", 30: "B\n"}), False)
    d.write("src/app.py", _edit_app(app, {2: "D\n", 30: "B\n"}), False)
    s.merge_from(c)
    with pytest.raises(MergeConflict) as info:
        s.merge_from(d)
    assert info.value.conflicts[0]["regions"][0]["theirs"] == "D\n"
    assert s.read("src/app.py") == _edit_app(app, {2: "C\n", 30: "B\n"})
    s.merge_from(d, strategy="theirs")
    assert s.read("src/app.py") == _edit_app(app, {2: "D\n", 30: "B\n"})


def test_merge3_strategies() -> None:
    base = b"a\nb\nc\n"
    ours = b"a\nO\nc\n"
    theirs = b"a\nT\nc\n"
    assert not merge3(base, ours, theirs).clean
    assert merge3(base, ours, theirs, strategy="ours").content == ours
    assert merge3(base, ours, theirs, strategy="theirs").content == theirs
    assert merge3(base, ours, theirs, strategy="union").content == b"a\nO\nT\nc\n"
    assert merge3(base, None, theirs).conflicts  # delete vs modify
    assert merge3(base, base, None).deleted


def test_added_empty_file_has_a_hunk() -> None:
    change = file_change(path="e", old_path="e", old=None, new=b"", old_exec=False, new_exec=False)
    assert change is not None
    assert len(change.hunks) == 1
