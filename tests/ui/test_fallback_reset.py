"""The app drops a failed provider's half reply and shows the live meters, with a real kernel."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Markdown

from briotui.devtools.loopback import FakeReply, LoopbackServer
from briotui.kernel.llm.config import ModelsConfig, ProviderConfig, RetryConfig, Target
from briotui.kernel.llm.router import build_router
from briotui.ui.app import BrioApp, make_app
from briotui.ui.widgets.conversation import ConversationPane

from .helpers import finished, tasks_of, wait_until

pytestmark = pytest.mark.slow

HALF = ("The first vendor ", "started to ")
SECOND = "The second vendor answered in full."
ENV = {"ANTHROPIC_API_KEY": "sk-ant-test-key-0123456789", "OPENAI_API_KEY": "sk-test-0123456789"}


def config(first: LoopbackServer, second: LoopbackServer) -> ModelsConfig:
    def provider(server: LoopbackServer, model: str, key: str) -> ProviderConfig:
        return ProviderConfig(
            name=server.protocol,
            kind=server.protocol,
            model=model,
            base_url=server.base_url,
            api_key_env=key,
            timeout_s=20.0,
            read_timeout_s=10.0,
            connect_timeout_s=5.0,
        )

    return replace(
        ModelsConfig(),
        providers={
            "anthropic": provider(first, "claude-haiku-4-5", "ANTHROPIC_API_KEY"),
            "openai": provider(second, "gpt-4o-mini", "OPENAI_API_KEY"),
        },
        fallback=(Target("anthropic", "claude-haiku-4-5"), Target("openai", "gpt-4o-mini")),
        retry=RetryConfig(max_attempts=1, base_delay_s=0.0, jitter=0.0),
    )


async def test_the_conversation_keeps_only_the_answering_providers_reply(
    project: Path, built_agents: list[str], config_dir: Path
) -> None:
    first = LoopbackServer(
        "anthropic",
        [FakeReply("".join(HALF), chunks=HALF, mid_stream_error="overloaded")],
        api_key=ENV["ANTHROPIC_API_KEY"],
    )
    second = LoopbackServer("openai", [FakeReply(SECOND)], api_key=ENV["OPENAI_API_KEY"])
    await first.start()
    await second.start()
    router = build_router(config(first, second), env=ENV)
    app = make_app(project, provider=router, config_dir=config_dir, build=False)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            brio: BrioApp = pilot.app
            await pilot.click("#request")
            await pilot.press(*"@echo hello", "enter")
            await brio.workers.wait_for_complete()
            await wait_until(pilot, lambda: finished(brio))
            await wait_until(pilot, lambda: SECOND in brio.transcript(_root(brio)))
            await pilot.pause()
            task_id = _root(brio)
            text = brio.transcript(task_id)
            assert "first vendor" not in text
            assert "anthropic failed" in text  # the fallback is said in the conversation
            pane = brio.screen.query_one(ConversationPane)
            assert pane.task_id == task_id
            shown = pane.query_one("#conv-body", Markdown).source
            assert SECOND in shown
            assert "first vendor" not in shown
    finally:
        await router.aclose()
        await first.stop()
        await second.stop()


def _root(app: Any) -> str:
    roots = [t for t in tasks_of(app).values() if not t.get("parent")]
    return str(sorted(roots, key=lambda t: t["created_at"])[-1]["id"])


async def test_the_status_bar_meters_come_from_the_running_agent(
    project: Path, built_agents: list[str], config_dir: Path
) -> None:
    from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply
    from briotui.ui.widgets.status_bar import StatusBar, agent_meters

    provider = ScriptedProvider([ScriptedReply("A slow answer.", delay_ms=3000)])
    app = make_app(project, provider=provider, config_dir=config_dir, build=False)
    async with app.run_test(size=(140, 30)) as pilot:
        brio: BrioApp = pilot.app
        await pilot.click("#request")
        await pilot.press(*"@echo hello", "enter")

        def metered() -> list[dict[str, Any]]:
            agents = brio.mirror.get("agents") or {}
            return [
                a
                for a in agents.values()
                if a.get("state") == "running" and a.get("fuel_limit", 0) > 0
            ]

        await wait_until(pilot, lambda: bool(metered()))
        agent = metered()[0]
        assert agent["state"] == "running"
        assert agent["fuel_limit"] > agent["fuel_used"]  # the limit comes from the kernel
        bar = brio.screen.query_one("#status", StatusBar)
        assert "fuel" in agent_meters(agent)
        await wait_until(pilot, lambda: "echo" in str(bar.render()) and "fuel" in str(bar.render()))
        await brio.workers.wait_for_complete()
        await wait_until(pilot, lambda: finished(brio))
