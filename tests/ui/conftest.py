"""UI test fixtures: frozen cursors, deterministic ids, a scripted provider, and helpers."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from briotui.kernel.llm.scripted import ScriptedProvider


@pytest.fixture(autouse=True)
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """No blinking cursors: screenshots are the same on every run."""
    monkeypatch.setattr(Input, "cursor_blink", False)


@pytest.fixture
def fixed_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """Task and session ids from counters instead of randomness (for snapshots)."""
    counter = itertools.count(1)
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=next(counter) << 96))
    sessions = itertools.count(1)
    import briotui.kernel.vfs.manager as manager_module

    class FixedSecrets:
        @staticmethod
        def token_hex(n: int = 4) -> str:
            return f"{next(sessions):0{2 * n}x}"

    monkeypatch.setattr(manager_module, "secrets", FixedSecrets)


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A private user config dir (themes, keymap, the saved theme)."""
    path = tmp_path / "config"
    path.mkdir()
    return path


@pytest.fixture
def scripted(tmp_path: Path) -> Callable[..., ScriptedProvider]:
    """Makes a scripted provider from replies (strings or reply objects)."""

    def make(*replies: Any) -> ScriptedProvider:
        path = tmp_path / f"replies-{uuid.uuid1().hex}.json"
        path.write_text(json.dumps(list(replies)))
        return ScriptedProvider.from_file(path)

    return make


@pytest.fixture(autouse=True)
def pinned_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel sees a working bubblewrap, so screenshots are the same on every machine
    (tests of the "unsandboxed" badge turn the sandbox off in the user's config)."""
    from briotui.kernel.shell import runner

    monkeypatch.setattr(runner, "_probe_bwrap", lambda: (True, "bwrap (pinned for the UI tests)"))


@pytest.fixture(autouse=True)
def kernel_started_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app starts its kernel after the first frame; the tests drive a started app
    (``test_start.py`` checks the start itself, in a fresh interpreter)."""
    from briotui.ui.app import BrioApp

    run_test = BrioApp.run_test
    run_async = BrioApp.run_async

    @contextlib.asynccontextmanager
    async def started_run_test(
        self: BrioApp, *args: Any, **kwargs: Any
    ) -> AsyncIterator[Pilot[Any]]:
        async with run_test(self, *args, **kwargs) as pilot:
            await asyncio.wait_for(self.kernel_started.wait(), 60)
            await pilot.pause()
            yield pilot

    async def started_run_async(self: BrioApp, *args: Any, **kwargs: Any) -> Any:
        auto_pilot = kwargs.get("auto_pilot")
        if auto_pilot is not None:

            async def after_start(pilot: Pilot[Any]) -> None:
                await asyncio.wait_for(self.kernel_started.wait(), 60)
                await pilot.pause()
                await auto_pilot(pilot)

            kwargs["auto_pilot"] = after_start
        return await run_async(self, *args, **kwargs)

    monkeypatch.setattr(BrioApp, "run_test", started_run_test)
    monkeypatch.setattr(BrioApp, "run_async", started_run_async)
