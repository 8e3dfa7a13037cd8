"""The provider-neutral shapes of a completion: request, reply, usage, and the Provider protocol.

Every provider (scripted, Anthropic, Ollama, OpenAI-compatible) implements
:class:`Provider`. The runtime's ``llm`` host import turns the guest's WIT record into a
:class:`CompletionRequest`, awaits :meth:`Provider.complete` on the event loop, and
hands the :class:`Completion` back to the guest. Text deltas go to ``on_delta`` as they
arrive so the UI and the transcript store can stream them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    """One message of a conversation."""

    role: Role
    content: str


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


StopReason = Literal["end", "max-tokens", "stop-sequence"]


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
    """

    text: str
    provider: str
    model: str
    usage: Usage = field(default_factory=Usage)
    stop_reason: StopReason = "end"
    cost_usd: float | None = None
    request_id: str = ""
    failed_attempts: tuple[str, ...] = ()


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
