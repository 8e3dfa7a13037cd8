"""Pilot tests: each interaction against the real kernel, a scripted provider and a git repo."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.scripted import git
from tests.trust_helpers import trust_project

from briotui.kernel.caps.model import CapabilityRequest
from briotui.kernel.llm.scripted import ScriptedProvider
from briotui.ui.app import make_app
from briotui.ui.screens.capability import CapabilityPrompt
from briotui.ui.screens.dialogs import Confirm, ConfirmQuit, InterruptedOffer, RejectReason
from briotui.ui.screens.help import HelpScreen
from briotui.ui.screens.main import MainScreen
from briotui.ui.screens.review import ReviewScreen
from briotui.ui.screens.sessions import SessionsScreen
from briotui.ui.widgets.conversation import ConversationPane

from .helpers import EDIT_REPLY, README_REPLY, app_for, finished, run_request, tasks_of, wait_until

pytestmark = pytest.mark.slow

Scripted = Callable[..., ScriptedProvider]


async def test_a_request_runs_and_streams_into_the_conversation(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    app = app_for(project, scripted(EDIT_REPLY), config_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        task_id = await run_request(pilot, "@coder add a comment")
        task = tasks_of(app)[task_id]
        assert task["status"] == "done"
        assert task["agent"] == "coder"
        pane = app.screen.query_one(ConversationPane)
        assert pane.task_id == task_id
        assert "the sum" in app.transcript(task_id)
        assert "Done" in app.transcript(task_id)
        assert (project / "app.py").read_text() == "def add(a, b):\n    return a + b\n"


async def test_navigating_the_tree_switches_the_conversation(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    app = app_for(project, scripted(EDIT_REPLY, README_REPLY), config_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        first = await run_request(pilot, "@coder first")
        second = await run_request(pilot, "@coder second")
        pane = app.screen.query_one(ConversationPane)
        assert pane.task_id == second
        app.screen.query_one("#tasks").focus()
        tree = app.screen.query_one("#tasks")
        tree.select_task(second)  # type: ignore[attr-defined]
        await pilot.pause()
        await pilot.press("k")  # up: the first task's last subtask, then the first task
        await pilot.press("k")
        await pilot.pause()
        assert pane.task_id in (first, f"{first}.coder")
        assert "the sum" in app.transcript(first)
        assert "edited" in app.transcript(second)


async def test_accept_and_reject_hunks_with_a_reason(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    reply = EDIT_REPLY + "\n" + README_REPLY
    app = app_for(project, scripted(reply), config_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        task_id = await run_request(pilot, "@coder two edits")
        session_id = tasks_of(app)[task_id]["session"]
        await pilot.press("ctrl+r")
        await app.workers.wait_for_complete()
        screen = app.screen
        assert isinstance(screen, ReviewScreen)
        assert [f.path for f in screen.diff.files] == ["README.md", "app.py"]
        await pilot.press("a")  # README.md's hunk
        await app.workers.wait_for_complete()
        await pilot.press("r")  # app.py's hunk: asks why
        assert isinstance(app.screen, RejectReason)
        await pilot.press(*"keep it terse", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        session = app.workbench.sessions().get(session_id)
        decisions = {session.diff().hunk(h).path: d for h, d in session.decisions().items()}  # type: ignore[union-attr]
        assert decisions == {"README.md": ("accepted", ""), "app.py": ("rejected", "keep it terse")}
        assert "keep it terse" in session.feedback(mark_delivered=False)


async def test_approve_and_commit_writes_a_git_commit(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    app = app_for(project, scripted(EDIT_REPLY), config_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await run_request(pilot, "@coder comment the sum")
        await pilot.press("ctrl+r")
        await app.workers.wait_for_complete()
        await pilot.press("ctrl+a")
        await app.workers.wait_for_complete()
        await pilot.press("c")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not isinstance(app.screen, ReviewScreen)
    assert "# the sum" in (project / "app.py").read_text()
    assert git(project, "log", "-1", "--format=%s").strip() == "comment the sum"


async def test_commit_without_accepted_hunks_says_so(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    app = app_for(project, scripted(EDIT_REPLY), config_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await run_request(pilot, "@coder comment")
        await pilot.press("ctrl+r")
        await app.workers.wait_for_complete()
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, ReviewScreen)
        assert any("Accept at least one hunk" in n.message for n in app._notifications)
    assert git(project, "log", "--format=%s").split() == ["init"]


async def test_roll_back_discards_the_session(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    app = app_for(project, scripted(EDIT_REPLY), config_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        task_id = await run_request(pilot, "@coder comment")
        session_id = tasks_of(app)[task_id]["session"]
        await pilot.press("ctrl+r")
        await app.workers.wait_for_complete()
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert isinstance(app.screen, Confirm)  # asks first
        await pilot.press("y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not isinstance(app.screen, ReviewScreen)
        assert app.workbench.sessions().get(session_id).state in ("discarded", "rolled-back")
    assert (project / "app.py").read_text() == "def add(a, b):\n    return a + b\n"


REQUEST = CapabilityRequest(
    agent="coder", capability="write", target="README.md", task_id="t-1", reason="fix the title"
)


@pytest.mark.parametrize(
    ("key", "answer"),
    [("y", "once"), ("s", "session"), ("a", "project"), ("n", "deny"), ("escape", "deny")],
)
async def test_each_prompt_key_gives_its_answer(
    project: Path, scripted: Scripted, config_dir: Path, key: str, answer: str
) -> None:
    app = app_for(project, scripted(), config_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        asked = asyncio.ensure_future(app.ask_capability(REQUEST))
        await pilot.pause()
        assert isinstance(app.screen, CapabilityPrompt)
        await pilot.press(key)
        assert await asked == answer
        await pilot.pause(0.1)
        assert not isinstance(app.screen, CapabilityPrompt)
        assert "README.md" in app.transcript("t-1")


async def test_prompt_bursts_queue_and_identical_requests_share_one_answer(
    project: Path, scripted: Scripted, config_dir: Path
) -> None:
    app = app_for(project, scripted(), config_dir)
    other = CapabilityRequest(agent="coder", capability="shell", target="make lint")
    async with app.run_test(size=(100, 30)) as pilot:
        first = asyncio.ensure_future(app.ask_capability(REQUEST))
        same = asyncio.ensure_future(app.ask_capability(REQUEST))
        second = asyncio.ensure_future(app.ask_capability(other))
        await pilot.pause()
        assert sum(isinstance(s, CapabilityPrompt) for s in app.screen_stack) == 1
        assert app.screen.request == REQUEST  # type: ignore[attr-defined]
        await pilot.press("y")
        await pilot.pause()
        assert app.screen.request == other  # type: ignore[attr-defined]
        await pilot.press("n")
        assert (await first, await same, await second) == ("once", "once", "deny")


async def test_a_real_agent_waits_for_the_prompt(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    (project / ".brio").mkdir(exist_ok=True)
    (project / ".brio" / "config.toml").write_text(
        '[agents.coder]\nread = ["**"]\nwrite = ["src/**"]\n'
    )
    trust_project(project, config_dir)  # [agents.*] grants apply in a trusted project
    app = app_for(project, scripted(README_REPLY), config_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.click("#request")
        await pilot.press(*"@coder edit the readme", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, CapabilityPrompt))
        prompt = app.screen
        assert isinstance(prompt, CapabilityPrompt)
        assert (prompt.request.capability, prompt.request.target) == ("write", "README.md")
        await pilot.press("y")
        await wait_until(pilot, lambda: finished(app))
        [root] = [t for t in tasks_of(app).values() if not t.get("parent")]
        assert root["status"] == "done"
        diff = app.workbench.sessions().get(root["session"]).diff()
        assert [f.path for f in diff.files] == ["README.md"]


async def test_quitting_with_work_in_flight_asks(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    app = app_for(project, scripted({"text": EDIT_REPLY, "delay_ms": 20_000}), config_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.click("#request")
        await pilot.press(*"@coder slow", "enter")
        await wait_until(pilot, lambda: bool(app.workbench.running()))
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmQuit)
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running
        assert not isinstance(app.screen, ConfirmQuit)
        await pilot.press("ctrl+q")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
    assert app.return_code == 0
    # Observed: the quit cancelled the task as if the user had, so the next start did not
    # offer to resume it (the dialog says its work is kept and shown on the next start).
    again = app_for(project, scripted(), config_dir)
    async with again.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(again.screen, InterruptedOffer))
        await pilot.press("escape")


async def test_model_text_is_sanitized(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    evil = "\x1b]0;pwned\x07\x1b[2J" + EDIT_REPLY + "\x1b]52;c;ZXZpbA==\x07"
    app = app_for(project, scripted(evil), config_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        task_id = await run_request(pilot, "@coder x")
        text = app.transcript(task_id)
        assert "the sum" in text
        assert "\x1b" not in text
        assert "pwned" not in text


async def test_theme_choice_persists_and_keymap_applies(
    project: Path, scripted: Scripted, config_dir: Path
) -> None:
    (config_dir / "config.toml").write_text('# mine\n[ui.keymap]\nsessions = "f2"\n')
    app = app_for(project, scripted(), config_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        assert app.theme == "brio-dark"
        assert {"brio-dark", "brio-light", "brio-contrast"} <= set(app.available_themes)
        app.theme = "brio-light"
        await pilot.pause()
        await pilot.press("f2")
        await pilot.pause()
        assert isinstance(app.screen, SessionsScreen)
    saved = (config_dir / "config.toml").read_text()
    assert 'theme = "brio-light"' in saved
    assert "# mine" in saved
    assert 'sessions = "f2"' in saved
    again = app_for(project, scripted(), config_dir)
    async with again.run_test(size=(100, 30)):
        assert again.theme == "brio-light"


async def test_help_lists_keys_with_ids(
    project: Path, scripted: Scripted, config_dir: Path
) -> None:
    app = app_for(project, scripted(), config_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        ids = {row[2] for row in app.screen.rows}
        assert {"review", "sessions", "quit", "help"} <= ids


async def test_demo_mode_is_labelled_and_works(
    project: Path, built_agents: list[str], config_dir: Path
) -> None:
    app = make_app(project, demo=True, config_dir=config_dir, build=False)
    async with app.run_test(size=(100, 30)) as pilot:
        assert any("DEMO" in line for line in app.banner_lines())
        task_id = await run_request(pilot, "@coder show me")
        session = tasks_of(app)[task_id]["session"]
        diff = app.workbench.sessions().get(session).diff()
        assert [f.path for f in diff.files] == ["BRIOTUI_DEMO.md"]


async def test_no_provider_says_what_to_set(
    project: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")
    app = make_app(project, config_dir=config_dir, build=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        text = "\n".join(app.banner_lines())
        assert "ANTHROPIC_API_KEY" in text
        assert "scripted demo" in text


async def test_review_shows_findings_about_the_whole_change(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    app = app_for(project, scripted(EDIT_REPLY), config_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await run_request(pilot, "@coder comment the sum")
        session_id = next(iter(app.kernel.state.get(["sessions"])))  # type: ignore[union-attr]
        app.kernel.record_review(  # type: ignore[union-attr]
            session_id,
            {
                "verdict": "approve",
                "findings": [
                    {"hunk_id": "", "severity": "info", "message": "no test covers the sum"}
                ],
            },
        )
        await pilot.press("ctrl+r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        title = str(app.screen.query_one("#review-title").render())
        assert "no test covers the sum" in title


async def test_the_status_bar_says_unsandboxed_from_the_kernels_state(
    project: Path, scripted: Scripted, config_dir: Path
) -> None:
    from briotui.ui.widgets.status_bar import StatusBar

    user = config_dir  # the user's config dir the app reads (one loader for all settings)
    user.mkdir(parents=True, exist_ok=True)
    (user / "config.toml").write_text('[shell]\nsandbox = "off"\n')
    app = app_for(project, scripted(), config_dir)
    async with app.run_test(size=(110, 30)) as pilot:
        await pilot.pause()
        assert app.workbench.state.get("/sandbox")["sandboxed"] is False
        bar = app.screen.query_one("#status", StatusBar)
        await wait_until(pilot, lambda: "unsandboxed" in str(bar.render()))
        assert "⚠ unsandboxed (ask)" in str(bar.render())
    (user / "config.toml").write_text('[shell]\nsandbox = "auto"\n')
    sandboxed = app_for(project, scripted(), config_dir)
    async with sandboxed.run_test(size=(110, 30)) as pilot:
        await pilot.pause()
        assert sandboxed.workbench.state.get("/sandbox")["sandboxed"] is True
        bar = sandboxed.screen.query_one("#status", StatusBar)
        assert "unsandboxed" not in str(bar.render())


async def test_the_working_tree_notice_comes_from_the_kernels_watcher(
    project: Path, scripted: Scripted, config_dir: Path
) -> None:
    """An edit on disk reaches the status bar through the kernel's one watcher."""
    app = app_for(project, scripted(), config_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.kernel is not None and app.kernel.sessions().watching)
        manager = app.kernel.sessions()  # type: ignore[union-attr]
        assert manager._listeners, "the app subscribes to the kernel's watcher"
        (project / "notes.txt").write_text("edited by the user\n")
        screen = app.screen
        assert isinstance(screen, MainScreen)
        await wait_until(pilot, lambda: screen.tree_changed > 0)
        assert screen.tree_changed == len(manager.pending_changes())


async def test_the_app_takes_its_settings_from_the_caller(
    project: Path, scripted: Scripted, config_dir: Path
) -> None:
    """Settings built once (as the CLI does) go to the app and its kernel; nothing re-reads."""
    from briotui.kernel.settings import load_settings

    (project / ".brio").mkdir(exist_ok=True)
    config = project / ".brio" / "config.toml"
    config.write_text('[ui]\ntheme = "nord"\n\n[pipeline]\nconcurrency = 3\n')
    settings = load_settings(project, user_dir=config_dir)
    config.write_text("this is [not toml\n")  # a re-read would fail on this
    app = make_app(
        project, provider=scripted(), config_dir=config_dir, build=False, settings=settings
    )
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.kernel is not None)
        assert app.settings is settings
        assert app.kernel is not None
        assert app.kernel.config is settings
        assert app.theme == "nord"
        assert not app._config_errors
