"""Agents' model calls go through the kernel to real SDKs talking to loopback servers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from briotui.devtools.loopback import FakeReply
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.router import build_router
from briotui.kernel.runtime.context import RunBindings
from briotui.kernel.runtime.events import Event, ModelDelta

from .conftest import ENV, MODELS, models_config

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("protocol", ["anthropic", "ollama", "openai"])
async def test_agent_streams_through_each_provider(
    protocol: str, serve: Callable[..., object], project: Path, built_agents: list[str]
) -> None:
    server = await serve(protocol, [FakeReply("Streamed through the kernel.", output_tokens=6)])  # type: ignore[misc]
    router = build_router(models_config([server]), env=ENV)  # type: ignore[list-item]
    kernel = Kernel(project)
    deltas: list[str] = []

    def on_event(event: Event) -> None:
        if isinstance(event, ModelDelta):
            deltas.append(event.text)

    kernel.events.subscribe(on_event)
    try:
        outcome = await kernel.run_agent("echo", "hello", bindings=RunBindings(provider=router))
    finally:
        await kernel.close()
        await router.aclose()
    await asyncio.sleep(0.05)
    assert outcome.summary == "Streamed through the kernel."
    assert outcome.models == ((protocol, MODELS[protocol]),)
    assert outcome.usage.tokens.output_tokens == 6
    assert "".join(deltas) == outcome.summary
    assert len(deltas) > 1


async def test_agent_falls_back_across_vendors(
    serve: Callable[..., object], project: Path, built_agents: list[str]
) -> None:
    down = await serve("anthropic", [FakeReply(error="overloaded")] * 3)  # type: ignore[misc]
    up = await serve("openai", [FakeReply("The second vendor answered.")])  # type: ignore[misc]
    router = build_router(models_config([down, up], attempts=2), env=ENV)  # type: ignore[list-item]
    kernel = Kernel(project)
    try:
        outcome = await kernel.run_agent("echo", "hi", bindings=RunBindings(provider=router))
    finally:
        await kernel.close()
        await router.aclose()
    assert outcome.summary == "The second vendor answered."
    assert outcome.models == (("openai", MODELS["openai"]),)


async def test_no_secret_reaches_the_store_or_logs(
    serve: Callable[..., object], project: Path, built_agents: list[str]
) -> None:
    server = await serve("anthropic", [FakeReply("Stored without keys.")])  # type: ignore[misc]
    router = build_router(models_config([server]), env=ENV)  # type: ignore[list-item]
    kernel = Kernel(project)
    try:
        session = kernel.new_session(label="echo", task="hello")
        await kernel.run_agent(
            "echo", "hello", bindings=RunBindings(provider=router, workspace=session)
        )
        assert [m["provider"] for m in kernel.transcript_all()] == ["", "anthropic"]
    finally:
        await kernel.close()
        await router.aclose()
    key = ENV["ANTHROPIC_API_KEY"].encode()
    files = [p for p in (project / ".brio").rglob("*") if p.is_file()]
    assert any(p.name == "state.db" for p in files)
    assert not [p for p in files if key in p.read_bytes()]
