"""Each vendor provider, through its real SDK, against a loopback server of its protocol."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from briotui.devtools.loopback import FakeReply, LoopbackServer
from briotui.kernel.errors import ProviderError
from briotui.kernel.llm.router import make_provider
from briotui.kernel.llm.streaming import StreamingProvider
from briotui.kernel.llm.types import CompletionRequest, Message

from .conftest import ENV, KEYS, MODELS, provider_config

PROTOCOLS = ["anthropic", "ollama", "openai"]

REQUEST = CompletionRequest(
    messages=(Message("system", "be brief"), Message("user", "say hello")),
    agent="coder",
    task_id="t1",
)


def provider_for(server: LoopbackServer, env: dict[str, str] | None = None) -> StreamingProvider:
    provider = make_provider(provider_config(server), ENV if env is None else env)
    assert isinstance(provider, StreamingProvider)
    return provider


async def fail(provider: StreamingProvider, request: CompletionRequest = REQUEST) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        await provider.complete(request)
    return info.value


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_streams_deltas_in_order_with_usage(serve: Any, protocol: str) -> None:
    chunks = ("Hel", "lo", ", ", "wor", "ld", "!")
    server = await serve(protocol, [FakeReply(chunks=chunks, input_tokens=17, output_tokens=6)])
    provider = provider_for(server)
    seen: list[str] = []

    completion = await provider.complete(REQUEST, seen.append)

    assert seen == list(chunks)
    assert completion.text == "Hello, world!"
    assert (completion.provider, completion.model) == (protocol, MODELS[protocol])
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (17, 6)
    assert completion.stop_reason == "end"
    body = server.completion_requests[0].body
    assert body["model"] == MODELS[protocol]
    assert body["stream"] is True
    if protocol == "anthropic":
        assert body["system"] == "be brief"
        assert body["messages"] == [{"role": "user", "content": "say hello"}]
    else:
        assert body["messages"][0] == {"role": "system", "content": "be brief"}
    if protocol == "openai":
        assert body["stream_options"] == {"include_usage": True}
    await provider.aclose()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_request_options_reach_the_server(serve: Any, protocol: str) -> None:
    server = await serve(protocol, [FakeReply("ok", stop="max-tokens")])
    provider = provider_for(server)
    request = CompletionRequest(
        messages=(Message("user", "hi"),), max_tokens=33, temperature=0.25, stop=("END",)
    )
    completion = await provider.complete(request)
    assert completion.stop_reason == "max-tokens"
    body = server.completion_requests[0].body
    if protocol == "anthropic":
        assert (body["max_tokens"], body["temperature"], body["stop_sequences"]) == (
            33,
            0.25,
            ["END"],
        )
    elif protocol == "openai":
        assert (body["max_tokens"], body["temperature"], body["stop"]) == (33, 0.25, ["END"])
    else:
        assert body["options"] == {"num_predict": 33, "temperature": 0.25, "stop": ["END"]}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("kind", "cause", "retryable"),
    [
        ("bad-request", "bad-request", False),
        ("rate-limit", "rate-limit", True),
        ("server", "server", True),
        ("overloaded", "overloaded", True),
        ("auth", "auth", False),
        ("not-found", "not-found", False),
    ],
)
async def test_scripted_errors_map_to_causes(
    serve: Any, protocol: str, kind: str, cause: str, retryable: bool
) -> None:
    server = await serve(protocol, [FakeReply(error=kind)])  # type: ignore[arg-type]
    error = await fail(provider_for(server))
    assert (error.cause, error.retryable) == (cause, retryable)
    assert error.provider == protocol
    assert error.model == MODELS[protocol]
    assert f"{protocol}/{MODELS[protocol]}" in error.message


@pytest.mark.parametrize("protocol", ["anthropic", "openai"])
async def test_wrong_key_is_auth_and_never_shown(serve: Any, protocol: str) -> None:
    server = await serve(protocol, [FakeReply("unused")], api_key="the-right-key")
    error = await fail(provider_for(server))
    assert error.cause == "auth"
    assert not error.retryable
    assert KEYS[protocol] not in error.message
    assert "_API_KEY" in error.message  # says which variable to fix


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_key_echoed_by_the_server_is_redacted(serve: Any, protocol: str) -> None:
    secret = KEYS.get(protocol, "sk-ollama-secret-0123456789")
    server = await serve(
        protocol, [FakeReply(error="auth", error_message=f"key {secret} is revoked")]
    )
    error = await fail(provider_for(server))
    assert secret not in str(error)
    assert "[redacted]" in error.message


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_unknown_model_is_not_found(serve: Any, protocol: str) -> None:
    server = await serve(protocol, [FakeReply("unused")], models=["some-other-model"])
    error = await fail(provider_for(server))
    assert error.cause == "not-found"
    assert "config.toml" in error.message


@pytest.mark.parametrize("protocol", ["anthropic", "openai"])
async def test_missing_key_says_which_variable(serve: Any, protocol: str) -> None:
    server = await serve(protocol, [FakeReply("unused")])
    error = await fail(provider_for(server, env={}))
    assert error.cause == "auth"
    assert error.message.startswith(f"{protocol.upper()}_API_KEY is not set")
    assert server.requests == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    "reply",
    [
        FakeReply("one two three four", malformed_after=2),
        FakeReply("one two three four", truncate_after=2),
        FakeReply("one two three four", drop_after=2),
    ],
    ids=["garbage-event", "no-final-event", "connection-dropped"],
)
async def test_broken_streams_are_malformed(serve: Any, protocol: str, reply: FakeReply) -> None:
    server = await serve(protocol, [reply])
    seen: list[str] = []
    provider = provider_for(server)
    with pytest.raises(ProviderError) as info:
        await provider.complete(REQUEST, seen.append)
    assert info.value.cause == "malformed"
    assert info.value.retryable
    assert seen == ["one ", "two "]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_error_inside_the_stream(serve: Any, protocol: str) -> None:
    server = await serve(protocol, [FakeReply("partial answer", mid_stream_error="overloaded")])
    error = await fail(provider_for(server))
    assert error.cause == "overloaded"
    assert error.retryable


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_cancel_mid_stream_closes_the_connection(serve: Any, protocol: str) -> None:
    server = await serve(protocol, [FakeReply(chunks=("a",) * 50, chunk_delay_ms=100)])
    provider = provider_for(server)
    first = asyncio.Event()
    task = asyncio.create_task(provider.complete(REQUEST, lambda _: first.set()))
    await asyncio.wait_for(first.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(server.disconnected.wait(), 10)
    assert server.disconnects == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_server_down_is_connection(serve: Any, protocol: str) -> None:
    server = await serve(protocol)
    provider = provider_for(server)
    await server.stop()
    error = await fail(provider)
    assert error.cause == "connection"
    assert error.retryable
    assert "127.0.0.1" in error.message


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_read_timeout(serve: Any, protocol: str) -> None:
    from dataclasses import replace

    server = await serve(protocol, [FakeReply("slow", delay_ms=3000)])
    config = replace(provider_config(server), read_timeout_s=0.2, timeout_s=0.0)
    provider = make_provider(config, ENV)
    with pytest.raises(ProviderError) as info:
        await provider.complete(REQUEST)
    assert info.value.cause == "timeout"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_total_deadline(serve: Any, protocol: str) -> None:
    from dataclasses import replace

    server = await serve(protocol, [FakeReply(chunks=("x",) * 40, chunk_delay_ms=50)])
    config = replace(provider_config(server), timeout_s=0.3)
    provider = make_provider(config, ENV)
    with pytest.raises(ProviderError) as info:
        await provider.complete(REQUEST)
    assert info.value.cause == "timeout"
    assert "0.3 s" in info.value.message
