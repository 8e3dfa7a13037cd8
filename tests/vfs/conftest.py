"""Fixtures for the session tests: real git repositories in tmp dirs, real SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import git
import pytest

from briotui.kernel.vfs import SessionManager


def make_repo(
    root: Path, files: dict[str, bytes | str], *, executable: tuple[str, ...] = ()
) -> git.Repo:
    """A git repo at ``root`` with ``files`` committed, and a local identity."""
    root.mkdir(parents=True, exist_ok=True)
    repo = git.Repo.init(root)
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "Test User")
        cw.set_value("user", "email", "test@example.invalid")
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        if rel in executable:
            p.chmod(0o755)
    repo.git.add("-A")
    repo.git.commit("-q", "-m", "initial", "--no-verify")
    return repo


BASE_FILES: dict[str, bytes | str] = {
    "README.md": "# Project\n\nSome text.\n",
    "src/app.py": "".join(f"line {i}\n" for i in range(1, 41)),
    "src/util.py": "def f():\n    return 1\n",
    "bin/run.sh": "#!/bin/sh\necho hi\n",
    "data/blob.bin": bytes(range(256)) * 4,
    "notes.txt": "no trailing newline",
    ".gitignore": "ignored/\n*.log\n",
}


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    """A committed git project."""
    root = tmp_path / "proj"
    make_repo(root, BASE_FILES, executable=("bin/run.sh",))
    return root


@pytest.fixture
def manager(repo_dir: Path) -> Iterator[SessionManager]:
    """A session manager on ``repo_dir``."""
    m = SessionManager.open(repo_dir)
    yield m
    m.close()
