"""Shared fixtures: one build cache per test session, built agents, temp projects.

Agent components are built once per test session into a persistent cache
(``$BRIOTUI_TEST_CACHE``, default ``~/.cache/briotui-test``), so a second run of the
suite reuses them; CI starts empty and builds them once. The built-in Python agents run
on the shared Python runtime of their world, so a cold suite builds one runtime per
world, not one component per agent; and what the user's own cache (``~/.cache/briotui``)
already holds is linked from there, not built again (same content-addressed layout).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

TEST_CACHE = Path(os.environ.get("BRIOTUI_TEST_CACHE", Path.home() / ".cache" / "briotui-test"))
os.environ["BRIOTUI_CACHE_DIR"] = str(TEST_CACHE)
# A fresh user config dir per test session: trust decisions (trust.json) written by the
# tests do not pile up across runs or leak between parallel runs.
_CONFIG_DIR = tempfile.mkdtemp(prefix="briotui-test-config-")
atexit.register(shutil.rmtree, _CONFIG_DIR, True)
os.environ.setdefault("BRIOTUI_CONFIG_DIR", _CONFIG_DIR)

REPO = Path(__file__).resolve().parent.parent
CORPORA = REPO / "tests" / "corpora"
"""Adversarial payloads (one a line, MIT, see its README and LICENSE), shipped with the tests."""


def make_git_project(root: Path) -> Path:
    """A small real git repository with one commit."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text("# demo\n")
    (root / "app.py").write_text("def add(a, b):\n    return a + b\n")
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_SYSTEM": "/dev/null"}
    run = lambda *a: subprocess.run(["git", *a], cwd=root, check=True, capture_output=True, env=env)  # noqa: E731
    run("init", "-q", "-b", "main")
    run("-c", "user.name=Test", "-c", "user.email=test@example.com", "add", "-A")
    run("-c", "user.name=Test", "-c", "user.email=test@example.com", "commit", "-qm", "init")
    return root


@pytest.fixture(scope="session")
def built_agents() -> list[str]:
    """Build every built-in agent once per session (cached across sessions): one shared
    Python runtime per world."""
    from briotui.kernel.kernel import Kernel

    async def build() -> list[str]:
        kernel = Kernel(REPO)
        try:
            results = await kernel.build_agents()
        finally:
            await kernel.close()
        failed = [r for r in results if r.status == "failed"]
        assert not failed, [r.error.message for r in failed if r.error]
        return [r.agent for r in results]

    TEST_CACHE.mkdir(parents=True, exist_ok=True)
    # One build at a time on this machine: a second test process (a parallel worker, or
    # another run) waits for the first one's build, then finds every agent cached.
    with open(TEST_CACHE / "build.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return asyncio.run(build())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh git project in a temp dir."""
    return make_git_project(tmp_path / "proj")


@pytest.fixture
async def kernel(project: Path, built_agents: list[str]) -> AsyncIterator[object]:
    """A kernel over a fresh project, with the built-in agents built."""
    from briotui.kernel.kernel import Kernel

    k = Kernel(project)
    try:
        yield k
    finally:
        await k.close()


@pytest.fixture
def repo_root() -> Iterator[Path]:
    """The repository root."""
    return REPO


WORKER_WAIT_S = 90.0
"""How long ``app.workers.wait_for_complete()`` may take in a test before the workers
still running are reported (with where each one waits) and cancelled."""


def _awaiting(coro: Any) -> list[Any]:
    """The frames of a suspended coroutine and of what it awaits, outermost first
    (``Task.get_stack`` stops at the task's own coroutine)."""
    frames = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            frames.append(frame)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return frames


@pytest.fixture(autouse=True)
def bounded_worker_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """``wait_for_complete`` with a bound, so a worker that never ends is a warning that
    says where it waits instead of a suite that hangs until CI's time limit (seen twice
    in full runs, never alone; the warning is there to find out why)."""
    import traceback
    import warnings

    from textual.worker_manager import WorkerManager

    async def wait_for_complete(self: WorkerManager, workers: Any = None) -> None:
        pending = list(workers or self)
        futures = [asyncio.ensure_future(worker.wait()) for worker in pending]
        if not futures:
            return
        done, stuck = await asyncio.wait(futures, timeout=WORKER_WAIT_S)
        if stuck:
            where = []
            for worker in pending:
                if worker.is_finished:
                    continue
                task = getattr(worker, "_task", None)
                frames = _awaiting(task.get_coro()) if task is not None else []
                summary = traceback.StackSummary.extract((f, f.f_lineno) for f in frames)
                stack = "".join(summary.format())
                where.append(f"{worker.name} [{worker.description}] {worker.state.name}\n{stack}")
            warnings.warn(
                f"workers still running after {WORKER_WAIT_S:g} s:\n" + "\n".join(where),
                stacklevel=2,
            )
            for future in stuck:
                future.cancel()
        for future in done:
            with contextlib.suppress(asyncio.CancelledError):
                future.result()

    monkeypatch.setattr(WorkerManager, "wait_for_complete", wait_for_complete)
