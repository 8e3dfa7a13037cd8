"""The provider-neutral shapes of a completion: request, reply, usage, and the Provider protocol.

Every provider (scripted, Anthropic, Ollama, OpenAI-compatible) implements
:class:`Provider`. The runtime's ``llm`` host import turns the guest's WIT record into a
:class:`CompletionRequest`, awaits :meth:`Provider.complete` on the event loop, and
hands the :class:`Completion` back to the guest. Text deltas go to ``on_delta`` as they
arrive so the UI and the transcript store can stream them.

Tools. A request may offer :class:`ToolSpec` s, and its conversation may hold the
assistant's :class:`ToolCall` s and the agent's :class:`ToolResult` s. These shapes are
the vendors' common ground, so a conversation started on one vendor continues on
another after a fallback: each provider writes them in its own wire format. A provider
that does not support tools sends the conversation as text instead
(:func:`briotui.kernel.llm.tools.as_text_request`) and says so in
:attr:`Completion.tools_offered`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ToolSpec:
    """A tool offered to the model.

    Attributes:
        name: The tool's name (letters, digits, ``_``, ``-``).
        description: What it does, for the model.
        parameters: The JSON Schema of its arguments object, as JSON text.
    """

    name: str
    description: str
    parameters: str = '{"type": "object", "properties": {}}'


@dataclass(frozen=True)
class ToolCall:
    """A tool call the model made.

    Attributes:
        id: The call's id (the vendor's, or made up for a vendor that has none).
        name: The tool called.
        arguments: The arguments object, as JSON text.
    """

    id: str
    name: str
    arguments: str = "{}"


@dataclass(frozen=True)
class ToolResult:
    """What running a tool call gave, for the model.

    Attributes:
        call_id: The id of the call it answers.
        name: The tool's name.
        content: The result's text.
        is_error: Whether the call failed (the model reads ``content`` for why).
    """

    call_id: str
    name: str
    content: str
    is_error: bool = False


@dataclass(frozen=True)
class Message:
    """One message of a conversation.

    Attributes:
        role: Who speaks.
        content: The text.
        tool_calls: In an assistant message: the tool calls it made.
        tool_results: In a user message: the results of the previous message's calls.
    """

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_results: tuple[ToolResult, ...] = ()


@dataclass(frozen=True)
class CompletionRequest:
    """What an agent asks a model for.

    Attributes:
        messages: The conversation so far.
        max_tokens: Upper bound on the reply, or None for the provider's default.
        temperature: Sampling temperature, or None for the provider's default.
        stop: Stop sequences.
        purpose: Why the agent asks, shown beside the streamed reply.
        agent: The asking agent's name (for routing a model per role, and accounting).
        task_id: The task the request belongs to (for accounting and cancellation).
        session_id: The session the request belongs to (for accounting).
        model: Ask for this model, overriding the provider's or the role's default.
        tools: The tools offered; empty for a plain completion.
    """

    messages: tuple[Message, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    stop: tuple[str, ...] = ()
    purpose: str = ""
    agent: str = ""
    task_id: str = ""
    session_id: str = ""
    model: str = ""
    tools: tuple[ToolSpec, ...] = ()

    def text_size(self) -> int:
        """Characters in the conversation, tool calls and results included."""
        size = 0
        for m in self.messages:
            size += len(m.content)
            size += sum(len(c.arguments) + len(c.name) for c in m.tool_calls)
            size += sum(len(r.content) for r in m.tool_results)
        return size + sum(len(t.parameters) + len(t.description) for t in self.tools)


@dataclass(frozen=True)
class FailedAttempt:
    """One attempt at a request that failed (the router then retried or fell back).

    Attributes:
        provider: The provider asked.
        model: The model asked for.
        cause: The failure's kind (a ProviderError cause: "overloaded", "timeout", ...).
        message: What went wrong, for the user.
        streamed: Whether the attempt had streamed text before it failed.
    """

    provider: str
    model: str
    cause: str
    message: str
    streamed: bool = False


@dataclass(frozen=True)
class Usage:
    """Tokens as counted by the provider that answered."""

    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )


StopReason = Literal["end", "max-tokens", "stop-sequence", "tool-use"]


@dataclass(frozen=True)
class Completion:
    """A complete reply, with its provenance.

    Attributes:
        text: The reply's full text.
        provider: Which provider answered ("scripted", "anthropic", ...).
        model: Which model answered.
        usage: Tokens in and out.
        stop_reason: Why the reply ended.
        cost_usd: The cost from the price table, or None when the model has no price.
        request_id: The router's id for this request (matches its stream events).
        failed_attempts: What was tried before this answer and why it failed, e.g.
            ``("anthropic/claude-sonnet-4-5: overloaded",)``.
        tool_calls: The tool calls the model made (its ``stop_reason`` is "tool-use").
        tools_offered: Whether the request's tools reached the model natively; False
            when the request offered none or the provider does not support tools.
    """

    text: str
    provider: str
    model: str
    usage: Usage = field(default_factory=Usage)
    stop_reason: StopReason = "end"
    cost_usd: float | None = None
    request_id: str = ""
    failed_attempts: tuple[str, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tools_offered: bool = False


DeltaCallback = Callable[[str], None]
"""Receives each text delta of a streamed reply, in order, on the event loop."""


@runtime_checkable
class Provider(Protocol):
    """A source of completions.

    Implementations raise :class:`briotui.kernel.errors.ProviderError` on failure,
    with ``retryable`` set when trying again or falling back may help. Cancelling the
    awaiting task cancels the request in flight.
    """

    name: str
    """The provider's name, e.g. "anthropic"; shown in the UI and recorded per reply."""

    async def complete(
        self, request: CompletionRequest, on_delta: DeltaCallback | None = None
    ) -> Completion:
        """Answer ``request``, streaming deltas to ``on_delta`` as they arrive."""
        ...
