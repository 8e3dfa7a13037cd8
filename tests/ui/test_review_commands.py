"""The review screen drives the kernel's session commands: a commit, a rollback and a
revise are seen in the state tree; hunks show who wrote them; a real merge conflict is
drawn with its regions. Real kernel, real agents, scripted replies, a real git repo."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.scripted import conflicting_coders, edit, review
from textual.widgets import Static

from briotui.kernel.llm.scripted import ScriptedProvider
from briotui.ui.screens.dialogs import AskUser, ReviseInstruction
from briotui.ui.screens.review import ReviewScreen
from briotui.ui.widgets.diff_view import ConflictView, HunkView

from .helpers import EDIT_REPLY, app_for, finished, run_request, tasks_of, wait_until

pytestmark = pytest.mark.slow

Scripted = Callable[..., ScriptedProvider]


async def test_a_commit_in_the_review_screen_shows_in_the_state_tree(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    app = app_for(project, scripted(EDIT_REPLY), config_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        task_id = await run_request(pilot, "@coder comment the sum")
        session_id = tasks_of(app)[task_id]["session"]
        await pilot.press("ctrl+r")
        await app.workers.wait_for_complete()
        assert isinstance(app.screen, ReviewScreen)
        # provenance: the hunk says which agent and model wrote it
        [view] = app.screen.query(HunkView)
        findings = str(view.query_one(".hunk-findings", Static).content)
        assert "coder" in findings
        assert "scripted/scripted" in findings
        await pilot.press("ctrl+a")
        await app.workers.wait_for_complete()
        await pilot.press("c")
        await app.workers.wait_for_complete()
        await wait_until(pilot, lambda: app.mirror["sessions"][session_id].get("state") != "open")
        assert app.mirror["sessions"][session_id]["state"] == "committed"
    assert "# the sum" in (project / "app.py").read_text()


async def test_revise_runs_the_coder_with_the_rejected_hunks_and_reasons(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    revised = {
        "text": edit("app.py", "    return a + b  # the sum", "    return a + b  # total"),
        "agent": "coder",
        "match": "say total, not sum",
    }
    app = app_for(project, scripted({"text": EDIT_REPLY, "agent": "coder"}, revised), config_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        task_id = await run_request(pilot, "@coder comment the sum")
        session_id = tasks_of(app)[task_id]["session"]
        await pilot.press("ctrl+r")
        await app.workers.wait_for_complete()
        await pilot.press("r", *"say total, not sum", "enter")
        await app.workers.wait_for_complete()
        await pilot.press("v")
        assert isinstance(app.screen, ReviseInstruction)
        await pilot.press(*"keep it short", "enter")
        await app.workers.wait_for_complete()
        await wait_until(pilot, lambda: len(tasks_of(app)) >= 2 and finished(app))
        revise_task = max(
            (t for t in tasks_of(app).values() if not t.get("parent")),
            key=lambda t: t["created_at"],
        )
        assert revise_task["status"] == "done"
        assert revise_task["session"] == session_id
        session = app.workbench.kernel.sessions().get(session_id)
        assert b"# total" in session.read("app.py")
        [hunk] = [h for f in app.mirror["sessions"][session_id]["files"] for h in f["hunks"]]
        assert hunk["decision"] == "pending"
        assert hunk["agent"] == "coder"


async def test_a_real_merge_conflict_is_drawn_with_its_regions(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    provider = ScriptedProvider(conflicting_coders("app.py", review()))
    app = app_for(project, provider, config_dir)
    async with app.run_test(size=(100, 40)) as pilot:
        await run_request(pilot, "change add")
        await pilot.press("ctrl+r")
        await app.workers.wait_for_complete()
        assert isinstance(app.screen, ReviewScreen)
        [conflict] = app.screen.query(ConflictView)
        text = str(conflict.content)
        assert "Conflict in app.py" in text
        assert "2 * (a + b)" in text
        assert "3 * (a + b)" in text
        assert "(not merged)" in text  # the branch's side, not "your working tree"


async def test_the_councils_question_is_a_modal_and_the_answer_reaches_it(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    plan = {"subtasks": [{"title": "comment", "goal": "Comment the sum", "files": ["app.py"]}]}
    provider = scripted(
        {"text": json.dumps({"question": "Which comment?", "subtasks": []}), "agent": "council"},
        {"text": json.dumps(plan), "agent": "council", "match": "say the sum"},
        {"text": EDIT_REPLY, "agent": "coder"},
        {"text": json.dumps({"verdict": "approve", "findings": []}), "agent": "reviewer"},
    )
    app = app_for(project, provider, config_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.click("#request")
        await pilot.press(*"comment add", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, AskUser))
        assert isinstance(app.screen, AskUser)
        assert "Which comment?" in str(app.screen.query_one("#ask-question", Static).content)
        await pilot.press(*"say the sum", "enter")
        await wait_until(pilot, lambda: finished(app))
        [root] = [t for t in tasks_of(app).values() if not t.get("parent")]
        assert root["status"] == "done"


async def test_review_names_the_failing_test_t_opens_its_output_and_commit_asks(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    from briotui.kernel.settings import trust_project
    from briotui.ui.screens.test_output import ConfirmUnverified, TestOutput

    (project / "test_app.py").write_text(
        "from app import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    (project / ".brio").mkdir(exist_ok=True)
    (project / ".brio" / "config.toml").write_text(
        '[tests]\ncommand = "python -m pytest -q"\nfix_rounds = 0\n'
    )
    trust_project(project, user_dir=config_dir)
    replies = scripted(
        {
            "text": json.dumps(
                {
                    "question": None,
                    "subtasks": [{"title": "t", "goal": "Subtract", "files": ["app.py"]}],
                }
            ),
            "agent": "council",
        },
        {"text": edit("app.py", "    return a + b", "    return a - b"), "agent": "coder"},
        {"text": json.dumps({"verdict": "approve", "findings": []}), "agent": "reviewer"},
    )
    app = app_for(project, replies, config_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        task_id = await run_request(pilot, "make add subtract")
        session_id = tasks_of(app)[task_id]["session"]
        await wait_until(pilot, lambda: app.mirror["sessions"][session_id].get("tests") is not None)
        await pilot.press("ctrl+r")
        await app.workers.wait_for_complete()
        assert isinstance(app.screen, ReviewScreen)
        title = str(app.screen.query_one("#review-title", Static).content)
        assert "tests failed" in title
        assert "failing: test_app.py::test_add" in title
        await pilot.press("t")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, TestOutput)
        text = str(app.screen.query_one("#test-output-text", Static).content)
        assert "assert -1 == 5" in text
        await pilot.press("escape")
        assert isinstance(app.screen, ReviewScreen)
        # committing what failed the tests asks first; "no" writes nothing
        await pilot.press("ctrl+a")
        await app.workers.wait_for_complete()
        await pilot.press("c")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, ConfirmUnverified)
        assert "test_app.py::test_add" in str(app.screen.query_one("#confirm-text", Static).content)
        await pilot.press("n")
        await app.workers.wait_for_complete()
        assert isinstance(app.screen, ReviewScreen)
        assert "a - b" not in (project / "app.py").read_text()
        await pilot.press("c")
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("y")
        await app.workers.wait_for_complete()
        await wait_until(pilot, lambda: app.mirror["sessions"][session_id]["state"] != "open")
    assert "a - b" in (project / "app.py").read_text()
