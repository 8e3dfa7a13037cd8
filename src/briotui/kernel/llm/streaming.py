"""What every SDK-backed provider shares: the deadline, the delta plumbing and error mapping.

A vendor module (``anthropic_provider``, ``ollama_provider``, ``openai_provider``)
subclasses :class:`StreamingProvider` and supplies two things: ``_stream``, which drives
its SDK's streaming call and reports deltas, and ``_sdk_cause``, which names the cause of
an exception its SDK raised. This class turns everything else into one
:class:`~briotui.kernel.errors.ProviderError` per failure, with the key redacted.

Tools. A request that offers tools reaches the vendor's tool-calling API when the
provider supports tools (``tools = true`` in its config, the default) and the model has
not refused them; otherwise the conversation goes as text
(:func:`~briotui.kernel.llm.tools.as_text_request`) and the completion says
``tools_offered=False``. A model the server says cannot use tools is remembered, and the
request is sent again as text at once.

A reply counts as complete only when the vendor's final event arrived (Anthropic
``message_stop``, Ollama ``"done": true``, OpenAI a ``finish_reason``); a stream that ends
or drops before that raises cause "malformed" and returns nothing.
"""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

from briotui.kernel.errors import ProviderError
from briotui.kernel.llm.config import ProviderConfig
from briotui.kernel.llm.failures import Cause, provider_error, transport_cause
from briotui.kernel.llm.tools import as_text_request
from briotui.kernel.llm.types import (
    Completion,
    CompletionRequest,
    DeltaCallback,
    StopReason,
    ToolCall,
    Usage,
)


@dataclass
class StreamState:
    """What a stream produced so far; the vendor's ``_stream`` fills it in.

    Attributes:
        parts: The text deltas, in order.
        usage: Tokens, from the vendor's usage fields.
        model: The model the server says answered.
        stop_reason: Why the reply ended.
        finished: Whether the vendor's final event arrived.
        tool_calls: The tool calls the reply made, complete, in order.
    """

    parts: list[str]
    usage: Usage
    model: str
    stop_reason: StopReason = "end"
    finished: bool = False
    tool_calls: list[ToolCall] = field(default_factory=list)

    @property
    def started(self) -> bool:
        """Whether any delta arrived."""
        return bool(self.parts)


