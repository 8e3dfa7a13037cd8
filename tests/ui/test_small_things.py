"""Issue 12's smaller things in the TUI, through the real app, kernel and agents (scripted
replies, a real git repo): the review asks before committing with undecided hunks and
before rolling back, its commit message is the CLI's, the conversation shows paths and
plans as written and follows the output, and the demo walks the whole loop."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.scripted import git
from tests.trust_helpers import trust_project
from textual.widgets._markdown import MarkdownBlock

from briotui.kernel.llm.scripted import ScriptedProvider
from briotui.ui.app import BrioApp, make_app
from briotui.ui.demo import DEMO_FILE
from briotui.ui.screens.dialogs import Confirm
from briotui.ui.screens.review import ReviewScreen
from briotui.ui.widgets.conversation import ConversationPane

from .helpers import EDIT_REPLY, README_REPLY, app_for, run_request, tasks_of, wait_until

pytestmark = pytest.mark.slow

Scripted = Callable[..., ScriptedProvider]

LONG_REQUEST = (
    "comment the sum and retitle the readme so that a new reader sees at once what the "
    "project is for"
)


def shown_text(app: BrioApp) -> str:
    """The conversation as the Markdown widget renders it."""
    pane = app.screen.query_one(ConversationPane)
    return "\n".join(block._content.plain for block in pane.body.query(MarkdownBlock))


async def open_review(pilot: Any) -> ReviewScreen:
    await pilot.press("ctrl+r")
    await pilot.app.workers.wait_for_complete()
    screen = pilot.app.screen
    assert isinstance(screen, ReviewScreen)
    return screen


async def test_commit_with_undecided_hunks_asks_and_commits_only_the_accepted(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    app = app_for(project, scripted(EDIT_REPLY + "\n" + README_REPLY), config_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        task_id = await run_request(pilot, "@coder " + LONG_REQUEST)
        session_id = tasks_of(app)[task_id]["session"]
        screen = await open_review(pilot)
        assert [f.path for f in screen.diff.files] == ["README.md", "app.py"]
        await pilot.press("a")  # README.md's hunk; app.py's stays undecided
        await app.workers.wait_for_complete()
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, Confirm)
        await pilot.press("n")  # cancel: nothing happens
        await pilot.pause()
        assert app.screen is screen
        assert git(project, "log", "--format=%s").split() == ["init"]
        await pilot.press("c")
        await pilot.pause()
        await pilot.press("y")  # commit the accepted one, leave the rest
        await app.workers.wait_for_complete()
        await wait_until(pilot, lambda: app.mirror["sessions"][session_id]["state"] != "open")
    assert (project / "README.md").read_text() == "# demo, edited\n"
    assert (project / "app.py").read_text() == "def add(a, b):\n    return a + b\n"
    subject, _, body = git(project, "log", "-1", "--format=%B").partition("\n")
    assert subject.endswith("…")  # cut between words, as the CLI cuts it
    assert LONG_REQUEST.startswith(subject[:-1])
    assert LONG_REQUEST[len(subject) - 1] == " "
    assert f"Approved hunk by hunk in briotui (session {session_id})." in body


async def test_roll_back_asks_first(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    app = app_for(project, scripted(EDIT_REPLY), config_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        task_id = await run_request(pilot, "@coder comment")
        session_id = tasks_of(app)[task_id]["session"]
        screen = await open_review(pilot)
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert isinstance(app.screen, Confirm)
        await pilot.press("escape")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen is screen
        assert app.workbench.sessions().get(session_id).state == "open"


async def test_the_conversation_keeps_underscores_and_shows_plans_and_reviews(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    subtask = {
        "title": "comment calc/__init__.py",
        "goal": "Comment the sum in app.py",
        "files": ["app.py"],
        "acceptance": ["the sum has a comment"],
    }
    provider = scripted(
        {"text": json.dumps({"question": None, "subtasks": [subtask]}), "agent": "council"},
        {"text": "I edit calc/__init__.py and my_module_name.\n\n" + EDIT_REPLY, "agent": "coder"},
        {
            "text": "```json\n"
            + json.dumps(
                {
                    "verdict": "approve",
                    "findings": [
                        {"hunk": "", "severity": "info", "message": "keeps __all__ intact"}
                    ],
                }
            )
            + "\n```",
            "agent": "reviewer",
        },
    )
    app = app_for(project, provider, config_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await run_request(pilot, "comment the sum")
        # the Markdown widget mounts a list's items after the list itself
        await wait_until(pilot, lambda: "done when" in shown_text(app), limit_s=10)
        text = shown_text(app)
    assert "calc/__init__.py and my_module_name" in text
    assert "Plan — 1 subtask(s)" in text
    assert "comment calc/__init__.py — Comment the sum in app.py" in text
    assert "done when: the sum has a comment" in text
    assert "Review: approve — 1 finding(s)" in text
    assert "keeps __all__ intact" in text
    assert '"subtasks"' not in text
    assert '"verdict"' not in text


async def test_the_conversation_follows_the_output_to_its_last_line(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    talk = "".join(f"Step {n}: thinking about the sum.\n\n" for n in range(60))
    app = app_for(project, scripted(talk + EDIT_REPLY), config_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await run_request(pilot, "@coder comment the sum")
        await pilot.pause()
        await pilot.pause()
        pane = app.screen.query_one(ConversationPane)
        assert pane.max_scroll_y > 0
        assert pane.scroll_y == pane.max_scroll_y
        assert "Done" in shown_text(app).splitlines()[-2] + shown_text(app).splitlines()[-1]


async def demo_walks_the_loop(app: BrioApp, pilot: Any, request: str) -> None:
    task_id = await run_request(pilot, request)
    tasks = tasks_of(app)
    assert tasks[task_id]["status"] == "done", tasks[task_id]
    agents = {t["agent"] for t in tasks.values()}
    assert {"council", "coder", "reviewer"} <= agents
    session_id = tasks[task_id]["session"]
    diff = app.workbench.sessions().get(session_id).diff()
    assert [f.path for f in diff.files] == [DEMO_FILE]
    assert request in app.workbench.sessions().get(session_id).read(DEMO_FILE).decode()
    review = app.mirror["sessions"][session_id]["review"]
    assert review["verdict"] == "approve"
    [finding] = review["findings"]
    assert finding["hunk_id"] == diff.hunks()[0].id
    # the Coder's tool call shows as one compact line in the conversation
    assert "→ search TODO|FIXME" in shown_text(app)


async def test_the_demo_walks_the_whole_loop_for_a_plain_request(
    project: Path, built_agents: list[str], config_dir: Path
) -> None:
    (project / ".brio").mkdir()
    (project / ".brio" / "config.toml").write_text(
        '[tests]\ncommand = "python -m unittest -q test_add"\n'
    )
    (project / "test_add.py").write_text(
        "import unittest\n\nfrom app import add\n\n\n"
        "class T(unittest.TestCase):\n    def test_add(self):\n"
        "        self.assertEqual(add(1, 2), 3)\n"
    )
    trust_project(project, config_dir)  # [tests] applies in a trusted project
    app = make_app(project, demo=True, config_dir=config_dir, build=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await demo_walks_the_loop(app, pilot, "make the greeting friendlier")
        [root] = [t for t in tasks_of(app).values() if not t.get("parent")]
        assert "smart" in {t["agent"] for t in tasks_of(app).values()}  # the tests ran
        assert app.mirror["sessions"][root["session"]]["verified"] is True


async def test_the_palette_demo_walks_the_whole_loop(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    app = app_for(project, scripted(), config_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        app.action_use_demo()
        await demo_walks_the_loop(app, pilot, "add a subtract function")


async def test_banner_and_notifications_show_config_tables_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found trying the TUI: "remove 'anthropic' from [llm] fallback" showed as "from
    fallback" (markup ate the table name); notifications quote tables too."""
    for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OLLAMA_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")  # nothing listens there
    project = tmp_path / "proj"
    project.mkdir()
    (project / ".git").mkdir()  # a repository root for the TUI
    app = make_app(project, build=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: bool(app.provider_problem), 30)
        await pilot.pause()
        banner = str(app.screen.query_one("#banner").render())
        assert "[llm] fallback" in banner, banner
        app.notify("Set [tests] command in .brio/config.toml")
        await pilot.pause()
        [toast] = [n for n in app._notifications]
        assert "[tests] command" in str(toast.message)
        assert toast.markup is False
