"""The Ollama provider: ``/api/chat`` streamed as NDJSON, through the official ``ollama`` SDK.

The server's address is ``base_url`` when configured, else ``OLLAMA_HOST``, else
``http://127.0.0.1:11434``. Usage comes from the final line's ``prompt_eval_count`` and
``eval_count``. Local models cost nothing unless the config says otherwise.

Tools go as ``tools`` of type ``function``; the model's calls come whole in a line's
``message.tool_calls`` (name and an arguments object, no id: the provider numbers
them), and each result goes back as a ``role: "tool"`` message with its ``tool_name``.
A model the server says "does not support tools" is sent text from then on.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Callable
from typing import Any, cast

import ollama

from briotui.kernel.errors import ProviderError
from briotui.kernel.llm.config import DEFAULT_OLLAMA_HOST, ProviderConfig
from briotui.kernel.llm.failures import Cause, cause_of_status
from briotui.kernel.llm.streaming import StreamingProvider, StreamState
from briotui.kernel.llm.tools import arguments_object, arguments_text, schema_object
from briotui.kernel.llm.types import CompletionRequest, StopReason, ToolCall, Usage

_STOP_REASONS: dict[str, StopReason] = {"stop": "end", "length": "max-tokens"}


def wire_messages(request: CompletionRequest) -> list[dict[str, Any]]:
    """The messages in ``/api/chat``'s shape: tool calls and ``role: "tool"`` results."""
    out: list[dict[str, Any]] = []
    for m in request.messages:
        for r in m.tool_results:
            out.append(
                {
                    "role": "tool",
                    "tool_name": r.name,
                    "content": ("Error: " if r.is_error else "") + r.content,
                }
            )
        if m.tool_calls:
            out.append(
                {
                    "role": "assistant",
                    "content": m.content,
                    "tool_calls": [
                        {"function": {"name": c.name, "arguments": arguments_object(c.arguments)}}
                        for c in m.tool_calls
                    ],
                }
            )
        elif m.content or not m.tool_results:
            out.append({"role": m.role, "content": m.content})
    return out


class OllamaProvider(StreamingProvider):
    """Streams chat replies from an Ollama server.

    Args:
        config: The provider's settings (``kind = "ollama"``).
        api_key: Unused by a local Ollama; kept for the common constructor.
        host: The server address when ``config.base_url`` is unset (``OLLAMA_HOST``).
    """

    kind = "ollama"

    def __init__(
        self, config: ProviderConfig, api_key: str | None = None, *, host: str | None = None
    ) -> None:
        super().__init__(config, api_key)
        self._host = config.base_url or host or DEFAULT_OLLAMA_HOST
        self._client: ollama.AsyncClient | None = None

    @property
    def base_url(self) -> str:
        return self._host

    @property
    def client(self) -> ollama.AsyncClient:
        """The SDK client, made on first use and reused (one connection pool)."""
        if self._client is None:
            self._client = ollama.AsyncClient(
                host=self._host, timeout=self.config.read_timeout_s or None
            )
            if self.config.project_endpoint:
                # The SDK adds $OLLAMA_API_KEY to every request; never to a URL the
                # project's config chose.
                self._client._client.headers.pop("authorization", None)
        return self._client

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client._client.aclose()
            self._client = None

    async def _stream(
        self,
        request: CompletionRequest,
        model: str,
        state: StreamState,
        emit: Callable[[str], None],
    ) -> None:
        options: dict[str, Any] = {}
        if request.max_tokens is not None:
            options["num_predict"] = request.max_tokens
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.stop:
            options["stop"] = list(request.stop)
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
        parts = await self.client.chat(
            model=model,
            messages=wire_messages(request),
            tools=tools or None,
            stream=True,
            options=options or None,
        )
        # The SDK hands back an async generator; close it so a cancelled request's
        # connection is closed at once rather than when the generator is collected.
        stream = cast(AsyncGenerator[ollama.ChatResponse, None], parts)
        try:
            async for part in stream:
                if part.model:
                    state.model = part.model
                if part.message.content:
                    emit(part.message.content)
                for call in part.message.tool_calls or ():
                    state.tool_calls.append(
                        ToolCall(
                            f"call_{uuid.uuid4().hex[:12]}",
                            call.function.name,
                            arguments_text(dict(call.function.arguments)),
                        )
                    )
                if part.done:
                    state.finished = True
                    state.usage = Usage(part.prompt_eval_count or 0, part.eval_count or 0)
                    state.stop_reason = _STOP_REASONS.get(part.done_reason or "stop", "end")
        finally:
            await stream.aclose()

    def _sdk_cause(self, exc: Exception, *, streaming: bool) -> Cause | None:
        if isinstance(exc, ollama.ResponseError):
            if exc.status_code > 0:
                return cause_of_status(exc.status_code)
            text = str(exc.error).lower()
            if "busy" in text or "overloaded" in text:
                return "overloaded"
            if "not found" in text:
                return "not-found"
            return "server"
        if isinstance(exc, ollama.RequestError):
            return "bad-request"
        return None

    def _refuses_tools(self, error: ProviderError) -> bool:
        return "does not support tools" in error.message

    def _describe(self, exc: Exception, state: StreamState) -> str:
        if isinstance(exc, ollama.ResponseError):
            status = f"HTTP {exc.status_code}: " if exc.status_code > 0 else ""
            return status + str(exc.error)
        return super()._describe(exc, state)
