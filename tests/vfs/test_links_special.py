"""Symlinks are content, special files are never opened, big files are never copied.

Through the Session API the agents' host calls use, and the ``briotui sessions`` CLI.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import git
import pytest

from briotui.cli.main import main
from briotui.kernel.errors import FileTooLarge, PathDenied
from briotui.kernel.vfs import SessionManager
from briotui.kernel.vfs.session import DEFAULT_MAX_FILE_SIZE


def _within(fn: Callable[[], Any], seconds: float = 20) -> Any:
    """``fn()``, failing (instead of hanging the suite) if it blocks on a FIFO."""
    out: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "the kernel blocked opening a FIFO"
    if errors:
        raise errors[0]
    return out[0]


def _json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


# -- 2. special files --------------------------------------------------------------


def test_a_link_to_a_fifo_is_never_followed(repo_dir: Path, tmp_path: Path) -> None:
    os.mkfifo(repo_dir / "pipe")
    (repo_dir / "to_pipe.txt").symlink_to("pipe")
    os.remove(repo_dir / "notes.txt")
    os.mkfifo(repo_dir / "notes.txt")  # a tracked file replaced by a FIFO
    m = SessionManager.open(repo_dir)
    try:
        s = _within(m.create)
        with pytest.raises(PathDenied) as info:
            _within(lambda: s.read("to_pipe.txt"))
        assert "symbolic link to 'pipe'" in info.value.message
        entry = s.stat("to_pipe.txt")
        assert entry is not None
        assert entry.kind == "symlink"
        with pytest.raises(PathDenied):
            _within(lambda: s.read("notes.txt"))
        assert "fifo" in dict(s.left_out())["notes.txt"]
        # The shell's materialization copies the link as a link and opens nothing.
        work = tmp_path / "work"
        _within(lambda: s.materialize(work))
        assert os.readlink(work / "to_pipe.txt") == "pipe"
        assert not (work / "notes.txt").exists()
        # Deleting the link is a reviewable change.
        s.delete("to_pipe.txt")
        change = _within(s.diff).file("to_pipe.txt")
        assert change is not None
        assert change.old_symlink
        assert change.status == "deleted"
    finally:
        m.close()


def test_non_git_project_lists_special_files_it_left_out(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    (root / "a.txt").write_text("a\n")
    os.mkfifo(root / "fifo")
    (root / "link").symlink_to("fifo")
    m = SessionManager.open(root)
    try:
        s = _within(m.create)
        assert s.stat("link") is not None
        with pytest.raises(PathDenied):
            _within(lambda: s.read("link"))
        assert s.read("a.txt") == b"a\n"
        assert "fifo" in dict(s.left_out())["fifo"]
    finally:
        m.close()


# -- 3. symlinks and hard links can be reviewed ------------------------------------


def test_links_out_and_into_git_are_reviewed_as_links(
    repo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("outside\n")
    (repo_dir / "out_link").symlink_to(outside)
    (repo_dir / "git_link").symlink_to(".git/config")
    os.link(repo_dir / "src/util.py", tmp_path / "util-twin.py")  # a hard link
    repo = git.Repo(repo_dir)
    repo.git.add("-A")
    repo.git.commit("-q", "-m", "links", "--no-verify")
    m = SessionManager.open(repo_dir)
    s = m.create(task="touch links")
    s.delete("out_link")
    s.write("git_link", b"not a link any more\n", False)
    s.write("src/util.py", b"def f():\n    return 2\n", False)
    sid = s.id
    m.close()
    c = ["-C", str(repo_dir), "sessions"]

    assert main([*c, "show", sid, "--json"]) == 0
    files = {f["path"]: f for f in _json(capsys)["session"]["files"]}
    assert files["out_link"]["old_symlink"] is True
    assert files["out_link"]["status"] == "deleted"
    assert files["git_link"]["old_symlink"] is True
    assert files["git_link"]["new_symlink"] is False
    assert [h["kind"] for h in files["git_link"]["hunks"]] == ["symlink"]
    assert main([*c, "show", sid]) == 0
    assert "out_link  (symbolic link)" in capsys.readouterr().out

    assert main([*c, "diff", sid]) == 0
    text = capsys.readouterr().out
    assert "deleted file mode 120000" in text
    assert f"-{outside}\n\\ No newline at end of file" in text
    assert "old mode 120000\nnew mode 100644" in text
    assert "-.git/config" in text
    assert "symbolic link" in text

    link_hunks = [h["id"] for p in ("out_link", "git_link") for h in files[p]["hunks"]]
    assert main([*c, "reject", sid, *link_hunks, "--reason", "keep the links", "--json"]) == 0
    capsys.readouterr()
    util = files["src/util.py"]["hunks"][0]["id"]
    assert main([*c, "accept", sid, util, "--json"]) == 0
    capsys.readouterr()
    assert main([*c, "commit", sid, "--json"]) == 0
    assert _json(capsys)["written"] == ["src/util.py"]
    # The hard-linked file was replaced, not written through; the links are untouched.
    assert (repo_dir / "src/util.py").read_text() == "def f():\n    return 2\n"
    assert (tmp_path / "util-twin.py").read_text() == "def f():\n    return 1\n"
    assert os.readlink(repo_dir / "out_link") == str(outside)
    assert os.readlink(repo_dir / "git_link") == ".git/config"
    assert outside.read_text() == "outside\n"


def test_symlink_survives_reopen_fork_and_rename(manager: SessionManager) -> None:
    s = manager.create()
    s.write_symlink("docs/latest", b"../README.md")
    s.rename("docs/latest", "docs/current")
    f = s.fork()
    reopened = SessionManager.open(manager.root)
    try:
        again = reopened.get(s.id)
        for view in (again, f):
            assert view.content("docs/current") == (b"../README.md", False, True)
            entry = view.stat("docs/current")
            assert entry is not None
            assert entry.kind == "symlink"
        change = again.diff().file("docs/current")
        assert change is not None
        assert change.new_symlink
        assert "new file mode 120000" in change.text()
    finally:
        reopened.close()


# -- 4. big files are left out, never read -----------------------------------------


def test_huge_untracked_file_is_left_out_not_copied(
    repo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with open(repo_dir / "dump.bin", "wb") as fh:
        fh.truncate(700 * 2**20)  # sparse: costs nothing on disk
    (repo_dir / "ignored").mkdir()
    with open(repo_dir / "ignored" / "cache.bin", "wb") as fh:
        fh.truncate(700 * 2**20)
    m = SessionManager.open(repo_dir)
    try:
        s = m.create()
        stored = sum(
            p.stat().st_size for p in (repo_dir / ".brio" / "sessions").rglob("*") if p.is_file()
        )
        assert stored < 10 * 2**20
        reasons = dict(s.left_out())
        assert "too large" in reasons["dump.bin"]
        assert str(DEFAULT_MAX_FILE_SIZE) in reasons["dump.bin"]
        assert "ignored/cache.bin" not in reasons  # git-ignored: never even listed
        assert s.stat("dump.bin") is None
        with pytest.raises(FileTooLarge):
            s.read("dump.bin")
        with pytest.raises(PathDenied):
            s.write("dump.bin", b"small now\n", False)
        sid = s.id
    finally:
        m.close()
    assert main(["-C", str(repo_dir), "sessions", "show", sid, "--json"]) == 0
    left = _json(capsys)["session"]["left_out"]
    assert [item["path"] for item in left] == ["dump.bin"]
    assert main(["-C", str(repo_dir), "sessions", "show", sid]) == 0
    assert "dump.bin: too large" in capsys.readouterr().out


def test_live_base_leaves_out_big_and_special_files(
    manager: SessionManager, repo_dir: Path
) -> None:
    from tests.vfs.test_live_base import wait_for_pending

    manager.start_watching()
    before = manager.create()
    with open(repo_dir / "huge.bin", "wb") as fh:
        fh.truncate(700 * 2**20)
    os.remove(repo_dir / "README.md")
    os.mkfifo(repo_dir / "README.md")
    (repo_dir / "to_readme").symlink_to("README.md")
    wait_for_pending(manager, "huge.bin", "README.md", "to_readme")
    after = _within(manager.create)
    assert after.base is not before.base
    reasons = dict(after.left_out())
    assert "too large" in reasons["huge.bin"]
    assert "fifo" in reasons["README.md"]
    assert after.content("to_readme") == (b"README.md", False, True)
    assert before.read("README.md").startswith(b"# Project")  # from git, not the FIFO
    manager.close()
    reopened = SessionManager.open(repo_dir)
    try:
        assert dict(reopened.get(after.id).left_out()) == reasons
    finally:
        reopened.close()


def test_a_link_change_is_one_hunk_taken_whole() -> None:
    from briotui.kernel.vfs.diff import apply_accepted, file_change

    change = file_change(
        path="cfg",
        old_path="cfg",
        old=b"line 1\nline 2\n",
        new=b"/etc/passwd",
        old_exec=True,
        new_exec=False,
        new_symlink=True,
    )
    assert change is not None
    assert [h.kind for h in change.hunks] == ["symlink"]
    assert "old mode 100755\nnew mode 120000" in change.text()
    assert "(symbolic link)" in change.hunks[0].header()
    taken = apply_accepted(change, [change.hunks[0].id])
    assert taken.writes == (("cfg", b"/etc/passwd", False),)
    assert taken.links == frozenset({"cfg"})
    assert apply_accepted(change, []).writes == ()
    same = file_change(
        path="l",
        old_path="l",
        old=b"t",
        new=b"t",
        old_exec=True,
        new_exec=False,
        old_symlink=True,
        new_symlink=True,
    )
    assert same is None