class StreamingProvider(ABC):
    """A provider that streams from a vendor SDK.

    Args:
        config: The provider's settings.
        api_key: The key read from ``config.api_key_env``, or None.
    """

    kind: str = ""
    """The vendor, e.g. "anthropic"."""

    def __init__(self, config: ProviderConfig, api_key: str | None = None) -> None:
        self.config = config
        self.name = config.name
        self._api_key = api_key or None
        self._no_tools: set[str] = set()
        """Models the server said cannot use tools (they get text from then on)."""

    def supports_tools(self, model: str) -> bool:
        """Whether a request to ``model`` may offer tools natively."""
        return self.config.tools and model not in self._no_tools

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in an error message."""
        return (self._api_key,) if self._api_key else ()

    @abstractmethod
    async def aclose(self) -> None:
        """Close the SDK client's connections (the provider can be used again after)."""

    @property
    @abstractmethod
    def base_url(self) -> str:
        """The server address this provider talks to."""

    async def complete(
        self, request: CompletionRequest, on_delta: DeltaCallback | None = None
    ) -> Completion:
        """Stream a reply for ``request`` from this provider.

        Args:
            request: The request; ``request.model`` overrides the configured model.
            on_delta: Receives each text delta as it arrives.

        Returns:
            The complete reply, labelled with this provider's name and the model.

        Raises:
            ProviderError: the provider failed; ``cause`` and ``retryable`` say how.
            asyncio.CancelledError: the awaiting task was cancelled; the request in
                flight is closed.
        """
        model = request.model or self.config.model
        if self.config.needs_key and not self._api_key:
            raise ProviderError(
                f"{self.config.api_key_env} is not set: export it, or pick another "
                f"provider for {self.name!r} in .brio/config.toml.",
                provider=self.name,
                model=model,
                cause="auth",
                title="Model provider key missing",
            )
        offered = bool(request.tools) and self.supports_tools(model)
        if not offered:
            request = as_text_request(request)
        try:
            return await self._complete(request, model, offered, on_delta)
        except ProviderError as error:
            if not (offered and error.cause == "bad-request" and self._refuses_tools(error)):
                raise
        # The model cannot use tools (said before anything streamed): text from now on.
        self._no_tools.add(model)
        return await self._complete(as_text_request(request), model, False, on_delta)

    async def _complete(
        self,
        request: CompletionRequest,
        model: str,
        offered: bool,
        on_delta: DeltaCallback | None,
    ) -> Completion:
        state = StreamState(parts=[], usage=Usage(), model=model)
        emit = _emitter(state, on_delta)
        try:
            async with asyncio.timeout(self.config.timeout_s or None):
                await self._stream(request, model, state, emit)
        except ProviderError:
            raise
        except TimeoutError:
            raise self._error(
                model, "timeout", f"no complete reply within {self.config.timeout_s:g} s"
            ) from None
        except json.JSONDecodeError as exc:
            raise self._error(model, "malformed", f"a stream event is not JSON ({exc})") from None
        except Exception as exc:
            error = self.failure(exc, model, state)
            if error is None:
                raise
            raise error from None
        if not state.finished:
            raise self._error(
                model,
                "malformed",
                f"the stream ended after {len(state.parts)} deltas without its final event",
            )
        return Completion(
            text="".join(state.parts),
            provider=self.name,
            model=state.model or model,
            usage=state.usage,
            stop_reason="tool-use" if state.tool_calls else state.stop_reason,
            tool_calls=tuple(state.tool_calls),
            tools_offered=offered,
        )

    def _refuses_tools(self, error: ProviderError) -> bool:
        """Whether a bad-request failure says the model cannot use tools."""
        return False

    def failure(
        self, exc: Exception, model: str, state: StreamState | None = None
    ) -> ProviderError | None:
        """The ProviderError ``exc`` (raised by the SDK or transport) means, or None.

        Args:
            exc: What the SDK raised.
            model: The model asked for.
            state: The stream so far (None when no stream was started).
        """
        state = state or StreamState(parts=[], usage=Usage(), model=model)
        cause = self._sdk_cause(exc, streaming=state.started)
        if cause is None:
            cause = transport_cause(exc, streaming=state.started)
        if cause is None and isinstance(exc, ConnectionError):
            cause = "connection"  # ollama re-raises connect failures as the builtin
        if cause is None:
            return None
        return self._error(model, cause, self._describe(exc, state))

    @abstractmethod
    async def _stream(
        self,
        request: CompletionRequest,
        model: str,
        state: StreamState,
        emit: Callable[[str], None],
    ) -> None:
        """Drive the SDK's stream: ``emit`` each delta, fill ``state``, set ``finished``."""

    @abstractmethod
    def _sdk_cause(self, exc: Exception, *, streaming: bool) -> Cause | None:
        """The cause of an exception this SDK raised, or None if it is not the SDK's."""

    def _describe(self, exc: Exception, state: StreamState) -> str:
        """A one-line description of ``exc`` for the user."""
        detail = str(exc) or type(exc).__name__
        if state.started:
            detail += f" (after {len(state.parts)} deltas)"
        return detail

    def _error(self, model: str, cause: Cause, detail: str) -> ProviderError:
        return provider_error(
            provider=self.name,
            model=model,
            cause=cause,
            detail=detail,
            secrets=self.secrets,
            key_env=self.config.api_key_env,
            base_url=self.base_url,
        )


def _emitter(state: StreamState, on_delta: DeltaCallback | None) -> Callable[[str], None]:
    parts = state.parts
    if on_delta is None:
        return parts.append

    def emit(text: str) -> None:
        parts.append(text)
        on_delta(text)

    return emit
