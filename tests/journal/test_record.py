"""The run journal records every host call of a real pipeline run, in order, durably."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.scripted import FILES, repo, sub_and_whisper

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
        assert calls[0] == "agent-code.modules"  # the runtime reading the agent's code
        assert "llm.complete" in calls or "llm.complete-with-tools" in calls
        # a model reply is kept whole: its result decodes to the text the model gave
        reply = next(c for c in council.calls if c.call.startswith("llm."))
        assert reply.result is not None
        assert json.loads(reply.result)["$ok"]["text"]
        coder_writes = [c for r in runs if r.agent == "coder" for c in r.calls]
        assert any(c.call == "workspace-write.write" for c in coder_writes)
        # the agent's code is kept once, in the blob store by content hash: every run of
        # the same code points at the same blob
        codes = {r.calls[0].blob for r in runs if r.calls[0].call == "agent-code.modules"}
        coder_codes = {r.calls[0].blob for r in runs if r.agent == "coder"}
        assert len(coder_codes) == 1
        assert all(r.calls[0].result is None for r in runs)
        for blob in codes:
            assert blob
            assert kernel.sessions().blobs.get(blob)
        # a run's code identity is the code it read
        for run in runs:
            assert run.code == run.calls[0].blob
    finally:
        await kernel.close()
