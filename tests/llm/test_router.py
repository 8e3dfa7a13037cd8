"""The router: retries with backoff, fallback across vendors, resets, provenance, accounting."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from briotui.devtools.loopback import FakeReply
from briotui.kernel.errors import BudgetExceeded, ProviderError
from briotui.kernel.llm.config import BudgetConfig, RetryConfig
from briotui.kernel.llm.events import (
    ReplyDelta,
    ReplyEvent,
    ReplyFailed,
    ReplyFinished,
    ReplyReset,
    ReplyStarted,
)
from briotui.kernel.llm.router import Router, build_router
from briotui.kernel.llm.types import CompletionRequest, Message

from .conftest import ENV, MODELS, models_config

REQUEST = CompletionRequest(
    messages=(Message("user", "write code"),), agent="coder", task_id="task-1", session_id="s-1"
)


class Sleeps:
    """Records backoff sleeps instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def router_for(config: Any, env: dict[str, str] | None = None, **kwargs: Any) -> Router:
    return build_router(config, env=ENV if env is None else env, **kwargs)


def record_events(router: Router) -> list[ReplyEvent]:
    events: list[ReplyEvent] = []
    router.events.subscribe(events.append)
    return events


async def test_retries_retryable_errors_with_growing_backoff(serve: Any) -> None:
    server = await serve(
        "anthropic",
        [FakeReply(error="rate-limit"), FakeReply(error="overloaded"), FakeReply("done")],
    )
    config = models_config(
        [server], retry=RetryConfig(max_attempts=3, base_delay_s=0.5, multiplier=2, jitter=0)
    )
    sleeps = Sleeps()
    router = router_for(config, sleep=sleeps)

    completion = await router.complete(REQUEST)

    assert completion.text == "done"
    assert completion.provider == "anthropic"
    assert sleeps.delays == [0.5, 1.0]
    assert completion.failed_attempts == (
        f"anthropic/{MODELS['anthropic']}: rate-limit",
        f"anthropic/{MODELS['anthropic']}: overloaded",
    )
    assert len(server.completion_requests) == 3


@pytest.mark.parametrize("kind", ["bad-request", "auth", "not-found"])
async def test_request_errors_are_not_retried_nor_fallen_back(serve: Any, kind: str) -> None:
    first = await serve("openai", [FakeReply(error=kind), FakeReply("never")])
    second = await serve("ollama", [FakeReply("never either")])
    router = router_for(models_config([first, second], attempts=3))
    events = record_events(router)

    with pytest.raises(ProviderError) as info:
        await router.complete(REQUEST)

    assert info.value.cause == kind
    assert info.value.provider == "openai"
    assert len(first.completion_requests) == 1
    assert second.completion_requests == []
    assert isinstance(events[-1], ReplyFailed)
    assert router.ledger.records == ()


async def test_falls_back_across_vendors_and_records_provenance(serve: Any) -> None:
    anthropic = await serve("anthropic", [FakeReply(error="overloaded")] * 2)
    openai = await serve("openai", [FakeReply(error="server")] * 2)
    ollama = await serve("ollama", [FakeReply("local answer", input_tokens=9, output_tokens=2)])
    router = router_for(models_config([anthropic, openai, ollama], attempts=2))

    completion = await router.complete(REQUEST)

    assert completion.text == "local answer"
    assert (completion.provider, completion.model) == ("ollama", MODELS["ollama"])
    assert completion.failed_attempts == (
        f"anthropic/{MODELS['anthropic']}: overloaded",
        f"anthropic/{MODELS['anthropic']}: overloaded",
        f"openai/{MODELS['openai']}: server",
        f"openai/{MODELS['openai']}: server",
    )
    (record,) = router.ledger.records
    assert (record.provider, record.model, record.task_id) == ("ollama", "llama3.2", "task-1")
    assert record.failed_attempts == completion.failed_attempts
    assert record.cost_usd == 0.0  # a local model is free


