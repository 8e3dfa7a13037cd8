"""A failed test run says why: its exit code, duration and output (the tail) are stored,
the session's state carries a summary naming the failing tests, and ``sessions show``
prints it (text and ``--json``). Real pipeline, real agents, real pytest."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from tests.scripted import FILES, REVIEW, edit, plan, repo

from briotui.cli.main import main
from briotui.kernel import contract
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply

pytestmark = pytest.mark.slow


async def test_failed_tests_are_stored_published_and_shown(
    tmp_path: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project = repo(tmp_path / "proj", FILES)
    config = project / ".brio" / "config.toml"
    config.write_text(config.read_text() + "fix_rounds = 0\n")  # the fix loop has its tests
    provider = ScriptedProvider(
        [
            plan({"title": "break add", "goal": "Make add subtract", "files": ["calc.py"]}),
            ScriptedReply(
                edit("calc.py", "    return a + b", "    return a - b"),
                agent="coder",
                match="Make add subtract",
            ),
            REVIEW,
        ]
    )
    kernel = Kernel(project)
    try:
        task_id = await kernel.submit("Make add subtract", provider=provider)
        result = await kernel.wait(task_id)
        assert result.verified is False
        session_id = result.session_id
        run = kernel.test_run(session_id)
        assert run is not None
        assert run["exit_code"] == 1
        assert run["duration_ms"] > 0
        assert "test_add" in run["output"]
        assert run["failed"] == ["tests/test_calc.py::test_add"]
        view = kernel.state.get(["sessions", session_id, "tests"])
        contract.validate(["sessions", session_id, "tests"], view)
        assert view["passed"] is False
        assert view["failed"] == ["tests/test_calc.py::test_add"]
        assert "assert -1 == 5" in view["tail"]
        contract.validate(["sessions", session_id], kernel.state.get(["sessions", session_id]))
    finally:
        await kernel.close()

    capsys.readouterr()
    # the CLI runs its own event loop: call it as a user would, off this test's loop
    show = ["-C", str(project), "sessions", "show", session_id]
    assert await asyncio.to_thread(main, [*show, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["session"]["tests"]
    assert shown["exit_code"] == 1
    assert shown["failed"] == ["tests/test_calc.py::test_add"]
    assert "assert -1 == 5" in shown["output"]
    assert await asyncio.to_thread(main, show) == 0
    text = capsys.readouterr().out
    assert "tests: python -m pytest -q FAILED (exit 1" in text
    assert "failed: tests/test_calc.py::test_add" in text
    assert "assert -1 == 5" in text
