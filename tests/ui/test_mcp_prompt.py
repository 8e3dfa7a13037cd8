"""As a user: the Smart agent calls an MCP tool from the TUI, the prompt names the tool,
its description and arguments, and a key answers it; the call shows in the conversation.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from tests.mcp_tools.test_mcp_tools import _call, _config
from tests.ui.test_app import app_for

from briotui.kernel.runtime.context import RunBindings
from briotui.ui.screens.capability import CapabilityPrompt

from .helpers import wait_until

pytestmark = pytest.mark.slow


async def test_an_mcp_call_is_prompted_in_the_tui_and_shown_inline(
    project: Path, scripted: object, config_dir: Path, built_agents: list[str]
) -> None:
    _config(
        project,
        f"[mcp.servers.t]\ncommand = [{json.dumps(sys.executable)}, 'tools/server_app.py']\n"
        "timeout_s = 60",
        agents="",  # no grant: the call asks
        user_dir=config_dir,
    )
    provider = scripted(  # type: ignore[operator]
        _call("t__shout", {"text": "hello"}), {"text": "It shouted.", "match": "HELLO"}
    )
    app = app_for(project, provider, config_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        run = asyncio.ensure_future(
            app.kernel.run_agent(
                "smart", "shout hello", bindings=RunBindings(provider=provider), task_id="t-mcp"
            )
        )
        await wait_until(pilot, lambda: isinstance(app.screen, CapabilityPrompt))
        body = str(app.screen.query_one("#cap-body").render())
        assert "tool t/shout" in body
        assert "Repeat the text loudly" in body
        assert '"text": "hello"' in body
        assert "tools (call an MCP server's tool)" in body
        await pilot.press("y")
        outcome = await run
        await pilot.pause(0.2)
        assert outcome.summary == "It shouted."
        assert '→ t/shout {"text":"hello"}' in app.transcript("t-mcp")