async def test_partial_stream_of_a_failed_attempt_is_reset(serve: Any) -> None:
    anthropic = await serve("anthropic", [FakeReply("wrong half answer", drop_after=2)])
    openai = await serve("openai", [FakeReply(chunks=("right ", "answer"))])
    router = router_for(models_config([anthropic, openai], attempts=1))
    events = record_events(router)
    shown: list[str] = []

    def reset() -> None:
        shown.clear()

    completion = await router.complete(REQUEST, shown.append, on_reset=reset)

    assert completion.text == "right answer"
    assert shown == ["right ", "answer"]
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "ReplyStarted",
        "ReplyDelta",
        "ReplyDelta",
        "ReplyReset",
        "ReplyStarted",
        "ReplyDelta",
        "ReplyDelta",
        "ReplyFinished",
    ]
    reset_event = events[3]
    assert isinstance(reset_event, ReplyReset)
    assert (reset_event.provider, reset_event.cause) == ("anthropic", "malformed")
    started = [e for e in events if isinstance(e, ReplyStarted)]
    assert [(e.provider, e.attempt) for e in started] == [("anthropic", 1), ("openai", 2)]
    finished = events[-1]
    assert isinstance(finished, ReplyFinished)
    assert finished.completion.provider == "openai"
    assert {e.request_id for e in events} == {completion.request_id}


async def test_broken_stream_alone_is_a_malformed_error_and_nothing_is_recorded(
    serve: Any,
) -> None:
    server = await serve("ollama", [FakeReply("a b c d", truncate_after=2)])
    router = router_for(models_config([server], attempts=1))
    with pytest.raises(ProviderError) as info:
        await router.complete(REQUEST)
    assert info.value.cause == "malformed"
    assert "ollama/llama3.2: malformed" in info.value.message
    assert router.ledger.records == ()
    assert router.ledger.totals().requests == 0


async def test_skips_providers_without_a_key(serve: Any) -> None:
    anthropic = await serve("anthropic", [FakeReply("never")])
    openai = await serve("openai", [FakeReply("from openai")])
    env = {"OPENAI_API_KEY": ENV["OPENAI_API_KEY"]}
    router = router_for(models_config([anthropic, openai]), env=env)

    completion = await router.complete(REQUEST)

    assert completion.provider == "openai"
    assert completion.failed_attempts == (
        f"anthropic/{MODELS['anthropic']}: skipped (ANTHROPIC_API_KEY is not set)",
    )
    assert anthropic.requests == []


async def test_no_usable_provider_says_what_to_do(serve: Any) -> None:
    anthropic = await serve("anthropic")
    router = router_for(models_config([anthropic]), env={})
    with pytest.raises(ProviderError) as info:
        await router.complete(REQUEST)
    assert "ANTHROPIC_API_KEY is not set" in info.value.message
    assert "briotui doctor" in info.value.message


async def test_every_provider_failing_lists_each_attempt(serve: Any) -> None:
    anthropic = await serve("anthropic", [FakeReply(error="overloaded")])
    ollama = await serve("ollama", [FakeReply(error="server")])
    router = router_for(models_config([anthropic, ollama], attempts=1))
    events = record_events(router)
    with pytest.raises(ProviderError) as info:
        await router.complete(REQUEST)
    error = info.value
    assert error.cause == "server"
    assert error.provider == "ollama"
    assert not error.retryable
    assert "anthropic/claude-haiku-4-5: overloaded; ollama/llama3.2: server" in error.message
    assert isinstance(events[-1], ReplyFailed)


async def test_role_picks_its_model_then_the_fallback(serve: Any) -> None:
    ollama = await serve("ollama", [FakeReply("cheap review")], models=["qwen2.5:0.5b"])
    openai = await serve("openai", [FakeReply("strong code")])
    config = models_config(
        [ollama, openai], chain=["openai"], roles={"reviewer": ["ollama/qwen2.5:0.5b"]}
    )
    router = router_for(config)

    review = await router.complete(replace(REQUEST, agent="Reviewer"))
    code = await router.complete(REQUEST)

    assert (review.provider, review.model) == ("ollama", "qwen2.5:0.5b")
    assert (code.provider, code.model) == ("openai", MODELS["openai"])
    assert ollama.completion_requests[0].body["model"] == "qwen2.5:0.5b"


async def test_request_model_overrides_the_chain(serve: Any) -> None:
    openai = await serve("openai", [FakeReply("x")], models=["gpt-4.1"])
    router = router_for(models_config([openai]))
    completion = await router.complete(replace(REQUEST, model="openai/gpt-4.1"))
    assert completion.model == "gpt-4.1"


