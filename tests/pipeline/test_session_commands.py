"""The kernel's session commands on a real repository with real agents: decide, commit,
roll back, discard and revise each republish the session; revise hands the rejected
hunks and their reasons to the Coder; hunks carry their provenance; conflicts their
regions."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.scripted import FILES, REVIEW, conflicting_coders, edit, repo

from briotui.kernel.kernel import NO_ANSWER, Kernel
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply

pytestmark = pytest.mark.slow


def hunks_of(kernel: Kernel, session_id: str) -> list[dict[str, Any]]:
    files = kernel.state.get(["sessions", session_id, "files"]) or []
    return [h for f in files for h in f["hunks"]]


async def coded(kernel: Kernel, reply: str) -> str:
    provider = ScriptedProvider([ScriptedReply(reply, agent="coder")])
    result = await kernel.wait(
        await kernel.submit("Make add safe", agent="coder", provider=provider)
    )
    assert result.status == "done", result.summary
    return result.session_id


async def test_commit_through_the_kernel_republishes_the_session(
    tmp_path: Path, built_agents: list[str]
) -> None:
    project = repo(tmp_path / "proj", FILES)
    kernel = Kernel(project)
    try:
        sid = await coded(kernel, edit("calc.py", "    return a + b", "    return a + b  # safe"))
        [hunk] = hunks_of(kernel, sid)
        # provenance: the agent that wrote it and the model of its reply
        assert hunk["agent"] == "coder"
        assert hunk["model"] == "scripted/scripted"
        assert hunk["kind"] == "text"
        assert hunk["header"].startswith("@@ ")
        assert hunk["decision"] == "pending"
        await kernel.decide(sid, None, "accepted")
        assert hunks_of(kernel, sid)[0]["decision"] == "accepted"
        # the tests never ran on this session (one Coder, no pipeline): the user confirms
        await kernel.commit(sid, git=True, message="safe add", force=True)
        assert kernel.state.get(["sessions", sid, "state"]) == "committed"
        assert "# safe" in (project / "calc.py").read_text()
        log = subprocess.run(  # noqa: ASYNC221 - a test reading git once
            ["git", "log", "-1", "--format=%s"], cwd=project, capture_output=True, text=True
        )
        assert log.stdout.strip() == "safe add"
        await kernel.rollback(sid)
        assert kernel.state.get(["sessions", sid, "state"]) == "rolled-back"
        assert (project / "calc.py").read_text() == FILES["calc.py"]
    finally:
        await kernel.close()


async def test_discard_republishes_the_session(tmp_path: Path, built_agents: list[str]) -> None:
    project = repo(tmp_path / "proj", FILES)
    kernel = Kernel(project)
    try:
        sid = await coded(kernel, edit("calc.py", "    return a + b", "    return b + a"))
        await kernel.discard_session(sid)
        assert kernel.state.get(["sessions", sid, "state"]) == "discarded"
    finally:
        await kernel.close()


async def test_revise_hands_rejected_hunks_and_reasons_to_the_coder(
    tmp_path: Path, built_agents: list[str]
) -> None:
    project = repo(tmp_path / "proj", FILES)
    kernel = Kernel(project)
    try:
        sid = await coded(kernel, edit("calc.py", "    return a + b", "    return a - b"))
        [first] = hunks_of(kernel, sid)
        await kernel.decide(sid, [first["id"]], "rejected", reason="add must add, not subtract")
        [shown] = hunks_of(kernel, sid)
        assert (shown["decision"], shown["reason"]) == ("rejected", "add must add, not subtract")
        # the reply fits only a prompt that carries the reason and the instruction
        revised = ScriptedReply(
            edit("calc.py", "    return a - b", "    return a + b  # adds"),
            agent="coder",
            match="add must add, not subtract",
        )
        task = await kernel.revise(sid, "keep a comment", provider=ScriptedProvider([revised]))
        result = await kernel.wait(task)
        assert result.status == "done", result.summary
        assert result.session_id == sid
        session = kernel.sessions().get(sid)
        assert b"return a + b  # adds" in session.read("calc.py")
        [new] = hunks_of(kernel, sid)
        assert new["id"] != first["id"]
        assert new["decision"] == "pending"
        assert (new["agent"], new["model"]) == ("coder", "scripted/scripted")
        prompts = [m["content"] for m in kernel.transcript(task) if m["role"] == "user"]
        assert any("keep a comment" in p and "return a - b" in p for p in prompts)
    finally:
        await kernel.close()


async def test_a_merge_conflict_is_published_with_its_regions(
    tmp_path: Path, built_agents: list[str]
) -> None:
    project = repo(tmp_path / "proj", FILES)
    provider = ScriptedProvider(
        conflicting_coders("calc.py", models=("model-double", "model-triple"))
    )
    kernel = Kernel(project)
    try:
        result = await kernel.wait(await kernel.submit("Change add", provider=provider))
        [conflict] = kernel.state.get(["sessions", result.session_id, "conflicts"])
        assert conflict["path"] == "calc.py"
        assert conflict["session"] != result.session_id
        assert conflict["session"]
        [region] = conflict["regions"]
        assert set(region) == {
            "base",
            "ours",
            "theirs",
            "index",
            "resolved",
            "resolution",
            "whole",
            "line",
            "above",
        }
        assert (region["index"], region["resolved"], region["resolution"]) == (1, False, "")
        assert region["line"] == 1  # where the session's side starts in calc.py
        assert "a + b" in region["base"]
        sides = region["ours"] + region["theirs"]
        assert "2 * (a + b)" in sides
        assert "3 * (a + b)" in sides
        # the merged hunk is credited to the Coder (and model) whose branch merged
        merged = kernel.sessions().get(result.session_id).read("calc.py")
        winner = "model-double" if b"2 * (a + b)" in merged else "model-triple"
        [hunk] = hunks_of(kernel, result.session_id)
        assert hunk["model"] == f"scripted/{winner}"
        assert hunk["agent"] == "coder"
    finally:
        await kernel.close()


QUESTION = ScriptedReply(
    json.dumps({"question": "Should sub accept floats?", "subtasks": []}), agent="council"
)


def answered_plan(answer: str) -> ScriptedReply:
    """The Council's plan, given only once the user's answer is in its conversation."""
    return ScriptedReply(
        json.dumps({"subtasks": [{"title": "sub", "goal": "Add sub(a, b)", "files": ["calc.py"]}]}),
        agent="council",
        match=answer,
    )


SUB = ScriptedReply(
    edit("calc.py", "    return a + b", "    return a + b\n\n\ndef sub(a, b):\n    return a - b"),
    agent="coder",
)


async def test_the_councils_question_reaches_the_user_and_the_answer_the_council(
    tmp_path: Path, built_agents: list[str]
) -> None:
    project = repo(tmp_path / "proj", FILES)
    asked: list[tuple[str, str]] = []

    async def answer(agent: str, question: str) -> str | None:
        asked.append((agent, question))
        return "ints only, please"

    provider = ScriptedProvider([QUESTION, answered_plan("ints only, please"), SUB, REVIEW])
    kernel = Kernel(project)
    kernel.set_answerer(answer)
    try:
        result = await kernel.wait(await kernel.submit("Add sub", provider=provider))
        assert asked == [("council", "Should sub accept floats?")]
        assert result.status == "done", result.summary
        assert result.plan[0]["title"] == "sub"
    finally:
        await kernel.close()


async def test_no_answer_lets_the_council_decide(tmp_path: Path, built_agents: list[str]) -> None:
    project = repo(tmp_path / "proj", FILES)

    async def escape(agent: str, question: str) -> str | None:
        return None

    provider = ScriptedProvider([QUESTION, answered_plan(NO_ANSWER), SUB, REVIEW])
    kernel = Kernel(project)
    kernel.set_answerer(escape)
    try:
        result = await kernel.wait(await kernel.submit("Add sub", provider=provider))
        assert result.status == "done", result.summary
    finally:
        await kernel.close()
