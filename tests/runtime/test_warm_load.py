"""A warm pool's instances load their agent's code before a run is handed to them.

An agent on its world's shared Python runtime imports its ``app`` and makes its
``Agent`` in the pooled instance (``agent-loader.load``), so a warm run only calls
``run``. What must still hold: an edit made after the pool loaded the code is what the
next run runs (hot reload); code that calls the kernel as it loads, fails to load, or
blocks while loading runs (or fails) exactly as it does in a cold run.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from tests.runtime.test_shared_runtime import ECHO_LIKE, write_agent
from tests.trust_helpers import trust_project

from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply
from briotui.kernel.runtime.context import RunBindings
from briotui.kernel.runtime.instance import AgentTask, RunFailed
from briotui.kernel.runtime.pool import AgentPool

pytestmark = pytest.mark.slow


def replying(text: str) -> RunBindings:
    return RunBindings(provider=ScriptedProvider([ScriptedReply(text)]))


async def test_a_pooled_instance_has_loaded_its_agent_before_the_run(kernel: Kernel) -> None:
    pool = await kernel.pool("echo", size=1)
    loaded = pool.loaded
    assert loaded.code_version is not None  # echo runs on the minimal world's runtime
    ready = pool.take()
    assert ready is not None
    # The code was read (agent-code.modules) and imported before any run.
    assert ready.ctx.code_digest == loaded.code_version()
    outcome = await ready.run(AgentTask("t", "hi"), replying("hello"))
    assert outcome.summary == "hello"
    assert outcome.usage.host_calls == 4  # clock, log, the model, clock: no code read


async def test_an_edit_after_the_pool_loaded_the_code_is_what_runs(
    project: Path, built_agents: list[str]
) -> None:
    directory = write_agent(project, "parrot", {"app.py": ECHO_LIKE})
    kernel = Kernel(project)
    try:
        pool = await kernel.pool("parrot", size=1)
        assert pool.ready == 1
        waiting = pool._ready[0]
        assert waiting.ctx.code_digest  # loaded with the first version
        (directory / "app.py").write_text(ECHO_LIKE.replace('PREFIX = ""', 'PREFIX = "v2: "'))
        trust_project(project)  # what `briotui trust --yes` does after an edit
        kernel.reload_config()
        outcome = await kernel.run_agent("parrot", "x", bindings=replying("hello"))
        assert outcome.summary == "v2: hello"  # not the version the pool had loaded
    finally:
        await kernel.close()


async def test_an_agent_that_calls_the_kernel_as_it_loads_runs_as_a_cold_one(
    project: Path, built_agents: list[str]
) -> None:
    """A host call at import time would be made outside any run: the pooled instance is
    made again without loading, and the call is made in the run."""
    app = ECHO_LIKE + '\nlog.emit(log.Level.INFO, "loaded at import")\n'
    write_agent(project, "chatty", {"app.py": app})
    kernel = Kernel(project)
    try:
        pool = await kernel.pool("chatty", size=1)
        assert pool.ready == 1
        assert pool._ready[0].ctx.code_digest == ""  # not loaded: the run loads it
        outcome = await kernel.run_agent("chatty", "x", bindings=replying("hello"))
        assert outcome.summary == "hello"
        assert "loaded at import" in outcome.log_tail
        assert outcome.usage.host_calls == 3  # its import's log line, its own, the model
    finally:
        await kernel.close()


async def test_code_that_fails_to_load_fails_the_run_as_it_does_cold(
    project: Path, built_agents: list[str]
) -> None:
    write_agent(project, "broken", {"app.py": ECHO_LIKE + "\nraise RuntimeError('no luck')\n"})
    kernel = Kernel(project)
    try:
        await kernel.pool("broken", size=1)
        with pytest.raises(RunFailed) as warm:
            await kernel.run_agent("broken", "x", bindings=replying("hello"))
        pool = await kernel.pool("broken")
        pool.size = 0  # empty: the next run makes its instance (cold)
        while (spare := pool.take()) is not None:
            spare.discard()
        with pytest.raises(RunFailed) as cold:
            await kernel.run_agent("broken", "x", bindings=replying("hello"))
        assert warm.value.error.message == cold.value.error.message
        assert "no luck" in warm.value.error.message
        assert "failed while loading" in warm.value.error.message
    finally:
        await kernel.close()


async def test_a_load_that_blocks_does_not_hold_the_pool(
    project: Path, built_agents: list[str]
) -> None:
    """An import that sleeps (in WASI, where epochs cannot reach) is given up on at the
    agent's deadline; the pool gets an instance that loads in its run, which times out."""
    app = "import time\ntime.sleep(60)\n" + ECHO_LIKE
    write_agent(project, "sleepy", {"app.py": app})
    kernel = Kernel(project)
    try:
        loaded = await kernel.load("sleepy")
        limits = replace(loaded.spec.limits, deadline_ms=300)
        short = replace(loaded, spec=replace(loaded.spec, limits=limits))
        pool = AgentPool(short, size=1, loop=kernel.loop, events=kernel.events.publish)
        await asyncio.wait_for(pool.fill(), timeout=30)  # a guard against a hang only
        instance = pool.take()
        assert instance is not None
        assert instance.ctx.code_digest == ""
        with pytest.raises(RunFailed) as failed:
            await instance.run(AgentTask("t", "x"), replying("hello"))
        assert failed.value.error.kind == "timeout"
        await pool.close()
    finally:
        await kernel.close()


async def test_an_instance_made_again_writes_its_output_only_to_its_log(
    project: Path,
    built_agents: list[str],
    repo_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pooled instance whose code changed is made again on its thread: its guest's
    stdout must go to new pipes, never to ``/dev/fd/N`` of a pipe end it closed, which
    by then may be any file the process opened (seen: the kernel's SQLite database,
    "disk I/O error")."""
    builtin = tmp_path / "builtin-agents"
    shutil.copytree(repo_root / "agents", builtin)
    monkeypatch.setattr("briotui.kernel.agents.builtin_agents_dir", lambda: builtin)
    kernel = Kernel(project)
    bystanders = [tmp_path / f"bystander-{i}" for i in range(32)]
    try:
        pool = await kernel.pool("probe", size=1)
        assert pool._ready[0].ctx.code_digest  # loaded: the run will find it stale
        app = builtin / "probe" / "app.py"
        app.write_text(app.read_text() + "\n# edited\n")
        # Files opened now take the lowest free descriptors: those the instance closed too.
        opened = [path.open("wb") for path in bystanders]
        try:
            outcome = await kernel.run_agent("probe", "print 3")
        finally:
            for file in opened:
                file.close()
        assert "line 2" in outcome.log_tail
        assert [path.name for path in bystanders if path.read_bytes()] == []
    finally:
        await kernel.close()