async def test_usage_cost_and_totals(serve: Any) -> None:
    anthropic = await serve(
        "anthropic",
        [
            FakeReply("a", input_tokens=1_000_000, output_tokens=0),
            FakeReply("b", input_tokens=0, output_tokens=200_000),
        ],
    )
    openai = await serve("openai", [FakeReply("c", input_tokens=10, output_tokens=5)], models=None)
    router = router_for(models_config([anthropic, openai]))

    first = await router.complete(REQUEST)
    second = await router.complete(replace(REQUEST, agent="reviewer", task_id="task-2"))
    third = await router.complete(replace(REQUEST, model="openai/my-local-model"))

    assert first.cost_usd == pytest.approx(1.0)  # claude-haiku-4-5: $1 per Mtok in
    assert second.cost_usd == pytest.approx(1.0)  # $5 per Mtok out
    assert third.cost_usd is None  # no price for that model: tokens only
    ledger = router.ledger
    assert ledger.totals(agent="coder").requests == 2
    assert ledger.totals(agent="coder").cost_usd == pytest.approx(1.0)
    assert ledger.totals(agent="coder").unpriced == 1
    assert ledger.totals(task_id="task-2").output_tokens == 200_000
    assert ledger.totals(session_id="s-1").tokens == 1_000_000 + 200_000 + 15
    assert ledger.totals().cost_usd == pytest.approx(2.0)
    assert set(ledger.by("task")) == {"task-1", "task-2"}


async def test_budget_stops_the_task_once_spent(serve: Any) -> None:
    server = await serve("anthropic", [FakeReply("a", input_tokens=600_000)] * 3)
    config = models_config([server], budget=BudgetConfig(task_usd=1.0, action="pause"))
    router = router_for(config)

    await router.complete(REQUEST)  # $0.60
    assert router.budget.check(task_id="task-1").ok
    await router.complete(REQUEST)  # $1.20: crosses the limit, allowed to finish
    verdict = router.budget.check(task_id="task-1")
    assert not verdict.ok
    assert (verdict.scope, verdict.action, verdict.unit) == ("task", "pause", "usd")
    with pytest.raises(BudgetExceeded) as info:
        await router.complete(REQUEST)
    assert info.value.action == "pause"
    assert "task_usd" in info.value.message
    assert len(server.completion_requests) == 2
    # another task still has budget
    assert router.budget.check(task_id="task-9").ok


async def test_token_budget(serve: Any) -> None:
    server = await serve("ollama", [FakeReply("a", input_tokens=50, output_tokens=60)])
    config = models_config([server], budget=BudgetConfig(session_tokens=100))
    router = router_for(config)
    await router.complete(REQUEST)
    verdict = router.budget.check(session_id="s-1")
    assert (verdict.ok, verdict.unit, verdict.spent) == (False, "tokens", 110)


async def test_cancelling_through_the_router(serve: Any) -> None:
    server = await serve("openai", [FakeReply(chunks=("x",) * 50, chunk_delay_ms=100)])
    router = router_for(models_config([server]))
    events = record_events(router)
    first = asyncio.Event()
    task = asyncio.create_task(router.complete(REQUEST, lambda _: first.set()))
    await asyncio.wait_for(first.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(server.disconnected.wait(), 10)
    assert isinstance(events[-1], ReplyFailed)
    assert events[-1].cause == "cancelled"
    assert router.ledger.records == ()


async def test_deltas_reach_subscribers_and_caller_in_order(serve: Any) -> None:
    chunks = tuple(f"w{i} " for i in range(20))
    server = await serve("anthropic", [FakeReply(chunks=chunks)])
    router = router_for(models_config([server]))
    events = record_events(router)
    shown: list[str] = []
    completion = await router.complete(REQUEST, shown.append)
    assert shown == list(chunks)
    assert [e.text for e in events if isinstance(e, ReplyDelta)] == list(chunks)
    assert completion.text == "".join(chunks)


async def test_a_failing_subscriber_does_not_break_the_request(serve: Any) -> None:
    server = await serve("ollama", [FakeReply("fine")])
    router = router_for(models_config([server]))

    def broken(event: ReplyEvent) -> None:
        raise RuntimeError("subscriber bug")

    router.events.subscribe(broken)
    unsubscribe = router.events.subscribe(lambda e: None)
    unsubscribe()
    assert (await router.complete(REQUEST)).text == "fine"


async def test_scripted_provider_in_the_chain_stays_labelled(tmp_path: Any, serve: Any) -> None:
    from briotui.kernel.llm.config import ProviderConfig, Target

    replies = tmp_path / "replies.json"
    replies.write_text('["scripted hello"]')
    server = await serve("anthropic", [FakeReply(error="overloaded")])
    config = models_config([server], attempts=1)
    demo = ProviderConfig("demo", "scripted", "scripted", replies=str(replies), free=True)
    config = replace(
        config,
        providers={**config.providers, "demo": demo},
        fallback=(*config.fallback, Target("demo")),
    )
    completion = await router_for(config).complete(REQUEST)
    assert (completion.provider, completion.text) == ("scripted", "scripted hello")
