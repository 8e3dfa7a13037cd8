"""The run journal records every host call of a real pipeline run, in order, durably."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from tests.conftest import make_git_project
from tests.runtime.test_shared_runtime import ECHO_LIKE, write_agent
from tests.runtime.test_warm_load import replying
from tests.scripted import FILES, repo, sub_and_whisper
from tests.trust_helpers import trust_project

from briotui.kernel.journal import runs_of
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider

pytestmark = pytest.mark.slow


async def test_a_pipeline_run_is_journaled_call_by_call(
    tmp_path: Path, built_agents: list[str]
) -> None:
    project = repo(tmp_path / "proj", FILES)
    kernel = Kernel(project)
    try:
        task_id = await kernel.submit(
            "Add sub to calc.py and whisper to text.py",
            provider=ScriptedProvider(sub_and_whisper()),
        )
        result = await kernel.wait(task_id)
        assert result.status == "done", result
    finally:
        await kernel.close()
    kernel = Kernel(project)
    try:
        store = kernel.sessions().store
        runs = runs_of(store, task_id)
        agents = sorted(r.agent for r in runs)
        assert agents == ["coder", "coder", "council", "foreman", "reviewer", "smart"]
        for run in runs:
            assert run.status == "done"
            assert run.task["id"] == run.run_id
            assert run.task["goal"]
            assert run.runtime.startswith(("runtime:", "own:"))
            assert run.code
            assert [c.seq for c in run.calls] == list(range(1, len(run.calls) + 1))
            assert run.outcome["summary"]
        council = next(r for r in runs if r.agent == "council")
        calls = [c.call for c in council.calls]
        # loading the agent's code is not one of its calls, whether it loaded before the
        # run (a warm pool's instance) or in it (a cold one)
        assert not any(c.call.startswith("agent-code.") for r in runs for c in r.calls)
        assert "llm.complete" in calls or "llm.complete-with-tools" in calls
        # a model reply is kept whole: its result decodes to the text the model gave
        reply = next(c for c in council.calls if c.call.startswith("llm."))
        assert reply.result is not None
        assert json.loads(reply.result)["$ok"]["text"]
        coder_writes = [c for r in runs if r.agent == "coder" for c in r.calls]
        assert any(c.call == "workspace-write.write" for c in coder_writes)
        # a run's code is the code its instance loaded, kept once in the blob store by
        # content hash: every run of the same code names the same blob
        coder_codes = {r.code for r in runs if r.agent == "coder"}
        assert len(coder_codes) == 1
        blobs = kernel.sessions().blobs
        for run in runs:
            if run.runtime.startswith("runtime:"):
                code = json.loads(blobs.get(run.code))
                assert code["digest"]
                assert any(m["path"].endswith("app.py") and m["source"] for m in code["modules"])
    finally:
        await kernel.close()


PARROT_V2 = ECHO_LIKE.replace('PREFIX = ""', 'PREFIX = "v2: "')


async def test_a_run_records_the_code_it_loaded_whatever_the_pool_held(
    tmp_path: Path, built_agents: list[str]
) -> None:
    """A warm run (code loaded before the run), a cold one (loaded in it) and one whose
    code changed after the pool loaded it (loaded again in it) each record the code its
    instance ran, and none records the load as a call."""
    project = make_git_project(tmp_path / "proj")
    directory = write_agent(project, "parrot", {"app.py": ECHO_LIKE})
    kernel = Kernel(project)
    try:
        pool = await kernel.pool("parrot", size=1)
        assert pool.ready == 1
        assert pool._ready[0].ctx.code_digest
        warm = await kernel.run_agent("parrot", "x", bindings=replying("hello"), task_id="t-warm")
        assert warm.summary == "hello"
        await pool.close()  # no instance waits: the next run makes its own
        cold = await kernel.run_agent("parrot", "x", bindings=replying("hello"), task_id="t-cold")
        assert cold.summary == "hello"
        kernel._pools.pop("parrot", None)
        pool = await kernel.pool("parrot", size=1)
        assert pool.ready == 1
        assert pool._ready[0].ctx.code_digest
        (directory / "app.py").write_text(PARROT_V2)
        trust_project(project)
        kernel.reload_config()
        edited = await kernel.run_agent(
            "parrot", "x", bindings=replying("hello"), task_id="t-edited"
        )
        assert edited.summary == "v2: hello"
        await asyncio.to_thread(kernel.journals().writer.flush)
        store, blobs = kernel.sessions().store, kernel.sessions().blobs
        runs = {t: runs_of(store, t)[0] for t in ("t-warm", "t-cold", "t-edited")}
        for run in runs.values():
            assert not any(c.call.startswith("agent-code.") for c in run.calls)
        assert [c.call for c in runs["t-warm"].calls] == [c.call for c in runs["t-cold"].calls]
        assert runs["t-warm"].code == runs["t-cold"].code != ""
        assert runs["t-edited"].code not in ("", runs["t-warm"].code)
        sources = {
            t: next(m["source"] for m in json.loads(blobs.get(r.code))["modules"])
            for t, r in runs.items()
        }
        assert 'PREFIX = ""' in sources["t-warm"]
        assert 'PREFIX = ""' in sources["t-cold"]
        assert 'PREFIX = "v2: "' in sources["t-edited"]
    finally:
        await kernel.close()
