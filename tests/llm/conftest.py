"""Fixtures for the model-provider tests: loopback servers and configs pointing at them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import replace

import pytest

from briotui.devtools.loopback import FakeReply, LoopbackServer, WireProtocol
from briotui.kernel.llm.config import (
    ModelsConfig,
    ProviderConfig,
    RetryConfig,
    Target,
)

KEYS = {"anthropic": "sk-ant-test-key-0123456789", "openai": "sk-test-key-0123456789abcdef"}
"""The keys the loopback servers expect (fake, shaped like real ones to test redaction)."""

ENV = {"ANTHROPIC_API_KEY": KEYS["anthropic"], "OPENAI_API_KEY": KEYS["openai"]}

MODELS: dict[str, str] = {
    "anthropic": "claude-haiku-4-5",
    "openai": "gpt-4o-mini",
    "ollama": "llama3.2",
}


def provider_config(server: LoopbackServer, name: str | None = None) -> ProviderConfig:
    """A provider config pointing at ``server``, with short timeouts."""
    kind = server.protocol
    return ProviderConfig(
        name=name or kind,
        kind=kind,
        model=MODELS[kind],
        base_url=server.base_url,
        api_key_env={"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}.get(kind, ""),
        timeout_s=20.0,
        read_timeout_s=10.0,
        connect_timeout_s=5.0,
        free=kind == "ollama",
    )


def models_config(
    servers: Sequence[LoopbackServer],
    *,
    chain: Sequence[str] | None = None,
    roles: Mapping[str, Sequence[str]] | None = None,
    attempts: int = 3,
    **changes: object,
) -> ModelsConfig:
    """A config over ``servers`` (named by protocol), no backoff delay."""
    providers = {s.protocol: provider_config(s) for s in servers}
    fallback = tuple(Target.parse(t, "test") for t in (chain or [s.protocol for s in servers]))
    config = ModelsConfig(
        providers=providers,
        fallback=fallback,
        roles={r: tuple(Target.parse(t, "test") for t in c) for r, c in (roles or {}).items()},
        retry=RetryConfig(max_attempts=attempts, base_delay_s=0.0, jitter=0.0),
    )
    return replace(config, **changes)  # type: ignore[arg-type]


ServerFactory = Callable[..., LoopbackServer]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., object]]:
    """Start loopback servers that stop at the end of the test.

    Call ``await serve("anthropic", [FakeReply(...)], models=...)``.
    """
    started: list[LoopbackServer] = []

    async def start(
        protocol: WireProtocol, replies: Sequence[FakeReply] = (), **kwargs: object
    ) -> LoopbackServer:
        kwargs.setdefault("api_key", KEYS.get(protocol))
        kwargs.setdefault("models", [MODELS[protocol]])
        server = LoopbackServer(protocol, replies, **kwargs)  # type: ignore[arg-type]
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()
