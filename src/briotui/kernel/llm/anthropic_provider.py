"""The Anthropic provider: the Messages API, streamed, through the official ``anthropic`` SDK."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import anthropic
from anthropic.types import (
    MessageParam,
    RawContentBlockDeltaEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    TextDelta,
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
from briotui.kernel.llm.types import CompletionRequest, StopReason, Usage

ANTHROPIC_DEFAULT_URL = "https://api.anthropic.com"

_STOP_REASONS: dict[str, StopReason] = {
    "end_turn": "end",
    "max_tokens": "max-tokens",
    "stop_sequence": "stop-sequence",
}


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
        system, messages = self.split_system(request)
        temperature = request.temperature
        stream = await self.client.messages.create(
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
