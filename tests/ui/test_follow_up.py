"""Follow-up requests in the TUI, and a verified session's review after a restart.

A "+" request (or any request with the ctrl+f toggle on) continues the session last
opened in review: its hunks join the earlier ones, the agent is given the earlier
request. Without an open session "+" says so and keeps the request. After a restart, the
review of a session verified in an earlier run shows "verified" and who wrote each hunk.
Real kernel, real agents, scripted replies, real git repos.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import Input, Static

from briotui.kernel import contract
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider
from briotui.ui.app import BrioApp
from briotui.ui.screens.review import ReviewScreen
from briotui.ui.widgets.diff_view import HunkView

from .helpers import EDIT_REPLY, README_REPLY, app_for, finished, run_request, tasks_of, wait_until

pytestmark = pytest.mark.slow

Scripted = Callable[..., ScriptedProvider]


def paths_of(app: BrioApp, session_id: str) -> list[str]:
    view = contract.session(app.mirror, session_id)
    assert view is not None
    return [f["path"] for f in view["files"]]


async def test_a_plus_request_continues_the_session_last_reviewed(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    replies = scripted(
        {"text": EDIT_REPLY, "agent": "coder", "match": "comment the sum"},
        # answers only a Coder that is told the session's earlier request
        {"text": README_REPLY, "agent": "coder", "match": "1. comment the sum"},
    )
    app = app_for(project, replies, config_dir)
    async with app.run_test(size=(110, 30)) as pilot:
        # no session yet: "+" says so and keeps the request in the input
        await pilot.click("#request")
        await pilot.press(*"+ @coder edit the readme", "enter")
        await pilot.pause()
        assert any("no open session" in n.message for n in app._notifications)
        assert app.screen.query_one("#request", Input).value == "+ @coder edit the readme"
        assert not tasks_of(app)
        app.screen.query_one("#request", Input).clear()

        first = await run_request(pilot, "@coder comment the sum")
        session_id = tasks_of(app)[first]["session"]
        await pilot.press("ctrl+r")
        await app.workers.wait_for_complete()
        assert isinstance(app.screen, ReviewScreen)
        await pilot.press("escape")
        await pilot.pause()

        second = await run_request(pilot, "+ @coder edit the readme")
        assert second != first
        assert tasks_of(app)[second]["status"] == "done"
        assert tasks_of(app)[second]["session"] == session_id
        await wait_until(pilot, lambda: len(paths_of(app, session_id)) == 2)
        assert sorted(paths_of(app, session_id)) == ["README.md", "app.py"]
        session = app.workbench.kernel.sessions().get(session_id)
        assert b"# demo, edited" in session.read("README.md")
        assert b"# the sum" in session.read("app.py")


async def test_the_follow_up_toggle_shows_in_the_input_and_continues_the_session(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    replies = scripted(
        {"text": EDIT_REPLY, "agent": "coder", "match": "comment the sum"},
        {"text": README_REPLY, "agent": "coder", "match": "1. comment the sum"},
    )
    app = app_for(project, replies, config_dir)
    async with app.run_test(size=(110, 30)) as pilot:
        await pilot.press("ctrl+f")  # nothing to continue yet: stays off
        await pilot.pause()
        assert app.follow_up is False
        first = await run_request(pilot, "@coder comment the sum")
        session_id = tasks_of(app)[first]["session"]
        await pilot.press("ctrl+f")  # the session this run's request made
        await pilot.pause()
        assert app.follow_up is True
        request = app.screen.query_one("#request", Input)
        assert f"continues session {session_id}" in str(request.placeholder)
        second = await run_request(pilot, "@coder edit the readme")
        assert tasks_of(app)[second]["session"] == session_id
        await wait_until(pilot, lambda: len(paths_of(app, session_id)) == 2)
        await pilot.press("ctrl+f")
        await pilot.pause()
        assert app.follow_up is False
        assert "continues session" not in str(request.placeholder)


async def test_a_verified_session_reviewed_after_a_restart_is_verified_with_provenance(
    tmp_path: Path, built_agents: list[str], config_dir: Path
) -> None:
    from tests.scripted import FILES, fix_round, repo

    project = repo(tmp_path / "proj", FILES)
    first = Kernel(project)
    try:
        result = await first.wait(
            await first.submit("Add sub(a, b) to calc.py", provider=fix_round("fixer"))
        )
        assert result.verified is True, result
    finally:
        await first.close()
    from briotui.kernel.settings import trust_project

    trust_project(project, user_dir=config_dir)  # the app's own user config trusts it too
    app = app_for(project, ScriptedProvider([]), config_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()  # the open sessions are published again
        await pilot.pause()
        app.action_review(result.session_id)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, ReviewScreen)
        title = str(app.screen.query_one("#review-title", Static).content)
        assert "✔ verified" in title
        [view] = app.screen.query(HunkView)
        author = str(view.query_one(".hunk-findings", Static).content)
        assert "coder" in author
        assert "scripted/fixer" in author  # the fix round's model wrote this hunk
        assert finished(app)


async def test_the_closing_line_points_to_review_only_when_there_is_something_to_review(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    """Found in tmux: an agent run that changed nothing ended "Review its changes
    (session …) with ctrl+r" while its empty session was already discarded."""
    replies = scripted(
        {"text": "Nothing to change.", "agent": "echo"},
        {"text": EDIT_REPLY, "agent": "coder", "match": "comment the sum"},
    )
    app = app_for(project, replies, config_dir)
    async with app.run_test(size=(110, 30)) as pilot:
        quiet = await run_request(pilot, "@echo anything to do?")
        await wait_until(pilot, lambda: "Done." in app.transcript(quiet))
        assert "Review its changes" not in app.transcript(quiet)
        edited = await run_request(pilot, "@coder comment the sum")
        session_id = tasks_of(app)[edited]["session"]
        await wait_until(pilot, lambda: "Done." in app.transcript(edited))
        assert f"Review its changes (session `{session_id}`)" in app.transcript(edited)
