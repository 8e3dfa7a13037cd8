"""The stream of reply events the router publishes, for the UI and the transcript store.

A reply's life, per request id::

    ReplyStarted(provider A)  ReplyDelta*  [ReplyReset  ReplyStarted(provider B)  ReplyDelta*]
    ...  ReplyFinished | ReplyFailed

A :class:`ReplyReset` means "the deltas since the last ReplyStarted were from an attempt
that failed: drop them". Only the deltas after the last ReplyStarted belong to the
answer; :class:`ReplyFinished` carries the complete text with its provenance, which is
what a transcript should store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from briotui.kernel.llm.types import Completion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplyStarted:
    """An attempt at answering began.

    Attributes:
        request_id: The router's id for the request.
        agent: The asking agent.
        task_id: The task it belongs to.
        session_id: The session it belongs to.
        provider: The provider asked.
        model: The model asked for.
        attempt: The attempt number, from 1, across retries and fallbacks.
        purpose: Why the agent asks.
    """

    request_id: str
    agent: str
    task_id: str
    session_id: str
    provider: str
    model: str
    attempt: int
    purpose: str = ""


@dataclass(frozen=True)
class ReplyDelta:
    """A piece of reply text, in order."""

    request_id: str
    text: str


@dataclass(frozen=True)
class ReplyReset:
    """The current attempt failed after streaming: discard its deltas.

    Attributes:
        request_id: The request.
        provider: The provider whose partial reply is discarded.
        model: Its model.
        cause: Why it failed (a ProviderError cause).
    """

    request_id: str
    provider: str
    model: str
    cause: str


@dataclass(frozen=True)
class ReplyFinished:
    """The reply is complete; ``completion`` names the provider and model that wrote it."""

    request_id: str
    completion: Completion


@dataclass(frozen=True)
class ReplyFailed:
    """No attempt succeeded, or the request was cancelled (``cause == "cancelled"``)."""

    request_id: str
    provider: str
    model: str
    cause: str
    message: str


ReplyEvent = ReplyStarted | ReplyDelta | ReplyReset | ReplyFinished | ReplyFailed
"""Any event of a reply's stream."""

Subscriber = Callable[[ReplyEvent], None]
"""Receives reply events on the event loop; must not block."""


class ReplyEvents:
    """Fans reply events out to subscribers; a failing subscriber is logged and skipped."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add ``subscriber``; returns a function that removes it again."""
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    @property
    def active(self) -> bool:
        """Whether anyone listens (the router skips building events otherwise)."""
        return bool(self._subscribers)

    def publish(self, event: ReplyEvent) -> None:
        """Deliver ``event`` to every subscriber, in subscription order."""
        for subscriber in tuple(self._subscribers):
            try:
                subscriber(event)
            except Exception:
                log.exception("reply event subscriber %r failed; event dropped for it", subscriber)
