"""Resolving a real merge conflict in the review screen.

A real pipeline run (real agents, two scripted Coders changing the same line) leaves a
conflict; the review shows both sides, refuses a plain commit while it is unresolved
(it asks), and ``2`` takes the branch's side through the kernel. The view then follows
the published state: the region is marked resolved, the diff holds the branch's line,
and the session is verified only once the tests ran on the new content and passed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tests.scripted import conflicting_coders, review
from textual.widgets import Static

from briotui.kernel import contract
from briotui.kernel.llm.scripted import ScriptedProvider
from briotui.kernel.settings import trust_project
from briotui.ui.app import make_app
from briotui.ui.screens.dialogs import Confirm
from briotui.ui.screens.review import ReviewScreen
from briotui.ui.widgets.diff_view import ConflictView, HunkView

from .helpers import run_request, tasks_of, wait_until

pytestmark = pytest.mark.slow

Scripted = Callable[..., ScriptedProvider]


def _title(app: object) -> str:
    return str(app.screen.query_one("#review-title", Static).content)  # type: ignore[attr-defined]


async def test_taking_theirs_in_the_review_resolves_the_conflict_and_retests(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    (project / "test_app.py").write_text(
        "from app import add\n\n\ndef test_add():\n    assert add(2, 3) == 15\n"
    )
    (project / ".brio").mkdir(exist_ok=True)
    (project / ".brio" / "config.toml").write_text(
        '[tests]\ncommand = "python -m pytest -q"\nfix_rounds = 0\n'
    )
    trust_project(project, user_dir=config_dir)
    provider = ScriptedProvider(conflicting_coders("app.py", review()))
    app = make_app(project, provider=provider, config_dir=config_dir, build=False)
    async with app.run_test(size=(120, 44)) as pilot:
        task_id = await run_request(pilot, "change add")
        session_id = tasks_of(app)[task_id]["session"]
        await wait_until(pilot, lambda: app.mirror["sessions"][session_id].get("tests") is not None)
        await pilot.press("ctrl+r")
        await app.workers.wait_for_complete()
        screen = app.screen
        assert isinstance(screen, ReviewScreen)
        [conflict] = screen.query(ConflictView)
        text = str(conflict.content)
        assert "1 of 1 region(s) to resolve" in text
        assert "▶ region 1 at line 2" in text  # the region the keys act on
        assert "2 * (a + b)" in text
        assert "3 * (a + b)" in text
        assert "2 take theirs" in text
        assert "conflict region(s) to resolve" in _title(app)
        # the keys are in the footer and the palette while the conflict is open
        assert screen.check_action("resolve", ("theirs",))
        titles = [c.title for c in app.get_system_commands(screen)]
        assert {"Conflict: take ours", "Conflict: take theirs", "Conflict: keep both"} <= set(
            titles
        )

        # a commit with the conflict open asks first; "no" writes nothing
        await pilot.press("ctrl+a")
        await app.workers.wait_for_complete()
        await pilot.press("c")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, Confirm)
        assert "not resolved" in str(app.screen.query_one("#confirm-text", Static).content)
        await pilot.press("n")
        await app.workers.wait_for_complete()
        assert app.screen is screen
        assert "2 * (a + b)" not in (project / "app.py").read_text()

        # 2: take the branch's side; the tests then run on the resolved session
        await pilot.press("2")
        await app.workers.wait_for_complete()
        await wait_until(pilot, lambda: app.mirror["sessions"][session_id]["verified"] is True)
        published = contract.session(app.mirror, session_id)
        assert published is not None
        [region] = published["conflicts"][0]["regions"]
        assert region["resolved"]
        assert region["resolution"] == "theirs"
        assert region["resolved_by"] == "user (tui)"
        assert published["tests"] is not None
        assert published["tests"]["passed"]
        session = app.workbench.kernel.sessions().get(session_id)
        assert session.read("app.py") == b"def add(a, b):\n    return 3 * (a + b)\n"
        # the view follows: the region resolved, the diff's line, the verified badge
        [conflict] = screen.query(ConflictView)
        assert "region 1 at line 2: resolved, took theirs" in str(conflict.content)
        [hunk] = screen.query(HunkView)
        assert "3 * (a + b)" in str(hunk.query_one(".hunk-code", Static).content)
        assert "✔ verified" in _title(app)
        assert "conflict region(s) to resolve" not in _title(app)
        assert not screen.check_action("resolve", ("theirs",))
        assert "Conflict: take theirs" not in [c.title for c in app.get_system_commands(screen)]
        # the resolution changed the hunk: decide it again, then the commit needs no question
        await pilot.press("ctrl+a")
        await app.workers.wait_for_complete()
        await pilot.press("c")
        await app.workers.wait_for_complete()
        await wait_until(pilot, lambda: app.mirror["sessions"][session_id]["state"] != "open")
    assert (project / "app.py").read_text() == "def add(a, b):\n    return 3 * (a + b)\n"
