"""Resource limits for one agent instance, and the named security levels that preset them.

A level (``strict``, ``default``, ``relaxed``) is a named set of limits; an agent's
``agent.toml`` picks a level and may override single limits (a project's own agent
only downwards: see :mod:`briotui.kernel.agents`). Every limit has a sane default so a
user agent with no manifest still runs bounded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from briotui.kernel.errors import ConfigError

SecurityLevel = Literal["strict", "default", "relaxed"]

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What one agent run may use.

    Attributes:
        memory_bytes: Cap on each linear memory of the instance.
        fuel: Instruction budget per run (wasmtime fuel units).
        deadline_ms: Wall-clock deadline per run, enforced by epoch interruption.
        host_call_timeout_ms: A single host call (a model request, a prompt) is cut off
            after this long; time in host calls escapes fuel and epochs.
        max_message_bytes: Largest argument into or result out of the agent (the task,
            the outcome, a file read, a model reply).
        log_bytes: How much of the agent's stdout/stderr/log is kept (the tail).
    """

    memory_bytes: int = 512 * MIB
    fuel: int = 20_000_000_000
    deadline_ms: int = 120_000
    host_call_timeout_ms: int = 120_000
    max_message_bytes: int = 4 * MIB
    log_bytes: int = 64 * 1024

    def with_overrides(self, overrides: Mapping[str, Any], *, source: str) -> Limits:
        """A copy with some limits replaced; unknown names or bad values raise ConfigError."""
        known = {f.name for f in fields(self)}
        changes: dict[str, int] = {}
        for key, value in overrides.items():
            name = key.replace("-", "_")
            if name not in known:
                raise ConfigError(
                    f"Unknown limit {key!r} in {source}. Known limits: {', '.join(sorted(known))}.",
                    title="Unknown agent limit",
                )
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(
                    f"Limit {key!r} in {source} must be a positive integer, not {value!r}.",
                    title="Invalid agent limit",
                )
            changes[name] = value
        return replace(self, **changes)


LEVELS: dict[SecurityLevel, Limits] = {
    "strict": Limits(
        memory_bytes=128 * MIB,
        fuel=5_000_000_000,
        deadline_ms=30_000,
        host_call_timeout_ms=60_000,
        max_message_bytes=1 * MIB,
        log_bytes=16 * 1024,
    ),
    "default": Limits(),
    "relaxed": Limits(
        memory_bytes=1024 * MIB,
        fuel=200_000_000_000,
        deadline_ms=600_000,
        host_call_timeout_ms=300_000,
        max_message_bytes=16 * MIB,
        log_bytes=256 * 1024,
    ),
}
"""The named presets. ``strict`` suits untrusted user agents; ``relaxed`` long jobs."""


def limits_for(level: str, overrides: Mapping[str, Any] | None = None, *, source: str) -> Limits:
    """The limits for a security level, with per-agent overrides applied.

    Raises:
        ConfigError: the level is unknown or an override is invalid.
    """
    if level not in LEVELS:
        raise ConfigError(
            f"Unknown security level {level!r} in {source}; use strict, default or relaxed.",
            title="Unknown security level",
        )
    base = LEVELS[level]
    return base.with_overrides(overrides or {}, source=source)
