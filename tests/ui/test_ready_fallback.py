"""The kernel starts even when Textual's first-frame ``Ready`` never reaches the app.

The app starts its kernel on ``Ready`` (after the first frame); in full suite runs,
apps were seen whose kernel never started, and every request waited for it. The app
starts the kernel anyway :data:`~briotui.ui.app.READY_FALLBACK_S` after mounting.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.app import App

from briotui.kernel.llm.scripted import ScriptedProvider
from briotui.ui.app import BrioApp, make_app


async def test_an_app_whose_ready_never_comes_still_starts_its_kernel(
    project: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(BrioApp, "on_ready", lambda self: None)  # Ready is lost
    app = make_app(project, provider=ScriptedProvider([]), config_dir=config_dir, build=False)
    # Textual's own run_test: not the suite's, which waits for the kernel itself
    async with App.run_test(app, size=(100, 30)) as pilot:
        await asyncio.wait_for(app.kernel_started.wait(), 30)
        await pilot.pause()
        assert app.kernel is not None
