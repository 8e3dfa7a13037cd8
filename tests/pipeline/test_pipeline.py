"""The whole pipeline on a real repository: plan, parallel Coders in branches, merge,
review, tests in the session — with scripted model replies and real components."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.scripted import FILES, conflicting_coders, repo, sub_and_whisper

from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider
from briotui.kernel.state import StatePatch

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return repo(tmp_path / "proj", FILES)


async def test_two_subtasks_planned_coded_in_parallel_merged_reviewed_and_verified(
    project: Path, built_agents: list[str]
) -> None:
    provider = ScriptedProvider(sub_and_whisper(acceptance=["sub(5, 3) == 2"], delay_ms=300))
    kernel = Kernel(project)
    running_coders: set[str] = set()
    most = 0

    def watch(patch: StatePatch) -> None:
        nonlocal most
        for op in patch.ops:
            parts = op["path"].split("/")
            if len(parts) == 3 and parts[1] == "tasks" and op["op"] == "add":
                status, tid = op["value"]["status"], parts[2]
            elif len(parts) == 4 and parts[1] == "tasks" and parts[3] == "status":
                status, tid = op["value"], parts[2]
            else:
                continue
            if kernel.state.get(["tasks", tid, "agent"]) == "coder":
                (running_coders.add if status == "running" else running_coders.discard)(tid)
                most = max(most, len(running_coders))

    kernel.state.subscribe(watch)
    try:
        task_id = await kernel.submit(
            "Add sub to calc.py and whisper to text.py", provider=provider
        )
        result = await kernel.wait(task_id)
        assert result.status == "done", result
        assert len(result.plan) == 2
        assert not result.merge["conflicts"]
        assert most == 2  # both coders ran at the same time, each in its own branch
        session = kernel.sessions().get(result.session_id)
        diff = session.diff()
        assert sorted(f.path for f in diff.files) == ["calc.py", "text.py"]
        assert b"def sub(a, b)" in session.read("calc.py")
        # the tests ran in the session and passed: verified by what the kernel saw
        assert result.verified is True
        assert kernel.is_verified(session.id)
        # the review: the finding on a hunk that does not exist was dropped
        review = kernel.review_of(session.id)
        assert review is not None
        assert review["verdict"] == "approve"
        assert [f["message"] for f in review["findings"]] == ["Consider a test for sub."]
        # the task tree: council, foreman (with two coder subtasks), reviewer, smart
        tree = kernel.state.get(["tasks"])
        agents = sorted(t["agent"] for t in tree.values())
        assert agents == ["coder", "coder", "council", "foreman", "pipeline", "reviewer", "smart"]
        assert all(t["status"] == "done" for t in tree.values())
        coder_sessions = {t["session"] for t in tree.values() if t["agent"] == "coder"}
        assert len(coder_sessions) == 2
        assert session.id not in coder_sessions
        # provenance of every reply, and nothing reached the working tree
        transcript = kernel.transcript(task_id)
        assert {m["provider"] for m in transcript if m["role"] == "assistant"} == {"scripted"}
        assert (project / "calc.py").read_text() == FILES["calc.py"]
    finally:
        await kernel.close()


async def test_conflicting_branches_are_reported_not_overwritten(
    project: Path, built_agents: list[str]
) -> None:
    provider = ScriptedProvider(conflicting_coders("calc.py"))
    kernel = Kernel(project)
    try:
        result = await kernel.wait(await kernel.submit("Change add", provider=provider))
        assert result.status == "done"
        [conflict] = result.merge["conflicts"]
        [file] = conflict["files"]
        assert file["path"] == "calc.py"
        region = file["regions"][0]
        assert "2 * (a + b)" in region["ours"] + region["theirs"]
        assert "3 * (a + b)" in region["ours"] + region["theirs"]
        # exactly one side was merged; the other is kept in its branch for the user
        merged = kernel.sessions().get(result.session_id).read("calc.py")
        assert merged.count(b"* (a + b)") == 1
        assert kernel.state.get(["sessions", result.session_id, "conflicts"])
        assert result.verified is False  # one of the two versions breaks test_add
    finally:
        await kernel.close()
