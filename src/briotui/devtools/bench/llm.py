"""What the kernel adds to a streamed completion, measured against the bare SDK on loopback.

For each vendor protocol, the same loopback server answers two ways of asking:

- *direct*: the vendor SDK's streaming call, iterated, text joined (what any client does);
- *kernel*: :meth:`Router.complete` with a delta callback and one event subscriber, so
  routing, the provider wrapper, event publishing, cost and ledger are all included.

Rounds alternate the two so drift and warm-up hit both equally. Overhead per request is
the difference of medians on a one-delta reply; overhead per delta is the extra
difference on a long reply, divided by its number of deltas. Targets:
<= 5 ms per request, <= 50 us per delta. Nothing here is asserted by a test.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from briotui.devtools.bench.measure import Measure
from briotui.devtools.loopback import FakeReply, LoopbackServer, WireProtocol
from briotui.kernel.llm.config import ModelsConfig, ProviderConfig, RetryConfig, Target
from briotui.kernel.llm.router import Router, make_provider
from briotui.kernel.llm.streaming import StreamingProvider
from briotui.kernel.llm.types import CompletionRequest, Message

REQUEST_TARGET_MS = 5.0
DELTA_TARGET_US = 50.0
_KEY = "bench-key"
_MODEL = "bench-model"


async def bench_llm(
    *,
    protocols: tuple[WireProtocol, ...] = ("anthropic", "ollama", "openai"),
    rounds: int = 40,
    deltas: int = 200,
) -> list[Measure]:
    """Measure kernel overhead per streamed request and per delta, for each protocol.

    Args:
        protocols: Which vendor protocols to measure.
        rounds: Requests per shape and per side (direct, kernel).
        deltas: Deltas in the long reply.

    Returns:
        One :class:`Measure` per figure (target None when it is for scale only).
    """
    results: list[Measure] = []
    for protocol in protocols:
        results.extend(await _bench_protocol(protocol, rounds, deltas))
    return results


def run_llm_bench(**kwargs: Any) -> list[Measure]:
    """:func:`bench_llm` from synchronous code (runs its own event loop)."""
    return asyncio.run(bench_llm(**kwargs))


async def _bench_protocol(protocol: WireProtocol, rounds: int, deltas: int) -> list[Measure]:
    short = FakeReply(chunks=("ok",), input_tokens=10, output_tokens=1)
    long = FakeReply(chunks=("tok ",) * deltas, input_tokens=10, output_tokens=deltas)
    key = None if protocol == "ollama" else _KEY
    async with (
        LoopbackServer(protocol, [short], api_key=key, cycle=True) as short_server,
        LoopbackServer(protocol, [long], api_key=key, cycle=True) as long_server,
    ):
        figures: dict[str, tuple[float, float]] = {}
        for label, server in (("short", short_server), ("long", long_server)):
            direct = _direct_call(protocol, server)
            router = _router(protocol, server)
            router.events.subscribe(_Sink())
            request = CompletionRequest(
                messages=(Message("user", "bench"),), agent="bench", task_id="bench"
            )

            async def kernel(router: Router = router, request: CompletionRequest = request) -> int:
                parts: list[str] = []
                completion = await router.complete(request, parts.append)
                return len(completion.text)

            try:
                figures[label] = await _alternate(direct.call, kernel, rounds)
            finally:
                await direct.close()
                await router.aclose()
    d_short, k_short = figures["short"]
    d_long, k_long = figures["long"]
    per_request_ms = (k_short - d_short) * 1000
    per_delta_us = ((k_long - d_long) - (k_short - d_short)) / max(1, deltas - 1) * 1e6
    how = f"median of {rounds} alternating rounds on a loopback {protocol} server"
    return [
        Measure(
            f"llm {protocol}: kernel overhead per streamed request",
            per_request_ms,
            "ms",
            REQUEST_TARGET_MS,
            detail=f"router vs bare SDK, 1-delta reply; {how}",
        ),
        Measure(
            f"llm {protocol}: kernel overhead per delta",
            per_delta_us,
            "us",
            DELTA_TARGET_US,
            detail=f"extra cost of a {deltas}-delta reply over a 1-delta one, per delta; {how}",
        ),
        Measure(
            f"llm {protocol}: bare SDK streamed request (1 delta)",
            d_short * 1000,
            "ms",
            None,
            detail=f"for scale; {how}",
        ),
    ]


async def _alternate(
    direct: Callable[[], Awaitable[int]], kernel: Callable[[], Awaitable[int]], rounds: int
) -> tuple[float, float]:
    for _ in range(3):  # warm up connections and caches on both sides
        await direct()
        await kernel()
    direct_times: list[float] = []
    kernel_times: list[float] = []
    for i in range(rounds):
        order = (
            ((direct, direct_times), (kernel, kernel_times))
            if i % 2 == 0
            else ((kernel, kernel_times), (direct, direct_times))
        )
        for call, times in order:
            start = time.perf_counter()
            await call()
            times.append(time.perf_counter() - start)
    return statistics.median(direct_times), statistics.median(kernel_times)


def _config(protocol: WireProtocol, server: LoopbackServer) -> ProviderConfig:
    return ProviderConfig(
        name=protocol,
        kind=protocol,
        model=_MODEL,
        base_url=server.base_url,
        api_key_env="BENCH_KEY" if protocol != "ollama" else "",
        free=True,
    )


def _router(protocol: WireProtocol, server: LoopbackServer) -> Router:
    pc = _config(protocol, server)
    config = ModelsConfig(
        providers={protocol: pc},
        fallback=(Target(protocol),),
        retry=RetryConfig(max_attempts=1),
    )
    return Router(config, {protocol: make_provider(pc, {"BENCH_KEY": _KEY})})


class _Sink:
    """A subscriber doing what a UI bridge does first: look at the event's type."""

    def __init__(self) -> None:
        self.deltas = 0

    def __call__(self, event: object) -> None:
        if type(event).__name__ == "ReplyDelta":
            self.deltas += 1


