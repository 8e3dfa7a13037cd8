"""The OpenAI provider: chat completions, streamed, for OpenAI and any compatible server.

vLLM, llama.cpp's server, LM Studio and others speak the same ``/v1/chat/completions``
protocol; point ``base_url`` at them. Usage comes from the final chunk that
``stream_options.include_usage`` asks for.

Tools go as ``tools`` of type ``function``; the model's calls stream as
``delta.tool_calls`` pieces (by index: the id and name first, then the arguments' JSON
in fragments) and end with ``finish_reason: "tool_calls"``; each result goes back as a
``role: "tool"`` message naming its ``tool_call_id``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import openai
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from briotui.kernel.llm.config import ProviderConfig
from briotui.kernel.llm.failures import (
    Cause,
    cause_of_body,
    cause_of_status,
    message_of_body,
    stainless_cause,
    stainless_status_text,
)
from briotui.kernel.llm.streaming import StreamingProvider, StreamState
from briotui.kernel.llm.tools import safe_id, schema_object
from briotui.kernel.llm.types import CompletionRequest, StopReason, ToolCall, Usage

OPENAI_DEFAULT_URL = "https://api.openai.com/v1"

NO_KEY = "no-key-needed"
"""Sent as the key to servers that need none (the SDK insists on some value)."""

_STOP_REASONS: dict[str, StopReason] = {
    "stop": "end",
    "length": "max-tokens",
    "tool_calls": "tool-use",
}


def wire_messages(request: CompletionRequest) -> list[dict[str, Any]]:
    """The messages in the chat completions shape: tool calls and ``role: "tool"`` results."""
    out: list[dict[str, Any]] = []
    for m in request.messages:
        for r in m.tool_results:
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": safe_id(r.call_id, "call"),
                    "content": ("Error: " if r.is_error else "") + r.content,
                }
            )
        if m.tool_calls:
            out.append(
                {
                    "role": "assistant",
                    "content": m.content or None,
                    "tool_calls": [
                        {
                            "id": safe_id(c.id, "call"),
                            "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments},
                        }
                        for c in m.tool_calls
                    ],
                }
            )
        elif m.content or not m.tool_results:
            out.append({"role": m.role, "content": m.content})
    return out


class OpenAIProvider(StreamingProvider):
    """Streams chat completions from OpenAI or an OpenAI-compatible server.

    Args:
        config: The provider's settings (``kind = "openai"``).
        api_key: The key read from ``config.api_key_env``; None for keyless servers.
    """

    kind = "openai"

    def __init__(self, config: ProviderConfig, api_key: str | None = None) -> None:
        super().__init__(config, api_key)
        self._client: openai.AsyncOpenAI | None = None

    @property
    def base_url(self) -> str:
        return self.config.base_url or OPENAI_DEFAULT_URL

    @property
    def client(self) -> openai.AsyncOpenAI:
        """The SDK client, made on first use and reused (one connection pool)."""
        if self._client is None:
            self._client = openai.AsyncOpenAI(
                api_key=self._api_key or NO_KEY,
                base_url=self.base_url,
                max_retries=0,
                timeout=openai.Timeout(
                    self.config.read_timeout_s or None, connect=self.config.connect_timeout_s
                ),
            )
        return self._client

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _stream(
        self,
        request: CompletionRequest,
        model: str,
        state: StreamState,
        emit: Callable[[str], None],
    ) -> None:
        tools = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": schema_object(t),
                },
            }
            for t in request.tools
        ]
        calls: dict[int, list[str]] = {}  # index -> [id, name, arguments...]
        stream = await self.client.chat.completions.create(
            model=model,
            messages=cast(list[ChatCompletionMessageParam], wire_messages(request)),
            tools=cast(list[ChatCompletionToolParam], tools) if tools else openai.omit,
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=openai.omit if request.max_tokens is None else request.max_tokens,
            temperature=openai.omit if request.temperature is None else request.temperature,
            stop=list(request.stop) if request.stop else openai.omit,
        )
        async with stream:
            async for chunk in stream:
                if chunk.model:
                    state.model = chunk.model
                if chunk.usage is not None:
                    state.usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for choice in chunk.choices:
                    if choice.delta is not None and choice.delta.content:
                        emit(choice.delta.content)
                    for piece in (choice.delta.tool_calls if choice.delta else None) or ():
                        call = calls.setdefault(piece.index, ["", ""])
                        if piece.id:
                            call[0] = piece.id
                        if piece.function is not None:
                            if piece.function.name:
                                call[1] = piece.function.name
                            if piece.function.arguments:
                                call.append(piece.function.arguments)
                    if choice.finish_reason:
                        state.finished = True
                        state.stop_reason = _STOP_REASONS.get(choice.finish_reason, "end")
        state.tool_calls.extend(
            ToolCall(c[0] or f"call_{i}", c[1], "".join(c[2:]) or "{}")
            for i, c in sorted(calls.items())
        )

    def _sdk_cause(self, exc: Exception, *, streaming: bool) -> Cause | None:
        if (cause := stainless_cause(openai, exc, streaming=streaming)) is not None:
            return cause
        if isinstance(exc, openai.APIStatusError):
            return cause_of_status(exc.status_code)
        if isinstance(exc, openai.APIError):
            # An error object inside the stream (the SDK raises a plain APIError). OpenAI
            # types overload as "server_error" and says so only in the message.
            if "overloaded" in (message_of_body(exc.body) or exc.message).lower():
                return "overloaded"
            return cause_of_body(exc.body) or "server"
        return None

    def _describe(self, exc: Exception, state: StreamState) -> str:
        if (text := stainless_status_text(openai, exc)) is not None:
            return text
        if isinstance(exc, openai.APIError):
            return message_of_body(exc.body) or exc.message
        return super()._describe(exc, state)
