"""The sessions screen discards the highlighted session with a key (kept in history)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from briotui.ui.app import make_app
from briotui.ui.screens.sessions import SessionsScreen

from .helpers import EDIT_REPLY, run_request, wait_until

pytestmark = pytest.mark.slow


async def test_d_discards_the_highlighted_session(
    project: Path, built_agents: list[str], scripted: Any, config_dir: Path
) -> None:
    app = make_app(project, provider=scripted(EDIT_REPLY), config_dir=config_dir, build=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await run_request(pilot, "@coder x")
        [info] = app.workbench.sessions().list()
        assert info.state == "open"
        app.action_sessions()
        await wait_until(pilot, lambda: isinstance(app.screen, SessionsScreen))
        await app.workers.wait_for_complete()
        await pilot.press("d")
        await wait_until(pilot, lambda: app.workbench.sessions().list()[0].state == "discarded")
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.screen.query_one("#sessions-table")
        assert "discarded" in str(table.get_row_at(0))  # type: ignore[attr-defined]
        assert app.workbench.state.get(["sessions", info.id, "state"]) in (None, "discarded")
