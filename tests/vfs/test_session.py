"""Sessions: copy-on-write reads and writes, forks, the WorkspaceView contract."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from briotui.kernel.errors import (
    FileTooLarge,
    PathDenied,
    PathRefused,
    SessionNotFound,
    SessionStateError,
    WorkspaceFileNotFound,
)
from briotui.kernel.vfs import SessionManager
from briotui.kernel.workspace import WorkspaceView


def test_session_is_a_workspace_view(manager: SessionManager) -> None:
    assert isinstance(manager.create(), WorkspaceView)


def test_reads_base_and_writes_never_touch_the_tree(
    manager: SessionManager, repo_dir: Path
) -> None:
    s = manager.create(task="edit")
    assert s.read("src/util.py") == b"def f():\n    return 1\n"
    s.write("src/util.py", b"def f():\n    return 2\n", False)
    s.write("new/file.txt", b"hello\n", False)
    s.delete("README.md")
    assert s.read("src/util.py") == b"def f():\n    return 2\n"
    assert (repo_dir / "src/util.py").read_text() == "def f():\n    return 1\n"
    assert not (repo_dir / "new").exists()
    assert (repo_dir / "README.md").exists()
    assert s.stat("README.md") is None
    with pytest.raises(WorkspaceFileNotFound):
        s.read("README.md")


def test_session_excludes_ignored_files_and_git_dir(repo_dir: Path) -> None:
    (repo_dir / "ignored").mkdir()
    (repo_dir / "ignored/x.txt").write_text("x")
    (repo_dir / "debug.log").write_text("x")
    (repo_dir / "untracked.txt").write_text("u\n")
    m = SessionManager.open(repo_dir)
    s = m.create()
    names = {e.path for e in s.list_dir("", recursive=True)}
    assert "untracked.txt" in names
    assert "debug.log" not in names
    assert "ignored/x.txt" not in names
    assert not any(n.startswith(".git/") or n.startswith(".brio") for n in names)
    m.close()


def test_base_is_the_state_at_creation(manager: SessionManager, repo_dir: Path) -> None:
    (repo_dir / "src/util.py").write_text("dirty at creation\n")
    (repo_dir / "extra.txt").write_text("untracked\n")
    s = manager.create()
    (repo_dir / "src/util.py").write_text("user edited later\n")
    (repo_dir / "extra.txt").write_text("user edited later\n")
    (repo_dir / "src/app.py").write_text("user edited a clean file\n")
    assert s.read("src/util.py") == b"dirty at creation\n"
    assert s.read("extra.txt") == b"untracked\n"
    assert s.read("src/app.py").startswith(b"line 1\n")


def test_list_dir_and_stat(manager: SessionManager) -> None:
    s = manager.create()
    s.write("src/pkg/new.py", b"x = 1\n", True)
    s.delete("src/util.py")
    top = [(e.path, e.kind) for e in s.list_dir("src", recursive=False)]
    assert top == [("src/app.py", "file"), ("src/pkg", "directory")]
    entry = s.stat("src/pkg/new.py")
    assert entry is not None
    assert entry.executable
    assert entry.size == 6
    assert s.stat("src/pkg") is not None
    assert s.stat("src/pkg").kind == "directory"
    assert s.stat("bin/run.sh").executable  # type: ignore[union-attr]
    with pytest.raises(WorkspaceFileNotFound):
        s.list_dir("nope", recursive=False)


def test_refusals_carry_wit_kinds(manager: SessionManager) -> None:
    s = manager.create()
    cases = [
        (lambda: s.write("../x", b"", False), PathRefused, "invalid"),
        (lambda: s.write(".git/hooks/pre-commit", b"", False), PathDenied, "denied"),
        (lambda: s.write("sub/.git/config", b"", False), PathDenied, "denied"),
        (lambda: s.read(".brio/state.db"), PathDenied, "denied"),
        (lambda: s.read("missing"), WorkspaceFileNotFound, "not-found"),
        (lambda: s.write("src", b"", False), PathRefused, "invalid"),
        (lambda: s.write("README.md/x", b"", False), PathRefused, "invalid"),
    ]
    for call, cls, kind in cases:
        with pytest.raises(cls) as info:
            call()
        assert info.value.wit_kind == kind  # type: ignore[attr-defined]


def test_size_limit(repo_dir: Path) -> None:
    m = SessionManager.open(repo_dir, max_file_size=100)
    s = m.create()
    with pytest.raises(FileTooLarge) as info:
        s.write("big", b"x" * 101, False)
    assert info.value.wit_kind == "too-large"
    with pytest.raises(FileTooLarge):
        s.read("data/blob.bin")
    m.close()


def test_symlink_out_of_project_is_refused(repo_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    (repo_dir / "leak").symlink_to(outside)
    m = SessionManager.open(repo_dir)
    s = m.create()
    with pytest.raises(PathDenied):
        s.read("leak")
    m.close()


def test_fork_is_independent_and_copies_no_project(manager: SessionManager) -> None:
    s = manager.create()
    s.write("a.txt", b"parent\n", False)
    f = s.fork()
    assert f.read("a.txt") == b"parent\n"
    f.write("a.txt", b"child\n", False)
    s.write("b.txt", b"only parent\n", False)
    assert s.read("a.txt") == b"parent\n"
    assert f.stat("b.txt") is None
    assert f.base is s.base
    assert f.parent_id == s.id
    assert set(f.overlay()) == {"a.txt"}


def test_sessions_survive_reopen(repo_dir: Path) -> None:
    m = SessionManager.open(repo_dir)
    s = m.create(label="x", task="t")
    s.write("src/util.py", b"changed\n", True)
    s.rename("README.md", "docs/README.md")
    sid = s.id
    m.close()
    m2 = SessionManager.open(repo_dir)
    s2 = m2.get(sid[:5])
    assert s2.read("src/util.py") == b"changed\n"
    assert s2.read("docs/README.md").startswith(b"# Project")
    assert s2.stat("README.md") is None
    assert [i.id for i in m2.list()] == [sid]
    with pytest.raises(SessionNotFound):
        m2.get("s-nope")
    m2.close()


def test_concurrent_writes_from_threads(manager: SessionManager) -> None:
    s = manager.create()
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                s.write(f"t{n}/f{i}.txt", f"{n}-{i}\n".encode(), False)
                assert s.read(f"t{n}/f{i}.txt") == f"{n}-{i}\n".encode()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert (
        len([e for e in s.list_dir("", True) if e.path.startswith("t") and e.kind == "file"]) == 80
    )


def test_discarded_session_refuses_writes(manager: SessionManager) -> None:
    s = manager.create()
    s.discard()
    with pytest.raises(SessionStateError) as info:
        s.write("x", b"", False)
    assert info.value.wit_kind == "conflict"


def test_non_git_project_works(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    (root / "a.txt").write_text("one\n")
    m = SessionManager.open(root)
    assert not m.is_git
    s = m.create()
    s.write("a.txt", b"two\n", False)
    (root / "a.txt").write_text("user\n")
    # The base bytes were kept when the session first changed the file.
    assert s.diff().files[0].old == b"one\n"
    m.close()
