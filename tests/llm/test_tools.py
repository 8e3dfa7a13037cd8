"""Tool use through the real SDKs against loopback servers speaking each vendor's tool format.

A request offering tools gets the model's tool calls back (the SDK parses the vendor's
streamed tool events), the results go back in the vendor's own shape, a provider without
tools gets the conversation as text, and a fallback across vendors carries the tool
conversation over.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from briotui.devtools.loopback import FakeReply, LoopbackServer
from briotui.kernel.errors import ConfigError
from briotui.kernel.llm.router import build_router, make_provider
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply
from briotui.kernel.llm.tools import as_text_request, label
from briotui.kernel.llm.types import (
    CompletionRequest,
    Message,
    ToolCall,
    ToolResult,
    ToolSpec,
)

from .conftest import ENV, models_config, provider_config

READ = ToolSpec(
    "read_file",
    "Read lines of a file",
    json.dumps(
        {
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "start": {"type": "integer"},
                "end": {"type": "integer"},
            },
            "required": ["path"],
        }
    ),
)
ARGS = {"path": "calc.py", "start": 120, "end": 180}
CALL = ToolCall("toolu_01abc", "read_file", json.dumps(ARGS))


def first_request() -> CompletionRequest:
    return CompletionRequest(
        messages=(Message("system", "You edit code."), Message("user", "Fix calc.py")),
        tools=(READ,),
        agent="coder",
    )


def second_request(call: ToolCall) -> CompletionRequest:
    return CompletionRequest(
        messages=(
            Message("system", "You edit code."),
            Message("user", "Fix calc.py"),
            Message("assistant", "Let me look.", tool_calls=(call,)),
            Message(
                "user",
                "",
                tool_results=(ToolResult(call.id, "read_file", "calc.py lines 120-180: ..."),),
            ),
        ),
        tools=(READ,),
        agent="coder",
    )


def tools_sent(protocol: str, body: dict[str, Any]) -> list[str]:
    if protocol == "anthropic":
        return [t["name"] for t in body.get("tools") or []]
    return [t["function"]["name"] for t in body.get("tools") or []]


@pytest.mark.parametrize("protocol", ["anthropic", "openai", "ollama"])
async def test_tool_call_and_result_in_each_vendor_format(
    protocol: str, serve: Callable[..., Any]
) -> None:
    server: LoopbackServer = await serve(
        protocol,
        [
            FakeReply("Let me look.", tool_calls=(CALL,)),
            FakeReply("calc.py\n<<<<<<< SEARCH\n...", match="calc.py lines 120-180"),
        ],
    )
    provider = make_provider(provider_config(server), ENV)
    try:
        reply = await provider.complete(first_request())
        assert reply.tools_offered is True
        assert reply.stop_reason == "tool-use"
        assert reply.text == "Let me look."
        [call] = reply.tool_calls
        assert call.name == "read_file"
        assert json.loads(call.arguments) == ARGS  # reassembled from the streamed pieces
        assert call.id  # Ollama sends none: the provider numbers it
        if protocol != "ollama":
            assert call.id == CALL.id
        answer = await provider.complete(second_request(call))
        assert answer.tool_calls == ()
        assert answer.stop_reason == "end"
        assert answer.text.startswith("calc.py")
    finally:
        await provider.aclose()  # type: ignore[attr-defined]
    first, second = (r.body for r in server.completion_requests)
    assert tools_sent(protocol, first) == ["read_file"]
    messages = second["messages"]
    if protocol == "anthropic":
        assert first["tools"][0]["input_schema"]["required"] == ["path"]
        assistant, results = messages[-2], messages[-1]
        assert assistant["content"][-1] == {
            "type": "tool_use",
            "id": CALL.id,
            "name": "read_file",
            "input": ARGS,
        }
        assert results["role"] == "user"
        [block] = results["content"]
        assert block["type"] == "tool_result"
        assert block["tool_use_id"] == CALL.id
        assert block["content"] == "calc.py lines 120-180: ..."
    elif protocol == "openai":
        assistant, tool = messages[-2], messages[-1]
        assert assistant["tool_calls"][0]["id"] == CALL.id
        assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == ARGS
        assert tool == {
            "role": "tool",
            "tool_call_id": CALL.id,
            "content": "calc.py lines 120-180: ...",
        }
    else:
        assistant, tool = messages[-2], messages[-1]
        assert assistant["tool_calls"][0]["function"] == {"name": "read_file", "arguments": ARGS}
        assert tool["role"] == "tool"
        assert tool["tool_name"] == "read_file"
        assert tool["content"] == "calc.py lines 120-180: ..."


async def test_a_provider_without_tools_gets_the_conversation_as_text(
    serve: Callable[..., Any],
) -> None:
    """``tools = false``: no tools on the wire, the calls and results written as text."""
    server: LoopbackServer = await serve("openai", [FakeReply("```read calc.py:1-20```")])
    from dataclasses import replace

    provider = make_provider(replace(provider_config(server), tools=False), ENV)
    try:
        reply = await provider.complete(second_request(CALL))
    finally:
        await provider.aclose()  # type: ignore[attr-defined]
    assert reply.tools_offered is False
    assert reply.text == "```read calc.py:1-20```"
    [received] = server.completion_requests
    assert "tools" not in received.body
    roles = [m["role"] for m in received.body["messages"]]
    assert "tool" not in roles
    text = json.dumps(received.body["messages"])
    assert "[tool call read_file" in text
    assert "[result of read_file]" in text
    assert "calc.py lines 120-180" in text


async def test_an_ollama_model_without_tools_is_asked_again_in_text(
    serve: Callable[..., Any],
) -> None:
    """Ollama answers 400 "does not support tools" for such a model: the provider asks
    again at once without tools, and keeps doing so for that model."""
    refusal = FakeReply(
        error="bad-request",
        error_message="registry.ollama.ai/library/llama3.2 does not support tools",
    )
    server: LoopbackServer = await serve(
        "ollama", [refusal, FakeReply("text answer"), FakeReply("again text")]
    )
    provider = make_provider(provider_config(server), ENV)
    try:
        reply = await provider.complete(first_request())
        again = await provider.complete(first_request())
    finally:
        await provider.aclose()  # type: ignore[attr-defined]
    assert (reply.text, reply.tools_offered) == ("text answer", False)
    assert (again.text, again.tools_offered) == ("again text", False)
    bodies = [r.body for r in server.completion_requests]
    assert [bool(b.get("tools")) for b in bodies] == [True, False, False]


async def test_fallback_carries_the_tool_conversation_to_another_vendor(
    serve: Callable[..., Any],
) -> None:
    """Anthropic is overloaded mid-conversation: OpenAI gets the same conversation, its
    tool call and result in OpenAI's own shape, and its ids kept."""
    down = await serve("anthropic", [FakeReply(error="overloaded")])
    up = await serve("openai", [FakeReply("done")])
    router = build_router(models_config([down, up], attempts=1), env=ENV)
    try:
        reply = await router.complete(second_request(CALL))
    finally:
        await router.aclose()
    assert (reply.provider, reply.text, reply.tools_offered) == ("openai", "done", True)
    assert reply.failed_attempts == ("anthropic/claude-haiku-4-5: overloaded",)
    [received] = up.completion_requests
    messages = received.body["messages"]
    assert messages[-2]["tool_calls"][0]["id"] == CALL.id
    assert messages[-1] == {
        "role": "tool",
        "tool_call_id": CALL.id,
        "content": "calc.py lines 120-180: ...",
    }
    assert [t["function"]["name"] for t in received.body["tools"]] == ["read_file"]
    # every round is accounted: the ledger holds the answered request
    assert len(router.ledger.records) == 1


