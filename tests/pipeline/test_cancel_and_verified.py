"""What the kernel claims is what it does: ``Kernel.cancel`` ends a submitted task's
driver too (also while it waits on something that is not an agent), a cancel during
the test step ends the run as cancelled with the coded session kept, and a session
revised after its tests passed is no longer published as verified. Real kernel, real
agents, real test commands, scripted replies."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from tests.scripted import FILES, REVIEW, edit, plan, repo
from tests.trust_helpers import trust_project

import briotui.kernel.kernel as kernel_module
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply

pytestmark = pytest.mark.slow

CODE = ScriptedReply(
    edit("calc.py", "    return a + b", "    return a + b  # the sum"), agent="coder"
)
PLAN = plan({"title": "doc", "goal": "Document add", "files": ["calc.py"]})
SLOW_TEST = "import time\n\n\ndef test_slow():\n    time.sleep(120)\n"


def statuses(kernel: Kernel) -> dict[str, Any]:
    return {tid: t["status"] for tid, t in (kernel.state.get(["tasks"]) or {}).items()}


async def test_a_cancel_during_the_tests_keeps_the_coded_session(
    tmp_path: Path, built_agents: list[str]
) -> None:
    project = repo(tmp_path / "proj", {**FILES, "tests/test_slow.py": SLOW_TEST})
    kernel = Kernel(project)
    try:
        task = await kernel.submit("Document add", provider=ScriptedProvider([PLAN, CODE, REVIEW]))
        for _ in range(600):  # until the Smart Agent runs the (slow) tests
            if any(
                t["agent"] == "smart" and t["status"] == "running"
                for t in (kernel.state.get(["tasks"]) or {}).values()
            ):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # the command is running now
        assert kernel.cancel(task)
        result = await asyncio.wait_for(kernel.wait(task), 60)
        assert result.final_outcome == "cancelled", result
        session = kernel.sessions().get(result.session_id)
        assert session.state == "open"
        assert [f.path for f in session.diff().files] == ["calc.py"]
        assert "running" not in statuses(kernel).values(), statuses(kernel)
    finally:
        await kernel.close()


async def test_cancel_ends_a_driver_that_waits_on_no_agent(
    tmp_path: Path, built_agents: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver is building the Council's repository map (off the loop) when the
    task is cancelled: the task ends as cancelled at once, no agent starts after it."""
    project = repo(tmp_path / "proj", FILES)
    building = threading.Event()
    release = threading.Event()

    def slow_map(*args: object, **kwargs: object) -> str:
        building.set()
        release.wait(30)
        return ""

    monkeypatch.setattr(kernel_module, "build_repo_map", slow_map)
    kernel = Kernel(project)
    provider = ScriptedProvider([PLAN, CODE, REVIEW])
    try:
        task = await kernel.submit("Document add", provider=provider)
        assert await asyncio.to_thread(building.wait, 30)
        assert kernel.cancel(task)
        done, _ = await asyncio.wait({asyncio.ensure_future(kernel.wait(task))}, timeout=20)
        assert done, "the driver went on after the cancel"
        [finished] = done
        assert finished.result().final_outcome == "cancelled"
        assert provider.remaining == 3  # no agent ran after the cancel
    finally:
        release.set()
        await kernel.close()


async def test_a_revision_after_the_tests_passed_is_not_verified(
    tmp_path: Path, built_agents: list[str]
) -> None:
    project = repo(tmp_path / "proj", FILES)
    trust_project(project)
    kernel = Kernel(project)
    try:
        result = await kernel.wait(
            await kernel.submit("Document add", provider=ScriptedProvider([PLAN, CODE, REVIEW]))
        )
        sid = result.session_id
        assert result.verified is True, result
        assert kernel.state.get(["sessions", sid, "verified"]) is True
        revised = ScriptedReply(
            edit("calc.py", "    return a + b  # the sum", "    return a - b  # broken"),
            agent="coder",
        )
        task = await kernel.revise(sid, "change it", provider=ScriptedProvider([revised]))
        assert (await kernel.wait(task)).status == "done"
        assert b"a - b" in kernel.sessions().get(sid).read("calc.py")
        # the tests passed on what the session was, not on what it is now
        assert kernel.is_verified(sid) is False
        assert kernel.state.get(["sessions", sid, "verified"]) is False
        assert json.dumps(kernel.state.get(["sessions", sid]))  # still published
    finally:
        await kernel.close()
