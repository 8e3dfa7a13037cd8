"""Session benchmarks for ``briotui bench``: fork, diff + hunk split, commit.

Each function builds its own temporary git project, measures, cleans up and returns
:class:`~briotui.devtools.bench.measure.Measure` figures (target None when none is set).
Timings are medians over several repetitions.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from briotui.devtools.bench.measure import Measure
from briotui.kernel.vfs.gitio import run_git
from briotui.kernel.vfs.manager import SessionManager


def make_project(root: Path, n_files: int, *, git: bool = True) -> list[str]:
    """Fill ``root`` with ``n_files`` small text files (100 per directory); returns them."""
    paths: list[str] = []
    for i in range(n_files):
        rel = f"pkg{i // 100:04d}/mod{i % 100:02d}.py"
        target = root / rel
        if i % 100 == 0:
            target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(f"line {j} of file {i}\n" for j in range(40)))
        paths.append(rel)
    if git:
        run_git(["init", "-q"], root)
        run_git(["add", "-A"], root)
        run_git(
            [
                "-c",
                "user.name=bench",
                "-c",
                "user.email=bench@example.invalid",
                "commit",
                "-q",
                "--no-verify",
                "-m",
                "bench",
            ],
            root,
        )
    return paths


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _edit(session: Any, paths: list[str]) -> None:
    for n, rel in enumerate(paths):
        data = session.read(rel).decode()
        lines = data.splitlines(keepends=True)
        lines[5] = f"changed {n}\n"
        lines[30] = f"changed again {n}\n"
        session.write(rel, "".join(lines).encode(), False)


def bench_fork(n_files: int = 50_000, repeat: int = 20) -> list[Measure]:
    """Create a session of an ``n_files`` git project, then time forks of it."""
    tmp = Path(tempfile.mkdtemp(prefix="brio-bench-fork-"))
    try:
        paths = make_project(tmp, n_files)
        manager = SessionManager.open(tmp)
        manager.start_watching()
        t0 = time.perf_counter()
        session = manager.create(label="bench")
        create_ms = (time.perf_counter() - t0) * 1000
        _edit(session, paths[:20])
        fork_ms = _median_ms(session.fork, repeat)
        warm_ms = _warm_create_ms(manager, tmp, paths[100:110], repeat=5)
        manager.close()
        return [
            Measure(
                f"session create, cold: first in a process ({n_files} files)",
                create_ms,
                "ms",
                None,
                detail="lists and stats the whole project once",
            ),
            Measure(
                f"session create, watched project, 10 files edited ({n_files} files)",
                warm_ms,
                "ms",
                20.0,
                detail="derives the live base from the watcher's changes; median of 5",
            ),
            Measure(
                f"session fork ({n_files} files)",
                fork_ms,
                "ms",
                20.0,
                detail=f"Session.fork after 20 edited files, median of {repeat}",
            ),
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _warm_create_ms(manager: Any, root: Path, paths: list[str], *, repeat: int) -> float:
    """Median time of a create after the user edited ``paths`` (the watcher saw them)."""
    times = []
    for n in range(repeat):
        for rel in paths:
            (root / rel).write_text(f"user edit {n}\n")
        end = time.monotonic() + 5
        while time.monotonic() < end:
            if set(paths) <= manager.pending_changes():
                break
            time.sleep(0.005)
        t0 = time.perf_counter()
        manager.create(label="bench")
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _edited_session(root: Path, n_changed: int) -> tuple[SessionManager, Any]:
    """A project in ``root`` and a session of it with ``n_changed`` files edited."""
    paths = make_project(root, max(n_changed * 2, 200))
    manager = SessionManager.open(root)
    session = manager.create(label="bench")
    _edit(session, paths[:n_changed])
    return manager, session


def bench_diff(n_changed: int = 100, repeat: int = 10) -> list[Measure]:
    """Time the diff + hunk split of a session with ``n_changed`` changed files."""
    tmp = Path(tempfile.mkdtemp(prefix="brio-bench-diff-"))
    try:
        manager, session = _edited_session(tmp, n_changed)
        hunks = len(session.diff().hunks())
        ms = _median_ms(session.diff, repeat)
        manager.close()
        return [
            Measure(
                f"diff + hunk split ({n_changed} files, {hunks} hunks)",
                ms,
                "ms",
                50.0,
                detail=f"Session.diff, median of {repeat}",
            )
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_commit(n_changed: int = 100) -> list[Measure]:
    """Time a journaled, fsynced commit of ``n_changed`` files (no git commit)."""
    tmp = Path(tempfile.mkdtemp(prefix="brio-bench-commit-"))
    try:
        manager, session = _edited_session(tmp, n_changed)
        session.accept()
        t0 = time.perf_counter()
        session.commit()
        ms = (time.perf_counter() - t0) * 1000
        manager.close()
        return [
            Measure(
                f"commit ({n_changed} files, journaled, fsync)",
                ms,
                "ms",
                None,
                detail="one Session.commit of the accepted changes",
            )
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_all(*, fork_files: int = 50_000) -> list[Measure]:
    """Every session benchmark."""
    os.environ.pop("BRIOTUI_FAILPOINT", None)
    return [*bench_fork(fork_files), *bench_diff(), *bench_commit()]
