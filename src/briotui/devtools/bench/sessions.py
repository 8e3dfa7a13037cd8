"""Session benchmarks for ``briotui bench``: create, fork, diff + hunk split, commit.

Each function builds its own temporary git project, measures, cleans up and returns
:class:`~briotui.devtools.bench.measure.Measure` figures (target None when none is set).
Timings are medians over several repetitions. Where a user would otherwise use git,
the figure carries git's time on the same files, measured in the same run
(``Measure.peer``): ``git diff`` for the diff, ``git apply`` followed by ``sync`` for
the commit. Session create in a fresh process is measured in child interpreters, cold
(no base recorded yet) and with the base index a previous process persisted.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import sys
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
        _git_commit_all(root)
    return paths


_WORDS = [
    "self",
    "value",
    "result",
    "items",
    "config",
    "path",
    "name",
    "data",
    "index",
    "count",
    "return",
    "None",
    "if",
    "for",
    "in",
    "not",
    "and",
    "or",
    "else",
    "await",
    "async",
    "yield",
    "raise",
    "True",
    "False",
    "len",
    "range",
    "dict",
    "list",
    "str",
    "int",
]


def _source_file(rng: random.Random, n_lines: int) -> list[str]:
    """``n_lines`` of Python-looking text: blank lines, repeated returns, indentation."""
    lines: list[str] = []
    for j in range(n_lines):
        if j % 9 == 0:
            lines.append("\n")
        elif j % 9 == 1:
            lines.append(f"def function_{j}(self, {rng.choice(_WORDS)}):\n")
        elif j % 13 == 5:
            lines.append("        return None\n")
        else:
            words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 8)))
            lines.append(f"{'    ' * rng.randint(1, 3)}{words} = {rng.randint(0, 999)}\n")
    return lines


def make_source_project(root: Path, n_files: int = 100, max_lines: int = 5000) -> list[str]:
    """Fill ``root`` with ``n_files`` source-like files (every tenth ``max_lines`` long,
    the others 100 to 2000 lines), committed to git; returns their paths."""
    rng = random.Random(13)
    paths: list[str] = []
    for i in range(n_files):
        rel = f"src/pkg{i // 20}/module_{i}.py"
        n_lines = max_lines if i % 10 == 0 else rng.randint(100, min(2000, max_lines))
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(_source_file(rng, n_lines)))
        paths.append(rel)
    _git_commit_all(root)
    return paths


def scattered_edit(data: bytes, seed: int) -> bytes:
    """``data`` with 1 to 8 edits at random places: changed, inserted, deleted lines."""
    rng = random.Random(seed)
    lines = data.decode().splitlines(keepends=True)
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(max(1, len(lines) - 4))
        roll = rng.random()
        if roll < 0.4:
            lines[at] = f"    changed_{seed}_{at} = True\n"
        elif roll < 0.7:
            lines[at:at] = [f"    inserted_{seed}_{at}()\n", "\n"]
        else:
            del lines[at : at + 3]
    return "".join(lines).encode()


def _git_commit_all(root: Path) -> None:
    if not (root / ".git").exists():
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


def _git_ms(args: list[str], root: Path, repeat: int, stdin: bytes | None = None) -> float:
    """Median wall time of ``git ARGS`` in ``root`` (output read, as a user sees it)."""

    def once() -> None:
        subprocess.run(["git", *args], cwd=root, input=stdin, capture_output=True, check=True)

    return _median_ms(once, repeat)


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


def _edited_session(root: Path, n_changed: int) -> tuple[SessionManager, Any, list[str]]:
    """A source project in ``root`` and a session of it with ``n_changed`` files edited
    at scattered places; returns the manager, the session and the edited paths."""
    paths = make_source_project(root, n_changed)
    manager = SessionManager.open(root)
    session = manager.create(label="bench")
    for n, rel in enumerate(paths):
        session.write(rel, scattered_edit(session.read(rel), n), False)
    return manager, session, paths


def _to_worktree(manager: SessionManager, session: Any, paths: list[str]) -> None:
    """Write the session's version of ``paths`` into the working tree (for git's turn)."""
    for rel in paths:
        data, _executable = session.version(rel)
        assert data is not None
        (manager.root / rel).write_bytes(data)


def bench_diff(n_changed: int = 100, repeat: int = 10) -> list[Measure]:
    """Time the diff + hunk split of ``n_changed`` edited source files against
    ``git diff`` of the same edits."""
    tmp = Path(tempfile.mkdtemp(prefix="brio-bench-diff-"))
    try:
        manager, session, paths = _edited_session(tmp, n_changed)
        d = session.diff(reuse=False)
        hunks = len(d.hunks())
        lines = max(len(session.base.read(p).splitlines()) for p in paths)
        ms = _median_ms(lambda: session.diff(reuse=False), repeat)
        _to_worktree(manager, session, paths)
        manager.close()
        git_ms = _git_ms(["diff"], tmp, repeat)
        return [
            Measure(
                f"diff + hunk split ({n_changed} files up to {lines} lines, {hunks} hunks)",
                ms,
                "ms",
                50.0,
                detail=f"Session.diff computed anew, median of {repeat}",
                peer="git diff",
                peer_value=git_ms,
            )
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_commit(n_changed: int = 100, repeat: int = 5) -> list[Measure]:
    """Time accept + a journaled, fsynced commit of ``n_changed`` edited files (no git
    commit) against ``git apply`` of the same patch followed by ``sync``, each started
    after a ``sync`` (nothing else dirty for either side's flushes to write back)."""
    times: list[float] = []
    git_times: list[float] = []
    for _ in range(repeat):
        tmp = Path(tempfile.mkdtemp(prefix="brio-bench-commit-"))
        try:
            manager, session, _paths = _edited_session(tmp, n_changed)
            patch = session.diff().text().encode()
            # Both sides start with nothing dirty on disk: else the commit's first flush
            # would also write back the project this loop just made (git's side syncs
            # after its checkout too).
            subprocess.run(["sync"], check=True)
            t0 = time.perf_counter()
            session.accept()
            session.commit()
            times.append((time.perf_counter() - t0) * 1000)
            manager.close()
            run_git(["checkout", "-q", "--", "."], tmp)
            subprocess.run(["sync"], check=True)
            t0 = time.perf_counter()
            subprocess.run(
                ["git", "apply", "--whitespace=nowarn", "-"],
                cwd=tmp,
                input=patch,
                capture_output=True,
                check=True,
            )
            subprocess.run(["sync"], check=True)
            git_times.append((time.perf_counter() - t0) * 1000)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return [
        Measure(
            f"accept + commit ({n_changed} files, journaled, fsync)",
            statistics.median(times),
            "ms",
            None,
            detail=f"Session.accept then Session.commit, median of {repeat}",
            peer="git apply + sync",
            peer_value=statistics.median(git_times),
        )
    ]


_CREATE = """
import sys, time
t0 = time.perf_counter()
from briotui.kernel.vfs.manager import SessionManager
manager = SessionManager.open(sys.argv[1])
t1 = time.perf_counter()
manager.create(label="bench")
print(f"create-ms {(time.perf_counter() - t1) * 1000:.3f}")
"""


def _create_in_child(root: Path) -> float:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", _CREATE, str(root)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=300,
    )
    return float(proc.stdout.split("create-ms")[1].split()[0])