class _Direct:
    """The bare SDK call, as a client without briotui would write it."""

    def __init__(self, call: Callable[[], Awaitable[int]], close: Callable[[], Awaitable[None]]):
        self.call = call
        self.close = close


def _direct_call(protocol: WireProtocol, server: LoopbackServer) -> _Direct:
    # The same SDK client class and settings as the provider, used without it.
    provider = make_provider(_config(protocol, server), {"BENCH_KEY": _KEY})
    assert isinstance(provider, StreamingProvider)
    text = "bench"

    if protocol == "anthropic":
        from anthropic.types import RawContentBlockDeltaEvent, TextDelta

        from briotui.kernel.llm.anthropic_provider import AnthropicProvider

        assert isinstance(provider, AnthropicProvider)
        client = provider.client

        async def call() -> int:
            parts: list[str] = []
            stream = await client.messages.create(
                model=_MODEL,
                max_tokens=1024,
                messages=[{"role": "user", "content": text}],
                stream=True,
            )
            async with stream:
                async for event in stream:
                    if isinstance(event, RawContentBlockDeltaEvent) and isinstance(
                        event.delta, TextDelta
                    ):
                        parts.append(event.delta.text)
            return len("".join(parts))

    elif protocol == "openai":
        from briotui.kernel.llm.openai_provider import OpenAIProvider

        assert isinstance(provider, OpenAIProvider)
        oclient = provider.client

        async def call() -> int:
            parts: list[str] = []
            stream = await oclient.chat.completions.create(
                model=_MODEL,
                messages=[{"role": "user", "content": text}],
                stream=True,
                stream_options={"include_usage": True},
            )
            async with stream:
                async for chunk in stream:
                    for choice in chunk.choices:
                        if choice.delta.content:
                            parts.append(choice.delta.content)
            return len("".join(parts))

    else:
        from briotui.kernel.llm.ollama_provider import OllamaProvider

        assert isinstance(provider, OllamaProvider)
        lclient = provider.client

        async def call() -> int:
            parts: list[str] = []
            messages = [{"role": "user", "content": text}]
            async for part in await lclient.chat(model=_MODEL, messages=messages, stream=True):
                if part.message.content:
                    parts.append(part.message.content)
            return len("".join(parts))

    async def close() -> None:
        await provider.aclose()

    return _Direct(call, close)
