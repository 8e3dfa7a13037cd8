"""Measuring agent builds for ``briotui bench --builds`` (slow: minutes; never in tests).

Figures, each from an empty cache of its own (so nothing is taken from the user's):

- *first run*: from an empty cache to the first pipeline able to run (the pipeline's
  agents built, the Council's world first), target 60 s;
- *all built-in agents*: the rest built too, target 120 s;
- *hot reload*: from an edited ``app.py`` to the end of the next run using it, in a new
  process (a project agent trusted again and run by ``briotui run --agent``, as an agent
  author does) and in a running kernel (a built-in, as the TUI runs it), target 2 s; no
  build and no compile happen in between.

CPU seconds (this process and its children: componentize-py, the compiles) are given
with each build figure: on a loaded machine the wall time says more about the others.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from briotui.devtools.bench.measure import Measure
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply
from briotui.kernel.paths import CACHE_ENV, CONFIG_ENV, builtin_agents_dir
from briotui.kernel.runtime.build import PIPELINE_ORDER, BuildResult
from briotui.kernel.runtime.cache import BuildCache
from briotui.kernel.runtime.context import RunBindings
from briotui.kernel.settings import trust_project

FIRST_RUN_TARGET_S = 60.0
ALL_AGENTS_TARGET_S = 120.0
HOT_RELOAD_TARGET_MS = 2000.0

HOT_AGENT = "hot-echo"


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _make_project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_SYSTEM": "/dev/null"}
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, env=env, capture_output=True)
    (root / "README.md").write_text("# bench\n")
    return root


async def _timed_build(kernel: Kernel, names: list[str]) -> tuple[float, float, list[BuildResult]]:
    t0, c0 = time.perf_counter(), _cpu_s()
    results = await kernel.build_agents(names)
    failed = [r for r in results if r.status == "failed"]
    if failed and failed[0].error is not None:
        raise failed[0].error
    return time.perf_counter() - t0, _cpu_s() - c0, results


async def bench_builds(cache_root: Path | None = None) -> list[Measure]:
    """Build every built-in agent from an empty cache, then time hot reloads.

    Args:
        cache_root: Where the empty cache goes (default: a temporary directory,
            removed afterwards).
    """
    with tempfile.TemporaryDirectory(prefix="brio-bench-builds-") as tmp:
        root = Path(tmp)
        cache = BuildCache(cache_root or root / "cache", also=())
        project = _make_project(root / "project")
        kernel = Kernel(project, cache=cache)
        try:
            names = sorted(kernel.discovery().agents)
            first = [n for n in PIPELINE_ORDER if n in names]
            rest = [n for n in names if n not in first]
            first_s, first_cpu, first_results = await _timed_build(kernel, first)
            rest_s, rest_cpu, rest_results = await _timed_build(kernel, rest)
            artifacts = len({r.key for r in first_results + rest_results})
            in_kernel_ms = await _hot_reload_in_kernel(kernel, root)
        finally:
            await kernel.close()
        new_process_ms, new_process_cpu_ms = await asyncio.to_thread(
            _hot_reload_new_process, root, cache.root
        )
    return [
        Measure(
            "first run: empty cache to the first pipeline able to run",
            first_s,
            "s",
            FIRST_RUN_TARGET_S,
            detail=f"builds {', '.join(first)} ({len({r.key for r in first_results})} "
            f"components: the Council's world first); {first_cpu:.0f} s CPU",
        ),
        Measure(
            "cold build of all built-in agents",
            first_s + rest_s,
            "s",
            ALL_AGENTS_TARGET_S,
            detail=f"{len(names)} agents in {artifacts} components (one Python runtime per "
            f"world); {first_cpu + rest_cpu:.0f} s CPU",
        ),
        Measure(
            "hot reload: edit app.py to the next run's end (new process)",
            new_process_ms,
            "ms",
            HOT_RELOAD_TARGET_MS,
            detail="`briotui trust --yes` and `briotui run --agent` with the scripted "
            f"provider, the change seen; no build, no compile; {new_process_cpu_ms:.0f} ms CPU "
            "(the rest is waiting for a busy machine)",
        ),
        Measure(
            "hot reload: edit app.py to the next run's end (running kernel)",
            in_kernel_ms,
            "ms",
            HOT_RELOAD_TARGET_MS,
            detail="as in the TUI: the same kernel, the next run reads the new code",
        ),
    ]


def _hot_builtin(root: Path) -> Path:
    """A copy of the built-in echo agent to edit (the shipped one stays as it is)."""
    directory = root / "builtin" / "echo"
    if not directory.is_dir():
        shutil.copytree(builtin_agents_dir() / "echo", directory)
    return directory


async def _hot_reload_in_kernel(kernel: Kernel, root: Path) -> float:
    directory = _hot_builtin(root)
    kernel.builtin_agents = directory.parent
    kernel.discovery(refresh=True)
    app = directory / "app.py"
    source = app.read_text(encoding="utf-8")
    samples = []
    for round_ in range(5):
        app.write_text(
            source.replace("summary=reply.text", f'summary="{round_}: " + reply.text'),
            encoding="utf-8",
        )
        t0 = time.perf_counter()
        outcome = await kernel.run_agent(
            "echo",
            "hello",
            bindings=RunBindings(provider=ScriptedProvider([ScriptedReply("hi")])),
        )
        samples.append((time.perf_counter() - t0) * 1000)
        if outcome.summary != f"{round_}: hi":
            raise RuntimeError(f"hot reload did not take: {outcome.summary!r}")
    return sorted(samples)[len(samples) // 2]


def _hot_reload_new_process(root: Path, cache: Path) -> tuple[float, float]:
    """A project agent (a copy of echo) edited, trusted again and run by a new process."""
    project = root / "project"
    directory = project / ".brio" / "agents" / HOT_AGENT
    if not directory.is_dir():
        shutil.copytree(builtin_agents_dir() / "echo", directory)
    app = directory / "app.py"
    source = app.read_text(encoding="utf-8")
    replies = root / "replies.json"
    replies.write_text(json.dumps(["hi"]), encoding="utf-8")
    config = root / "config"  # trust decisions go here, not into the user's own
    config.mkdir(exist_ok=True)
    env = {**os.environ, CACHE_ENV: str(cache), CONFIG_ENV: str(config)}
    command = [sys.executable, "-m", "briotui", "-C", str(project), "run", "hello"]
    command += ["--agent", HOT_AGENT, "--provider", f"scripted:{replies}", "--json"]
    samples: list[float] = []
    cpu: list[float] = []
    for round_ in range(3):
        app.write_text(
            source.replace("summary=reply.text", f'summary="new {round_}: " + reply.text'),
            encoding="utf-8",
        )
        t0, c0 = time.perf_counter(), _cpu_s()
        trust_project(project, user_dir=config)  # as `briotui trust --yes` does
        proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        samples.append((time.perf_counter() - t0) * 1000)
        cpu.append((_cpu_s() - c0) * 1000)
        if f"new {round_}: hi" not in proc.stdout:
            raise RuntimeError(f"hot reload did not take: {proc.stdout[-400:]}{proc.stderr[-400:]}")
    return sorted(samples)[len(samples) // 2], sorted(cpu)[len(cpu) // 2]