def bench_create(n_files: int = 50_000, repeat: int = 3) -> list[Measure]:
    """Session create in a fresh process on an ``n_files`` project: cold (no base
    recorded) and with the base index a previous process persisted (10 files edited
    in between), against ``git status`` on the same tree."""
    tmp = Path(tempfile.mkdtemp(prefix="brio-bench-create-"))
    try:
        paths = make_project(tmp, n_files)
        cold: list[float] = []
        warm: list[float] = []
        for n in range(repeat):
            shutil.rmtree(tmp / ".brio", ignore_errors=True)
            cold.append(_create_in_child(tmp))
            for rel in paths[n * 10 : n * 10 + 10]:
                (tmp / rel).write_text(f"user edit {n} of {rel}\n")
            warm.append(_create_in_child(tmp))
        status_ms = _git_ms(["status", "--porcelain", "--untracked-files=all"], tmp, repeat)
        return [
            Measure(
                f"session create in a fresh process, cold ({n_files} files)",
                statistics.median(cold),
                "ms",
                None,
                detail=f"no base recorded: lists and stats the whole project; median of {repeat}",
                peer="git status",
                peer_value=status_ms,
            ),
            Measure(
                f"session create in a fresh process, persisted index ({n_files} files)",
                statistics.median(warm),
                "ms",
                None,
                detail="reuses the base the previous process recorded, 10 files edited "
                f"since; median of {repeat}",
                peer="git status",
                peer_value=status_ms,
            ),
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_all(*, fork_files: int = 50_000) -> list[Measure]:
    """Every session benchmark."""
    os.environ.pop("BRIOTUI_FAILPOINT", None)
    return [
        *bench_fork(fork_files),
        *bench_create(fork_files),
        *bench_diff(),
        *bench_commit(),
    ]
