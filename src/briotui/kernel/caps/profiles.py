"""Default grants per built-in agent, and the project's overrides from ``.brio/config.toml``.

The config shape (each key optional; a listed agent's keys replace its defaults)::

    [agents.coder]
    read = ["**"]                 # path globs the agent may read in its session
    write = ["src/**", "tests/**"]
    shell = ["pytest *"]          # argv patterns
    sql = true                    # a private SQL scratch space
    mesh = ["foreman"]            # agents it may message
    mcp = ["docs/*"]              # MCP tools (server/tool globs) it may call

A user agent without an entry has no grants: everything it asks for is prompted (or
denied headless). The same tables also hold an agent's ``security`` level and limits
(``deadline_ms = 600000``, read by :mod:`briotui.kernel.agents`); a table with only those
leaves the agent's grants as they were. The user's config may hold ``[agents.*]`` too;
the project's apply only once the user trusts the project (see
:mod:`briotui.kernel.settings`).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from briotui.kernel.caps.model import Capability, Grant, Source
from briotui.kernel.errors import ConfigError
from briotui.kernel.limits import Limits

if TYPE_CHECKING:
    from briotui.kernel.settings import Settings

_SHELL_DEFAULTS = [
    "pytest *",
    "python -m pytest *",
    "python -m unittest *",
    "ruff check *",
    "ruff format --check *",
    "git diff *",
    "git status *",
    "git log *",
]

DEFAULT_PROFILES: dict[str, dict[str, Any]] = {
    "echo": {},
    "probe": {},
    "council": {"read": ["**"], "mesh": ["*"]},
    # write: the Foreman's world cannot write; it holds the grant to pass it down to
    # its Coders (a subtask may only do what its parent may).
    "foreman": {"read": ["**"], "write": ["**"], "mesh": ["*"], "sql": True},
    "coder": {"read": ["**"], "write": ["**"], "mesh": ["foreman", "reviewer"]},
    "reviewer": {"read": ["**"], "mesh": ["foreman"]},
    "smart": {"read": ["**"], "write": ["**"], "shell": _SHELL_DEFAULTS, "sql": True},
}
"""What each built-in agent may do without asking."""


GRANT_KEYS = frozenset({"read", "write", "shell", "mesh", "sql", "mcp"})
"""The keys of an ``[agents.NAME]`` table that are grants."""

_SETTING_KEYS = frozenset({"security"} | {f.name for f in fields(Limits)})
"""The other keys such a table may hold: the agent's security level and limits."""


def _grants(agent: str, table: Mapping[str, Any], source: Source, where: str) -> list[Grant]:
    unknown = {k for k in table if k not in GRANT_KEYS and k.replace("-", "_") not in _SETTING_KEYS}
    if unknown:
        raise ConfigError(
            f"Unknown keys {sorted(unknown)} under [agents.{agent}] in {where}; use read, "
            "write, shell, sql, mesh, mcp (grants), security, or a limit such as deadline_ms.",
            title="Invalid agent grants",
        )
    grants: list[Grant] = []
    caps: tuple[Capability, ...] = ("read", "write", "shell", "mesh", "mcp")
    for cap in caps:
        value = table.get(cap, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(
                f"agents.{agent}.{cap} in {where} must be a list of strings.",
                title="Invalid agent grants",
            )
        grants += [
            Grant(f"{source}:{agent}:{cap}:{n}", agent, cap, pattern, source=source)
            for n, pattern in enumerate(value)
        ]
    sql = table.get("sql", False)
    if not isinstance(sql, bool):
        raise ConfigError(
            f"agents.{agent}.sql in {where} must be true or false.", title="Invalid agent grants"
        )
    if sql:
        grants.append(Grant(f"{source}:{agent}:sql", agent, "sql", "*", source=source))
    return grants


def build_profiles(layers: Sequence[tuple[Mapping[str, Any], str]]) -> dict[str, list[Grant]]:
    """Every agent's profile grants: the defaults, replaced per agent by each layer.

    Args:
        layers: ``[agents]`` tables and their sources, applied in order.

    Raises:
        ConfigError: an ``[agents]`` table is invalid.
    """
    profiles = {
        name: _grants(name, table, "profile", "the built-in profiles")
        for name, table in DEFAULT_PROFILES.items()
    }
    for agents, source in layers:
        if not isinstance(agents, Mapping):
            raise ConfigError(f"[agents] in {source} must be a table of agent tables.")
        for name, table in agents.items():
            if not isinstance(table, dict):
                raise ConfigError(f"[agents.{name}] in {source} must be a table.")
            grants = _grants(name, table, "config", source)
            if GRANT_KEYS & set(table):  # limits alone leave the grants as they were
                profiles[name] = grants
    return profiles


def profiles_from_settings(settings: Settings) -> dict[str, list[Grant]]:
    """The grants the loaded settings give (the project's only once it is trusted).

    Raises:
        ConfigError: an ``[agents]`` table is invalid.
    """
    profiles = build_profiles(settings.agents())
    from briotui.kernel.supervisor import test_command_of

    command = test_command_of(settings)
    if command is not None:  # the user's own test command: the Smart Agent runs it
        profiles.setdefault("smart", []).append(
            Grant(
                "config:smart:shell:tests", "smart", "shell", shlex.join(command), source="config"
            )
        )
    return profiles
