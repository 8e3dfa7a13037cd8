"""The fix loop: when the tests fail in the session, the failing output goes back to the
Coder, which tries again ("Fix round N" in the task tree); the session is verified only
when the last run passed. Real pipeline, real agents, real pytest, scripted replies."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.scripted import FILES, fix_round, repo

from briotui.kernel.kernel import Kernel

pytestmark = pytest.mark.slow


async def test_failing_tests_go_back_to_the_coder_and_round_2_is_verified(
    tmp_path: Path, built_agents: list[str]
) -> None:
    project = repo(tmp_path / "proj", FILES)
    kernel = Kernel(project)
    try:
        task_id = await kernel.submit("Add sub(a, b) to calc.py", provider=fix_round())
        result = await kernel.wait(task_id)
        assert result.status == "done", result
        assert result.fix_rounds == 1
        assert result.verified is True
        session = kernel.sessions().get(result.session_id)
        calc = session.read("calc.py").decode()
        assert "def sub(a, b)" in calc
        assert "    return a + b" in calc
        # the fix round is its own task, with the tests' run under it
        tree = kernel.state.get(["tasks"])
        [fix] = [t for t in tree.values() if t["title"] == "Fix round 1"]
        assert fix["agent"] == "coder"
        assert fix["status"] == "done"
        assert [t["agent"] for t in tree.values() if t.get("parent") == fix["id"]] == ["smart"]
        # the Coder saw the failing test by name and its output
        fix_prompts = [
            m["content"]
            for m in kernel.transcript(task_id)
            if m["role"] == "user" and m["task_id"] == fix["id"]
        ]
        assert any("tests/test_calc.py::test_add" in p for p in fix_prompts)
        # the last run passed, and the state says so
        tests = kernel.state.get(["sessions", session.id, "tests"])
        assert tests["passed"] is True
        assert kernel.state.get(["sessions", session.id, "verified"]) is True
    finally:
        await kernel.close()


async def test_the_loop_stops_after_fix_rounds_and_the_session_stays_unverified(
    tmp_path: Path, built_agents: list[str]
) -> None:
    project = repo(tmp_path / "proj", FILES)
    config = project / ".brio" / "config.toml"
    config.write_text(config.read_text() + "fix_rounds = 0\n")
    kernel = Kernel(project)
    try:
        task_id = await kernel.submit("Add sub(a, b) to calc.py", provider=fix_round())
        result = await kernel.wait(task_id)
        assert result.fix_rounds == 0
        assert result.verified is False
        assert not [t for t in kernel.state.get(["tasks"]).values() if t["title"].startswith("Fix")]
    finally:
        await kernel.close()
