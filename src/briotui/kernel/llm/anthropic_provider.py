"""The Anthropic provider: the Messages API, streamed, through the official ``anthropic`` SDK.

Tools go as ``tools`` (name, description, ``input_schema``); the model's calls come back
as ``tool_use`` content blocks whose input streams as ``input_json_delta`` pieces, and
the results go back in the next user message as ``tool_result`` blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import anthropic
from anthropic.types import (
    InputJSONDelta,
    MessageParam,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    TextDelta,
    ToolParam,
    ToolUseBlock,
)

from briotui.kernel.llm.config import ProviderConfig
from briotui.kernel.llm.failures import (
    Cause,
    cause_of_body,
    cause_of_status,
    stainless_cause,
    stainless_status_text,
)
from briotui.kernel.llm.streaming import StreamingProvider, StreamState
from briotui.kernel.llm.tools import arguments_object, arguments_text, safe_id, schema_object
from briotui.kernel.llm.types import CompletionRequest, StopReason, ToolCall, Usage

ANTHROPIC_DEFAULT_URL = "https://api.anthropic.com"

_STOP_REASONS: dict[str, StopReason] = {
    "end_turn": "end",
    "max_tokens": "max-tokens",
    "stop_sequence": "stop-sequence",
    "tool_use": "tool-use",
}


def wire_messages(request: CompletionRequest) -> tuple[str, list[dict[str, Any]]]:
    """The system prompt and the messages in the Messages API's shape, tool blocks included."""
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    out: list[dict[str, Any]] = []
    for m in request.messages:
        if m.role == "system":
            continue
        if not m.tool_calls and not m.tool_results:
            out.append({"role": m.role, "content": m.content})
            continue
        blocks: list[dict[str, Any]] = [
            {
                "type": "tool_result",
                "tool_use_id": safe_id(r.call_id, "call"),
                "content": r.content,
                "is_error": r.is_error,
            }
            for r in m.tool_results
        ]
        if m.content:
            blocks.append({"type": "text", "text": m.content})
        blocks.extend(
            {
                "type": "tool_use",
                "id": safe_id(c.id, "call"),
                "name": c.name,
                "input": arguments_object(c.arguments),
            }
            for c in m.tool_calls
        )
        out.append({"role": m.role, "content": blocks})
    return system, out


class AnthropicProvider(StreamingProvider):
    """Streams replies from Anthropic's Messages API (or a server speaking it).

    The SDK's own retries are off (``max_retries=0``): the router retries, so that a
    retry and a fallback are decided in one place and recorded.

    Args:
        config: The provider's settings (``kind = "anthropic"``).
        api_key: The key read from ``config.api_key_env``.
    """

    kind = "anthropic"

    def __init__(self, config: ProviderConfig, api_key: str | None = None) -> None:
        super().__init__(config, api_key)
        self._client: anthropic.AsyncAnthropic | None = None

    @property
    def base_url(self) -> str:
        return self.config.base_url or ANTHROPIC_DEFAULT_URL

    @property
    def client(self) -> anthropic.AsyncAnthropic:
        """The SDK client, made on first use and reused (one connection pool)."""
        if self._client is None:
            self._client = anthropic.AsyncAnthropic(
                api_key=self._api_key or "",
                base_url=self.base_url,
                max_retries=0,
                timeout=anthropic.Timeout(
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
        system, messages = wire_messages(request)
        temperature = request.temperature
        tools = [
            {"name": t.name, "description": t.description, "input_schema": schema_object(t)}
            for t in request.tools
        ]
        calls: dict[int, tuple[str, str, list[str]]] = {}  # index -> id, name, json pieces
        stream = await self.client.messages.create(
            tools=cast(list[ToolParam], tools) if tools else anthropic.omit,
            model=model,
            max_tokens=request.max_tokens or self.config.max_tokens,
            messages=cast(list[MessageParam], messages),
            system=system or anthropic.omit,
            # This SDK version has no temperature argument; the API still takes it.
            extra_body=None if temperature is None else {"temperature": temperature},
            stop_sequences=list(request.stop) if request.stop else anthropic.omit,
            stream=True,
        )
        async with stream:
            async for event in stream:
                if isinstance(event, RawContentBlockDeltaEvent):
                    if isinstance(event.delta, TextDelta):
                        emit(event.delta.text)
                    elif isinstance(event.delta, InputJSONDelta) and event.index in calls:
                        calls[event.index][2].append(event.delta.partial_json)
                elif isinstance(event, RawContentBlockStartEvent):
                    block = event.content_block
                    if isinstance(block, ToolUseBlock):
                        first = arguments_text(block.input) if block.input else ""
                        calls[event.index] = (block.id, block.name, [first] if first else [])
                elif isinstance(event, RawContentBlockStopEvent):
                    if event.index in calls:
                        call_id, name, pieces = calls.pop(event.index)
                        state.tool_calls.append(ToolCall(call_id, name, "".join(pieces) or "{}"))
                elif isinstance(event, RawMessageStartEvent):
                    usage = event.message.usage
                    state.model = event.message.model
                    state.usage = Usage(usage.input_tokens, usage.output_tokens)
                elif isinstance(event, RawMessageDeltaEvent):
                    tokens_in = event.usage.input_tokens
                    state.usage = Usage(
                        state.usage.input_tokens if tokens_in is None else tokens_in,
                        event.usage.output_tokens,
                    )
                    if event.delta.stop_reason:
                        state.stop_reason = _STOP_REASONS.get(event.delta.stop_reason, "end")
                elif isinstance(event, RawMessageStopEvent):
                    state.finished = True

    def _sdk_cause(self, exc: Exception, *, streaming: bool) -> Cause | None:
        if (cause := stainless_cause(anthropic, exc, streaming=streaming)) is not None:
            return cause
        if isinstance(exc, anthropic.APIStatusError):
            # An error event inside a 200 stream carries its type only in the body.
            return cause_of_body(exc.body) or cause_of_status(exc.status_code)
        if isinstance(exc, anthropic.APIResponseValidationError):
            return "malformed"
        return None

    def _describe(self, exc: Exception, state: StreamState) -> str:
        return stainless_status_text(anthropic, exc) or super()._describe(exc, state)
