"""Crash safety: SIGKILL a committing process at every failpoint, recover, check files.

Each kill point runs a real commit in a child process with ``BRIOTUI_FAILPOINT`` set;
the child dies by SIGKILL at that point. The parent then reopens the project (which
recovers) and checks that every file is entirely old or entirely new, that the set is
all-old or all-new, that the session is intact, and ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from briotui.kernel.vfs import SessionManager

from .conftest import BASE_FILES, make_repo

NEW = {
    "src/util.py": b"def f():\n    return 2\n",
    "src/app.py": b"".join(f"line {i}\n".encode() for i in range(1, 41)).replace(
        b"line 7\n", b"seven\n"
    ),
    "added/new.txt": b"brand new\n" * 1000,
    "bin/run.sh": b"#!/bin/sh\necho changed\n",
}
DELETED = ("README.md", "notes.txt")

# (failpoint, how many times it is hit during one commit)
POINTS = {
    "blob-written": 3,
    "before-journal": 1,
    "after-journal": 1,
    "tmp-partial": 4,
    "tmp-synced": 4,
    "renamed": 4,
    "file-deleted": 2,
    "before-done": 1,
    "after-done": 1,
}

CHILD = """
import sys
from briotui.kernel.vfs import SessionManager
m = SessionManager.open(sys.argv[1])
m.get(sys.argv[2]).commit()
"""


def _old(rel: str) -> bytes | None:
    data = BASE_FILES.get(rel)
    return data.encode() if isinstance(data, str) else data


def _snapshot(root: Path) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for rel in [*NEW, *DELETED]:
        p = root / rel
        out[rel] = p.read_bytes() if p.exists() else None
    return out


def _prepare(template: Path, dest: Path) -> str:
    shutil.copytree(template, dest, symlinks=True)
    m = SessionManager.open(dest)
    s = m.create(task="kill test")
    for rel, data in NEW.items():
        s.write(rel, data, rel == "bin/run.sh")
    for rel in DELETED:
        s.delete(rel)
    s.accept()
    m.close()
    return s.id


def _run_child(root: Path, sid: str, failpoint: str | None) -> int:
    env = dict(os.environ)
    env.pop("BRIOTUI_FAILPOINT", None)
    if failpoint:
        env["BRIOTUI_FAILPOINT"] = failpoint
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), sid],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return proc.returncode


def _check(root: Path, sid: str) -> str:
    m = SessionManager.open(root)  # recovers
    try:
        assert m.store.integrity_check() == "ok"
        files = _snapshot(root)
        states = set()
        for rel, now in files.items():
            new = NEW.get(rel)
            old = _old(rel)
            assert now in (old, new), f"{rel} is neither old nor new"
            states.add("new" if now == new else "old")
        assert len(states) == 1, f"mixed old and new files: {files}"
        assert not list(root.rglob("*.brio-*.tmp")), "stray temp files"
        s = m.get(sid)
        state = states.pop()
        if state == "new":
            assert s.state == "committed"
            assert os.stat(root / "bin/run.sh").st_mode & 0o100
        else:
            assert s.state == "open"
            assert {f.path for f in s.diff().files} == {*NEW, *DELETED}
        return state
    finally:
        m.close()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kill") / "template"
    make_repo(root, BASE_FILES, executable=("bin/run.sh",))
    return root


def test_sigkill_at_every_failpoint(template: Path, tmp_path: Path) -> None:
    killed = 0
    outcomes: dict[str, str] = {}
    for name, hits in POINTS.items():
        for count in range(1, hits + 1):
            root = tmp_path / f"{name}-{count}"
            sid = _prepare(template, root)
            code = _run_child(root, sid, f"{name}:{count}")
            assert code == -signal.SIGKILL, f"{name}:{count} exited {code}, not killed"
            killed += 1
            outcomes[f"{name}:{count}"] = _check(root, sid)
    # Killed before the journal: all old. After it: recovery rolls forward, all new.
    before = {k for k in outcomes if k.startswith(("blob-written", "before-journal"))}
    assert all(outcomes[k] == "old" for k in before)
    assert all(v == "new" for k, v in outcomes.items() if k not in before)
    print(f"\n{killed} kill points tried, every file entirely old or new")


def test_sigkill_during_recovery(template: Path, tmp_path: Path) -> None:
    """A crash while recovering is itself recovered from."""
    kills = 0
    for point in ("renamed:1", "renamed:3", "tmp-partial:2", "file-deleted:1"):
        root = tmp_path / point.replace(":", "-")
        sid = _prepare(template, root)
        assert _run_child(root, sid, "tmp-synced:2") == -signal.SIGKILL
        # The child only opens the project, which recovers, and is killed there.
        env = dict(os.environ, BRIOTUI_FAILPOINT=point)
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys\nfrom briotui.kernel.vfs import SessionManager\n"
                "SessionManager.open(sys.argv[1])",
                str(root),
            ],
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        if proc.returncode == -signal.SIGKILL:
            kills += 1
        assert _check(root, sid) == "new"
    assert kills >= 2
    print(f"\n{kills} kill points tried during recovery")


def test_commit_without_failpoint_completes(template: Path, tmp_path: Path) -> None:
    root = tmp_path / "plain"
    sid = _prepare(template, root)
    assert _run_child(root, sid, None) == 0
    assert _check(root, sid) == "new"
