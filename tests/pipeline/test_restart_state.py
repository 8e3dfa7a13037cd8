"""What a restart keeps: a pipeline runs in one kernel; a new kernel on the same ``.brio``
publishes the same verification, per-hunk provenance and task titles (read through the
contract's views), as a fresh CLI process or a restarted TUI would show them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from tests.scripted import FILES, fix_round, repo

from briotui.cli.main import main
from briotui.kernel import contract
from briotui.kernel.kernel import Kernel

pytestmark = pytest.mark.slow


def published(kernel: Kernel, session_id: str) -> dict[str, Any]:
    """The fields a restart must keep, as the contract's views show them."""
    tree = kernel.state.get("")
    view = contract.session(tree, session_id)
    assert view is not None
    return {
        "verified": view["verified"],
        "tests": view.get("tests"),
        "hunks": sorted((h["id"], h["agent"], h["model"]) for h in contract.hunks(view)),
        "titles": {tid: t["title"] for tid, t in contract.tasks(tree).items()},
    }


async def test_a_restart_publishes_the_same_verification_provenance_and_titles(
    tmp_path: Path, built_agents: list[str]
) -> None:
    project = repo(tmp_path / "proj", FILES)
    first = Kernel(project)
    try:
        result = await first.wait(
            await first.submit("Add sub(a, b) to calc.py", provider=fix_round("fixer"))
        )
        assert result.verified is True, result
        assert result.fix_rounds == 1
        before = published(first, result.session_id)
    finally:
        await first.close()
    # what the first run published is what a restart must show
    assert before["verified"] is True
    assert before["tests"]["passed"] is True
    assert {agent for _, agent, _ in before["hunks"]} == {"coder"}
    assert {model for _, _, model in before["hunks"]} == {"scripted/fixer"}  # the fix round's
    assert "Fix round 1" in before["titles"].values()
    assert "Plan the change" in before["titles"].values()

    second = Kernel(project)
    try:
        second.restore()
        await second.restore_sessions()
        after = published(second, result.session_id)
    finally:
        await second.close()
    assert after == before


async def test_a_session_changed_after_its_test_run_is_not_verified_after_a_restart(
    tmp_path: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project = repo(tmp_path / "proj", FILES)
    first = Kernel(project)
    try:
        result = await first.wait(
            await first.submit("Add sub(a, b) to calc.py", provider=fix_round("fixer"))
        )
        assert result.verified is True, result
        session = first.sessions().get(result.session_id)
        session.write("text.py", b"def shout(s):\n    return s.upper() + '!'\n", False)
    finally:
        await first.close()
    second = Kernel(project)
    try:
        second.restore()
        await second.restore_sessions()
        view = contract.session(second.state.get(""), result.session_id)
        assert view is not None
        assert view["verified"] is False  # the run passed on an older version
        assert view.get("tests") is None  # so it is not this version's test run
    finally:
        await second.close()
    # a fresh CLI process says the same
    capsys.readouterr()
    argv = ["-C", str(project), "sessions", "show", result.session_id, "--json"]
    assert await asyncio.to_thread(main, argv) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["session"]["verified"] is False
