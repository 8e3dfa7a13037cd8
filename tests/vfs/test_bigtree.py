"""A generated real-world-sized tree: create, fork and diff work at scale; materialize; watch."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from briotui.devtools.bench.sessions import make_project
from briotui.kernel.vfs import SessionManager
from briotui.kernel.vfs.watch import touched_by_user

N_FILES = 3000


@pytest.fixture(scope="session")
def big_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("big") / "tree"
    root.mkdir()
    return root, make_project(root, N_FILES)


def test_fork_and_diff_on_a_big_tree(big_tree: tuple[Path, list[str]]) -> None:
    root, paths = big_tree
    m = SessionManager.open(root)
    s = m.create()
    assert len(s.base.files) == N_FILES
    for rel in paths[:100]:
        s.write(rel, s.read(rel).replace(b"line 5 ", b"LINE 5 "), False)
    f = s.fork()
    assert f.overlay() == s.overlay()
    d = f.diff()
    assert len(d.files) == 100
    assert all(len(c.hunks) == 1 for c in d.files)
    assert len(f.list_dir("", recursive=True)) == N_FILES + N_FILES // 100
    m.close()


def test_materialize_round_trip(manager: SessionManager, tmp_path: Path) -> None:
    s = manager.create()
    s.write("src/util.py", b"changed\n", False)
    s.delete("README.md")
    mat = s.materialize(tmp_path / "mat")
    assert (tmp_path / "mat/src/util.py").read_bytes() == b"changed\n"
    assert not (tmp_path / "mat/README.md").exists()
    assert (tmp_path / "mat/bin/run.sh").stat().st_mode & 0o100
    # A process writes in the directory; the session picks it up.
    (tmp_path / "mat/out.txt").write_text("test output\n")
    (tmp_path / "mat/notes.txt").unlink()
    (tmp_path / "mat/.git").mkdir()
    (tmp_path / "mat/.git/x").write_text("ignored")
    assert sorted(mat.sync_back()) == ["notes.txt", "out.txt"]
    assert s.read("out.txt") == b"test output\n"
    assert s.stat("notes.txt") is None
    s.write("later.txt", b"l\n", False)
    assert "later.txt" in mat.sync_out()
    assert (tmp_path / "mat/later.txt").exists()


async def test_watch_reports_user_edits(manager: SessionManager, repo_dir: Path) -> None:
    """The manager's one watcher calls its listeners; no poll is needed to learn of an edit."""
    s = manager.create()
    s.write("src/util.py", b"session\n", False)
    loop = asyncio.get_running_loop()
    counts: asyncio.Queue[int] = asyncio.Queue()
    manager.on_change(lambda n: loop.call_soon_threadsafe(counts.put_nowait, n))
    await asyncio.to_thread(manager.start_watching)
    try:
        (repo_dir / "src/util.py").write_text("user\n")
        while "src/util.py" not in manager.pending_changes():
            await asyncio.wait_for(counts.get(), timeout=10)
        seen = manager.pending_changes()
        assert not any(p.startswith((".brio", ".git")) for p in seen)
        assert touched_by_user(s, seen) == ["src/util.py"]
        manager.create()  # the new base takes the change in: listeners hear 0
        while (n := await asyncio.wait_for(counts.get(), timeout=10)) != 0:
            assert n > 0
    finally:
        manager.stop_watching()
