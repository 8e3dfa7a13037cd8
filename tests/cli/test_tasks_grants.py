"""``briotui tasks`` and ``briotui grants`` over a real project: an interrupted task left
by a real kernel is listed, resumed and discarded; a stored grant (and what was delegated
from it) is listed and revoked."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from briotui.cli.main import main
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply

pytestmark = pytest.mark.slow

EDIT = (
    "app.py\n```\n<<<<<<< SEARCH\n    return a + b\n=======\n"
    "    return a + b  # the sum\n>>>>>>> REPLACE\n```\n"
)


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def leave_an_interrupted_task(project: Path) -> str:
    async def first() -> str:
        kernel = Kernel(project)
        try:
            provider = ScriptedProvider([ScriptedReply(EDIT, agent="coder")])
            done = await kernel.wait(
                await kernel.submit("comment", agent="coder", provider=provider)
            )
            kernel.recorder.task_started(
                "t-gone", agent="coder", goal="comment the sum", parent=None,
                session_id=done.session_id,
            )  # fmt: skip
            return done.session_id
        finally:
            await kernel.close()

    return asyncio.run(first())


def test_tasks_list_resume_and_discard(
    project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    session = leave_an_interrupted_task(project)
    code, listed = run_json(capsys, "-C", str(project), "tasks", "list", "--json")
    assert code == 0
    gone = {t["id"]: t for t in listed["tasks"]}["t-gone"]
    assert gone["interrupted"] is True
    assert gone["session_id"] == session
    replies = project.parent / "replies.json"
    replies.write_text(json.dumps([{"text": EDIT, "agent": "coder"}]))
    code, resumed = run_json(
        capsys, "-C", str(project), "tasks", "resume", "t-gone",
        "--provider", f"scripted:{replies}", "--json",
    )  # fmt: skip
    assert code == 0, resumed
    assert resumed["status"] == "done"
    assert resumed["resumed"] == "t-gone"
    assert resumed["task"] != "t-gone"
    code, discarded = run_json(capsys, "-C", str(project), "tasks", "discard", "t-gone", "--json")
    assert code == 0
    assert discarded["discarded"] == "t-gone"
    code, shown = run_json(capsys, "-C", str(project), "sessions", "show", session, "--json")
    assert shown["session"]["state"] != "open"
    assert main(["-C", str(project), "tasks", "discard", "t-nope"]) != 0
    assert "No stored task" in capsys.readouterr().err


def test_grants_list_and_revoke_with_what_was_delegated(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def grant() -> tuple[str, str]:
        kernel = Kernel(project)
        try:
            caps = kernel.capabilities()
            parent = caps.grant("foreman", "write", "src/**")
            child = caps.grant(
                "coder", "write", "src/a.py", source="delegated", parent_id=parent.id
            )
            return parent.id, child.id
        finally:
            await kernel.close()

    parent, child = asyncio.run(grant())
    code, listed = run_json(capsys, "-C", str(project), "grants", "list", "--json")
    assert code == 0
    assert {g["id"] for g in listed["grants"]} == {parent, child}
    code, revoked = run_json(capsys, "-C", str(project), "grants", "revoke", parent, "--json")
    assert code == 0
    assert revoked["count"] == 2
    code, listed = run_json(capsys, "-C", str(project), "grants", "list", "--json")
    assert listed["grants"] == []
    assert main(["-C", str(project), "grants", "revoke", parent]) != 0
    assert "No active grant" in capsys.readouterr().err


def test_tasks_resume_takes_answer_and_approve_like_run(
    project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A resumed pipeline can be answered (--answer) and given approvals (--approve), as
    `briotui run` can; the Council's question gets the answer given."""

    async def leave() -> None:
        kernel = Kernel(project)
        try:
            session = await asyncio.to_thread(kernel.new_session, label="pipeline", task="x")
            kernel.recorder.task_started(
                "t-asks", agent="pipeline", goal="comment the sum", parent=None,
                session_id=session.id,
            )  # fmt: skip
        finally:
            await kernel.close()

    asyncio.run(leave())
    plan = {"subtasks": [{"title": "c", "goal": "Comment the sum", "files": ["app.py"]}]}
    replies = project.parent / "asks.json"
    replies.write_text(
        json.dumps(
            [
                {"agent": "council", "text": json.dumps({"question": "Which comment?"})},
                {"agent": "council", "text": json.dumps(plan), "match": "say the sum"},
                {"agent": "coder", "text": EDIT},
                {"agent": "reviewer", "text": '{"verdict": "approve", "findings": []}'},
            ]
        )
    )
    code, resumed = run_json(
        capsys, "-C", str(project), "tasks", "resume", "t-asks", "--provider",
        f"scripted:{replies}", "--answer", "say the sum", "--approve", "all", "--json",
    )  # fmt: skip
    assert code == 0, resumed
    assert resumed["status"] == "done", resumed


def test_the_transcript_of_a_task_id_with_like_wildcards_is_only_its_own(
    project: Path,
) -> None:
    """``%`` and ``_`` in a task id are matched literally (``t-1%`` is not ``t-1``)."""

    async def check() -> None:
        kernel = Kernel(project)
        try:
            store = kernel.sessions().store
            for task_id, text in (("t-1.coder", "one"), ("t-1%.coder", "pct"), ("t-1x.c", "x")):
                store.execute(
                    "INSERT INTO messages (task_id, agent, role, content, provider, model,"
                    " created) VALUES (?, 'coder', 'user', ?, 'p', 'm', 0)",
                    (task_id, text),
                )
            assert [m["content"] for m in kernel.transcript("t-1%")] == ["pct"]
            assert [m["content"] for m in kernel.transcript("t-1")] == ["one"]
            assert [m["content"] for m in kernel.transcript("t-1_")] == []
        finally:
            await kernel.close()

    asyncio.run(check())
