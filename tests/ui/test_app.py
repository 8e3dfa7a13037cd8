"""The home screen: pilot tests on what the user sees, and a snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Static

from briotui.ui.app import make_app

pytestmark = pytest.mark.slow


async def test_home_lists_agents_with_build_state(project: Path, built_agents: list[str]) -> None:
    app = make_app(project)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        table = app.query_one("#agents", DataTable)
        rows = {table.get_row_at(i)[0]: table.get_row_at(i) for i in range(table.row_count)}
        assert {"echo", "probe"} <= set(rows)
        assert rows["echo"][3] == "built"
        intro = str(app.query_one("#intro", Static).render())
        assert "a git repository" in intro
        await pilot.press("q")
    assert app.return_code == 0


async def test_home_says_when_project_is_not_git(tmp_path: Path, built_agents: list[str]) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert "not a git repository" in str(app.query_one("#intro", Static).render())


def test_home_snapshot(snap_compare: Any, built_agents: list[str], tmp_path: Path) -> None:
    project = tmp_path / "demo"
    project.mkdir()
    (project / ".git").mkdir()
    assert snap_compare(make_app(project), terminal_size=(100, 24))
