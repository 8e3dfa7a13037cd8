"""Every error the kernel raises, each with a title and a message that says what to do.

The tree::

    BrioError                      title + message; ``kind`` names it in JSON
    ├── ConfigError                a config file or setting is wrong
    ├── AgentNotFound              no agent of that name under agents/ or .brio/agents/
    ├── BuildError                 an agent could not be built (names agent, file, cause)
    │   ├── WitError               the WIT contract does not parse
    │   └── ComponentError         a .wasm is truncated, garbage, or imports what we lack
    ├── AgentError                 an agent run ended badly; the instance is discarded
    │   ├── AgentTimeout           past its wall-clock deadline (epoch interrupt)
    │   ├── FuelExhausted          past its fuel budget
    │   ├── MemoryLimit            past its memory limit
    │   ├── MessageTooLarge        an argument or a result over the size limit
    │   ├── CapabilityDenied       asked for something outside its grants
    │   ├── GuestPanic             the guest itself failed (carries its stderr tail)
    │   ├── GuestError             the guest returned an error value on purpose
    │   ├── HostError              the kernel failed while serving the agent
    │   └── AgentBusy              re-entry into an instance that is already running
    └── ProviderError              a model provider failed (names provider, model, cause)

Nothing here formats tracebacks: a user sees ``title`` and ``message``; logs keep the
rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class BrioError(Exception):
    """Base of every briotui error.

    Attributes:
        title: A short user-facing headline, e.g. "Agent ran out of time".
        message: What happened and what to do about it.
    """

    kind: str = "error"
    """A stable machine name for this class of error, used in ``--json`` output."""

    default_title: str = "briotui error"

    def __init__(self, message: str, *, title: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.title = title or self.default_title

    def to_dict(self) -> dict[str, Any]:
        """The error as a JSON-able mapping: ``kind``, ``title``, ``message``."""
        return {"kind": self.kind, "title": self.title, "message": self.message}

    def __str__(self) -> str:
        return f"{self.title}: {self.message}"


class ConfigError(BrioError):
    """A configuration file or setting is invalid."""

    kind = "config"
    default_title = "Configuration problem"


class AgentNotFound(BrioError):
    """No agent with that name exists."""

    kind = "agent-not-found"
    default_title = "No such agent"


class BuildError(BrioError):
    """An agent could not be built into a component.

    Attributes:
        agent: The agent's name.
        file: The file at fault, if known.
    """

    kind = "build"
    default_title = "Agent build failed"

    def __init__(
        self, message: str, *, agent: str, file: str | None = None, title: str | None = None
    ) -> None:
        super().__init__(message, title=title)
        self.agent = agent
        self.file = file

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(agent=self.agent, file=self.file)
        return data


class WitError(BuildError):
    """The WIT contract an agent builds against does not parse or resolve."""

    kind = "wit"
    default_title = "WIT contract does not parse"


class ComponentError(BuildError):
    """A component file is unusable: truncated, not wasm, or imports unknown interfaces."""

    kind = "component"
    default_title = "Agent component is unusable"


class AgentError(BrioError):
    """An agent run ended with an error. The instance is discarded after a trap.

    Attributes:
        agent: The agent's name.
        stderr_tail: The last lines the guest wrote to stderr, if any.
    """

    kind = "agent"
    default_title = "Agent failed"

    def __init__(
        self,
        message: str,
        *,
        agent: str = "",
        title: str | None = None,
        stderr_tail: str = "",
    ) -> None:
        super().__init__(message, title=title)
        self.agent = agent
        self.stderr_tail = stderr_tail

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["agent"] = self.agent
        if self.stderr_tail:
            data["stderr_tail"] = self.stderr_tail
        return data


class AgentTimeout(AgentError):
    """The agent ran past its wall-clock deadline and was interrupted."""

    kind = "timeout"
    default_title = "Agent ran out of time"


class FuelExhausted(AgentError):
    """The agent used up its fuel (its instruction budget)."""

    kind = "fuel"
    default_title = "Agent ran out of fuel"


class MemoryLimit(AgentError):
    """The agent tried to grow its memory past its limit."""

    kind = "memory"
    default_title = "Agent hit its memory limit"


class MessageTooLarge(AgentError):
    """A message into or out of the agent is over the size limit."""

    kind = "too-large"
    default_title = "Message too large"


class CapabilityDenied(AgentError):
    """The agent asked for something its capabilities do not allow."""

    kind = "denied"
    default_title = "Capability denied"


class GuestPanic(AgentError):
    """The guest code crashed (an exception it did not handle, an abort, a trap)."""

    kind = "panic"
    default_title = "Agent crashed"


class GuestError(AgentError):
    """The guest returned an error value: it ran, and reports that it failed."""

    kind = "guest-error"
    default_title = "Agent reported a failure"


class HostError(AgentError):
    """The kernel failed while serving an agent's call."""

    kind = "host"
    default_title = "Kernel error while serving an agent"


class AgentBusy(AgentError):
    """A call tried to enter an agent instance that is already running."""

    kind = "busy"
    default_title = "Agent is busy"


class ProviderError(BrioError):
    """A model provider failed.

    Attributes:
        provider: The provider's name, e.g. "anthropic".
        model: The model asked for.
        cause: A short machine name for the cause: "auth", "not-found",
            "rate-limit", "server", "connection", "timeout", "bad-request",
            "malformed", "exhausted", "cancelled".
        retryable: Whether trying again (or the next provider) may help.
    """

    kind = "provider"
    default_title = "Model provider failed"

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str = "",
        cause: str = "failed",
        retryable: bool = False,
        title: str | None = None,
    ) -> None:
        super().__init__(message, title=title)
        self.provider = provider
        self.model = model
        self.cause = cause
        self.retryable = retryable

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(provider=self.provider, model=self.model, cause=self.cause)
        return data


@dataclass(frozen=True)
class ErrorInfo:
    """A plain, picklable description of an error, for events and JSON output."""

    kind: str
    title: str
    message: str

    @classmethod
    def of(cls, error: BrioError) -> ErrorInfo:
        """Describe ``error``."""
        return cls(kind=error.kind, title=error.title, message=error.message)
