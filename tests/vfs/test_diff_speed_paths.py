"""The fast paths of diff and commit keep their meaning: xdiff's hunks are git's, a
session version is diffed once, and a commit of many files batches its fsyncs."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest

from briotui.kernel.vfs import SessionManager, safefs
from briotui.kernel.vfs import session as session_module
from briotui.kernel.vfs.diff import FileChange, apply_accepted, file_change
from briotui.kernel.vfs.session import Session


def _source(n: int) -> str:
    out = []
    for i in range(n):
        if i % 7 == 0:
            out.append("\n")
        elif i % 7 == 1:
            out.append(f"def f{i}(x):\n")
        elif i % 5 == 0:
            out.append("    return None\n")
        else:
            out.append(f"    x = x + {i}\n")
    return "".join(out)


def _git_hunks(root: Path, rel: str) -> str:
    """``git diff`` of ``rel`` (working tree against the index) from its first hunk,
    the function names after ``@@`` left out."""
    out = subprocess.run(
        ["git", "-c", "core.pager=cat", "diff", "--no-color", "-U3", "--", rel],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode()
    body = out[out.index("\n@@") + 1 :]
    return "".join(
        line[: line.index(" @@", 3) + 3] + "\n" if line.startswith("@@ ") else line
        for line in body.splitlines(keepends=True)
    )


def _our_hunks(change: FileChange) -> str:
    return "".join(
        h.text().replace(h.header(), h.header().split(" #h-")[0], 1) for h in change.hunks
    )


@pytest.mark.parametrize(
    "edit",
    ["scattered", "crlf", "no-newline-at-end", "insert-repeated-block"],
)
def test_hunks_are_git_diffs_hunks(manager: SessionManager, repo_dir: Path, edit: str) -> None:
    text = _source(3000)
    if edit == "crlf":
        text = text.replace("\n", "\r\n", 500)
    (repo_dir / "big.py").write_text(text, newline="")
    subprocess.run(["git", "add", "big.py"], cwd=repo_dir, check=True)
    lines = text.splitlines(keepends=True)
    if edit in ("scattered", "crlf"):
        for at in (3, 250, 254, 1200, 2990):
            lines[at] = f"    changed {at}\n"
        del lines[1700:1703]
        lines.insert(2400, "    inserted\n")
    elif edit == "no-newline-at-end":
        lines[-1] = lines[-1].rstrip("\n")
        lines[10] = "    x = 0\n"
    else:
        lines[1500:1500] = ["def f1(x):\n", "    return None\n", "\n"]
    new = "".join(lines).encode()
    s = manager.create()
    s.write("big.py", new, False)
    change = s.diff().file("big.py")
    assert change is not None
    (repo_dir / "big.py").write_bytes(new)
    assert _our_hunks(change) == _git_hunks(repo_dir, "big.py")


def test_a_session_version_is_diffed_once(
    manager: SessionManager, repo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def counting(**kwargs: object) -> FileChange | None:
        calls.append(str(kwargs["path"]))
        return file_change(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(session_module, "file_change", counting)
    s = manager.create()
    s.write("src/app.py", b"changed\n", False)
    s.write("README.md", b"# Changed\n", False)
    first = s.diff()
    assert sorted(calls) == ["README.md", "src/app.py"]
    # Review, accept and commit of the same version reuse that one diff.
    assert s.diff() is first
    s.accept()
    s.commit()
    assert sorted(calls) == ["README.md", "src/app.py"]
    assert (repo_dir / "src/app.py").read_bytes() == b"changed\n"


def test_a_write_makes_a_new_version(
    manager: SessionManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def counting(**kwargs: object) -> FileChange | None:
        calls.append(str(kwargs["path"]))
        return file_change(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(session_module, "file_change", counting)
    s = manager.create()
    s.write("src/app.py", b"one\n", False)
    before = s.diff()
    s.write("src/app.py", b"two\n", False)
    after = s.diff()
    assert after is not before
    assert "+two" in after.text()
    assert "+one" not in after.text()
    s.delete("README.md")
    assert s.diff().file("README.md") is not None
    s.rename("src/util.py", "src/helpers.py")
    assert s.diff().file("src/helpers.py") is not None
    assert len(calls) > 2


def _many_files(manager: SessionManager, n: int) -> Session:
    s = manager.create()
    for i in range(n):
        s.write(f"many/d{i % 3}/f{i}.txt", f"file {i}\n".encode(), False)
    s.write("src/app.py", b"changed\n", False)
    return s


def _commit(s: Session, repo_dir: Path) -> None:
    s.accept()
    s.commit()
    assert (repo_dir / "many/d2/f29.txt").read_bytes() == b"file 29\n"
    assert (repo_dir / "src/app.py").read_bytes() == b"changed\n"


@pytest.mark.skipif(not safefs.batch_sync(), reason="no syncfs with error reporting here")
def test_a_commit_of_many_files_flushes_a_few_times_not_per_file(
    manager: SessionManager, repo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs: list[int] = []
    syncfs_calls: list[int] = []
    real_fsync = os.fsync
    real_syncfs = safefs._syncfs()
    assert real_syncfs is not None

    def counting_fsync(fd: int) -> None:
        fsyncs.append(fd)
        real_fsync(fd)

    def counting_syncfs(fd: int) -> int:
        syncfs_calls.append(fd)
        return real_syncfs(fd)

    s = _many_files(manager, 30)
    monkeypatch.setattr(os, "fsync", counting_fsync)
    monkeypatch.setattr(safefs, "_syncfs", lambda: counting_syncfs)
    _commit(s, repo_dir)
    # temps flushed; directories flushed (the new bytes were stored when written, the
    # old bytes are HEAD's, kept in git: no blob to flush)
    assert fsyncs == []
    assert len(syncfs_calls) == 2


@pytest.mark.skipif(not safefs.batch_sync(), reason="no syncfs with error reporting here")
def test_a_base_with_many_dirty_files_keeps_them_with_two_flushes(
    repo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creating a session keeps the bytes of every dirty or untracked file (git cannot
    give them back): stored in one batch, made durable with two flushes in all."""
    for i in range(30):
        (repo_dir / "untracked" / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (repo_dir / "untracked" / f"d{i % 3}" / f"f{i}.txt").write_text(f"mine {i}\n")
    (repo_dir / "src/util.py").write_text("dirty\n")
    fsyncs: list[int] = []
    syncfs_calls: list[int] = []
    real_fsync = os.fsync
    real_syncfs = safefs._syncfs()
    assert real_syncfs is not None

    def counting_fsync(fd: int) -> None:
        fsyncs.append(fd)
        real_fsync(fd)

    def counting_syncfs(fd: int) -> int:
        syncfs_calls.append(fd)
        return real_syncfs(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    monkeypatch.setattr(safefs, "_syncfs", lambda: counting_syncfs)
    m = SessionManager.open(repo_dir)
    try:
        s = m.create()
        assert fsyncs == []
        assert len(syncfs_calls) == 2
        # the kept bytes are the base's, whatever the working tree holds now
        (repo_dir / "untracked/d1/f4.txt").write_text("changed after\n")
        (repo_dir / "src/util.py").write_text("changed after\n")
        assert s.base.read("untracked/d1/f4.txt") == b"mine 4\n"
        assert s.base.read("src/util.py") == b"dirty\n"
    finally:
        m.close()


def test_a_commit_without_syncfs_fsyncs_each_file(
    manager: SessionManager, repo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        fsyncs.append(fd)
        real_fsync(fd)

    s = _many_files(manager, 30)
    monkeypatch.setattr(safefs, "_syncfs", lambda: None)
    monkeypatch.setattr(os, "fsync", counting_fsync)
    _commit(s, repo_dir)
    # 31 temp files, 31 new blobs (file and directory each), and the 4 directories
    assert len(fsyncs) >= 31 + 4


def test_hunks_rebuild_the_new_file_on_long_repetitive_files() -> None:
    """The cut-off head and tail never lose or shift a change: all hunks applied give
    the new bytes, none gives the old, each alone applies (300 random edits of files
    long enough to be cut, repetitive lines, CRLF, no final newline)."""
    rng = random.Random(7)
    pool = ["a\n", "b\n", "}\n", "\n", "    x\n", "c\r\n"]
    for _ in range(300):
        old = [rng.choice(pool) for _ in range(rng.randint(0, 600))]
        new = list(old)
        for _ in range(rng.randint(1, 6)):
            at = rng.randint(0, len(new))
            roll = rng.random()
            if roll < 0.4:
                new[at:at] = [rng.choice(pool) for _ in range(rng.randint(1, 4))]
            elif roll < 0.7:
                del new[at : at + rng.randint(1, 4)]
            else:
                new[at : at + 1] = [rng.choice(pool)]
        ob, nb = "".join(old).encode(), "".join(new).encode()
        if rng.random() < 0.2:
            nb = nb.rstrip(b"\n")
        change = file_change(path="f", old_path="f", old=ob, new=nb, old_exec=False, new_exec=False)
        if change is None:
            assert ob == nb
            continue
        assert apply_accepted(change, [h.id for h in change.hunks]).writes[0][1] == nb
        assert apply_accepted(change, []).writes == ()
        for h in change.hunks:
            assert apply_accepted(change, [h.id]).writes