async def test_scripted_tool_calls() -> None:
    reply = ScriptedReply.from_json(
        {"text": "", "tool_calls": [{"name": "read_file", "arguments": ARGS}]}, "r"
    )
    provider = ScriptedProvider([reply, ScriptedReply("edits", match="lines 120-180")])
    got = await provider.complete(first_request())
    assert got.stop_reason == "tool-use"
    [call] = got.tool_calls
    assert (call.name, json.loads(call.arguments)) == ("read_file", ARGS)
    # ``match`` sees the tool results of the next request
    assert (await provider.complete(second_request(call))).text == "edits"
    assert label(call) == "read calc.py:120-180"
    with pytest.raises(ConfigError, match="tool_calls"):
        ScriptedReply.from_json({"tool_calls": [{"arguments": {}}]}, "bad")


def test_text_form_keeps_everything() -> None:
    text = as_text_request(second_request(CALL))
    assert text.tools == ()
    assert all(not m.tool_calls and not m.tool_results for m in text.messages)
    joined = "\n".join(m.content for m in text.messages)
    assert "Let me look." in joined
    assert '[tool call read_file {"path": "calc.py"' in joined
    assert "[result of read_file]\ncalc.py lines 120-180: ..." in joined


async def test_fallback_to_a_provider_without_tools_goes_on_in_text(
    serve: Callable[..., Any],
) -> None:
    """OpenAI is down mid-conversation and the next in the chain is an Ollama model
    configured without tools: it gets the whole tool conversation as text, and the reply
    says the tools were not offered (the agent reads its fenced fallback)."""
    from dataclasses import replace

    down = await serve("openai", [FakeReply(error="overloaded")])
    text_only = await serve("ollama", [FakeReply("```read calc.py:120-180```")])
    config = models_config([down, text_only], attempts=1)
    config = replace(
        config,
        providers={**config.providers, "ollama": replace(config.providers["ollama"], tools=False)},
    )
    router = build_router(config, env=ENV)
    try:
        reply = await router.complete(second_request(CALL))
    finally:
        await router.aclose()
    assert (reply.provider, reply.tools_offered, reply.tool_calls) == ("ollama", False, ())
    assert reply.text == "```read calc.py:120-180```"
    [received] = text_only.completion_requests
    assert "tools" not in received.body or not received.body["tools"]
    assert {m["role"] for m in received.body["messages"]} <= {"system", "user", "assistant"}
    sent = json.dumps(received.body["messages"])
    assert "[result of read_file]" in sent
    assert "calc.py lines 120-180" in sent


def test_the_tools_flag_is_read_from_the_config(tmp_path: Any) -> None:
    from briotui.kernel.llm.config import load_models_config

    user = tmp_path / "user.toml"
    user.write_text(
        '[[llm.providers]]\nname = "local"\nkind = "ollama"\nmodel = "m"\ntools = false\n'
    )
    config = load_models_config(tmp_path, user_file=user)
    assert config.providers["local"].tools is False
    assert config.providers["anthropic"].tools is True
    user.write_text('[[llm.providers]]\nname = "x"\nkind = "ollama"\nmodel = "m"\ntools = 1\n')
    with pytest.raises(ConfigError, match="tools must be true or false"):
        load_models_config(tmp_path, user_file=user)
