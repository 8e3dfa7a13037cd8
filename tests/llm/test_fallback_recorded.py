"""A mid-stream failure and a fallback, through the kernel: what is stored and published."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from briotui.devtools.loopback import FakeReply
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.router import build_router
from briotui.kernel.runtime.context import RunBindings
from briotui.kernel.runtime.events import (
    Event,
    ModelDelta,
    ModelFallback,
    ModelReply,
    ModelReset,
)

from .conftest import ENV, MODELS, models_config

pytestmark = pytest.mark.slow

HALF = ("The first vendor ", "started to ")
SECOND = "The second vendor answered in full."


async def _run_with_fallback(
    serve: Callable[..., object], project: Path
) -> tuple[Kernel, list[Event], str]:
    down = await serve(  # type: ignore[misc]
        "anthropic", [FakeReply("".join(HALF), chunks=HALF, mid_stream_error="overloaded")]
    )
    up = await serve("openai", [FakeReply(SECOND, output_tokens=7)])  # type: ignore[misc]
    router = build_router(models_config([down, up], attempts=1), env=ENV)  # type: ignore[list-item]
    kernel = Kernel(project)
    seen: list[Event] = []
    kernel.events.subscribe(seen.append)
    try:
        outcome = await kernel.run_agent(
            "echo", "hello", bindings=RunBindings(provider=router), task_id="t1"
        )
    finally:
        await router.aclose()
    await asyncio.sleep(0.05)  # events are delivered on the loop
    return kernel, seen, outcome.summary


async def test_fallback_is_stored_and_announced(
    serve: Callable[..., object], project: Path, built_agents: list[str]
) -> None:
    kernel, seen, summary = await _run_with_fallback(serve, project)
    try:
        assert summary == SECOND
        store = kernel.sessions().store
        rows = store.query("SELECT provider, model, output_tokens FROM usage WHERE task_id = 't1'")
        assert ("openai", MODELS["openai"], 7) in [tuple(r) for r in rows]
        assert all(r["provider"] for r in rows), [dict(r) for r in rows]
        failed = store.query("SELECT provider, model, error_kind, created FROM provider_failures")
        assert [(r["provider"], r["model"], r["error_kind"]) for r in failed] == [
            ("anthropic", MODELS["anthropic"], "overloaded")
        ]
        assert failed[0]["created"] > 0
        provider = kernel.state.get(["provider"])
        assert provider["name"] == "openai"
        assert provider["fallback_from"] == "anthropic"
        by_provider = kernel.state.get(["usage", "by_provider"])
        assert by_provider["openai"]["output_tokens"] == 7
        assert "anthropic" not in by_provider
        fallbacks = [e for e in seen if isinstance(e, ModelFallback)]
        assert [(f.from_provider, f.to_provider) for f in fallbacks] == [("anthropic", "openai")]
    finally:
        await kernel.close()


async def test_half_reply_of_the_failed_attempt_is_dropped(
    serve: Callable[..., object], project: Path, built_agents: list[str]
) -> None:
    kernel, seen, summary = await _run_with_fallback(serve, project)
    try:
        assert summary == SECOND
        assert any(isinstance(e, ModelReset) for e in seen)
        shown, mark = "", 0
        for event in seen:  # what a front end shows after honouring the resets
            if isinstance(event, ModelReset):
                shown = shown[:mark]  # the reply in progress is dropped
            elif isinstance(event, ModelDelta):
                shown += event.text
            elif isinstance(event, ModelReply):
                mark = len(shown)
        assert shown == SECOND
        replies = [m["content"] for m in kernel.transcript_all() if m["role"] == "assistant"]
        assert replies == [SECOND]
    finally:
        await kernel.close()
