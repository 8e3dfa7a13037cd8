"""The ``[mcp]`` settings: which MCP servers the project's agents may use, and how.

The shape (in ``.brio/config.toml``, applied only once the user trusts the project, or
in the user's own config)::

    [mcp]
    budget = 50                  # tool calls per task, all servers together
    max_result_bytes = 65536     # a result is cut to this size

    [mcp.servers.docs]
    command = ["python", "tools/docs_server.py"]   # stdio, started in the sandbox
    # url = "http://127.0.0.1:8000/mcp"            # or streamable HTTP
    env = ["DOCS_INDEX"]          # variables passed from briotui's environment
    network = false               # a stdio server gets no network unless true
    timeout_s = 30                # per call (and for starting)

    [mcp.servers.docs.arguments.search]           # constraints on one tool's arguments
    limit = { min = 1, max = 50 }
    lang = { values = ["en", "de"] }
    path = { paths = ["docs/**"] }

Which agent may call which tool is a grant like any other: ``[agents.smart] mcp =
["docs/*"]`` (``server/tool`` globs); any other call asks the user.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from briotui.kernel.caps.model import path_matches
from briotui.kernel.errors import ConfigError, McpRefused, PathRefused
from briotui.kernel.vfs.paths import DEFAULT_POLICY

DEFAULT_BUDGET = 50
DEFAULT_MAX_RESULT_BYTES = 64 * 1024
DEFAULT_TIMEOUT_S = 30.0
_SERVER_KEYS = frozenset({"command", "url", "env", "network", "timeout_s", "arguments"})


@dataclass(frozen=True)
class Constraint:
    """What one argument of a tool may be.

    Attributes:
        minimum: A lower bound for a number.
        maximum: An upper bound for a number.
        values: The only values allowed (compared as JSON values).
        paths: Path globs the argument (a path, checked by the one path validator)
            must match.
    """

    minimum: float | None = None
    maximum: float | None = None
    values: tuple[Any, ...] | None = None
    paths: tuple[str, ...] | None = None

    def check(self, name: str, value: Any) -> None:
        """Raise :class:`McpRefused` when ``value`` is outside this constraint."""
        if self.minimum is not None or self.maximum is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise McpRefused(f"Argument {name!r} must be a number.")
            if not math.isfinite(value) or (
                (self.minimum is not None and value < self.minimum)
                or (self.maximum is not None and value > self.maximum)
            ):
                raise McpRefused(
                    f"Argument {name!r} = {value!r} is outside its allowed range "
                    f"[{self.minimum}, {self.maximum}] set in [mcp]."
                )
        if self.values is not None and value not in self.values:
            raise McpRefused(
                f"Argument {name!r} = {value!r} is not one of the allowed values "
                f"{list(self.values)!r} set in [mcp]."
            )
        if self.paths is not None:
            if not isinstance(value, str):
                raise McpRefused(f"Argument {name!r} must be a path.")
            try:
                rel = DEFAULT_POLICY.normalize(value)
            except PathRefused as exc:
                raise McpRefused(f"Argument {name!r}: {exc.message}") from None
            if not any(path_matches(glob, rel) for glob in self.paths):
                raise McpRefused(
                    f"Argument {name!r} = {value!r} is outside the paths allowed for it "
                    f"({', '.join(self.paths)}) in [mcp]."
                )


@dataclass(frozen=True)
class ServerConfig:
    """One ``[mcp.servers.NAME]`` table.

    Attributes:
        name: The server's name (the ``server`` of ``server/tool``).
        command: Program and arguments of a stdio server (empty for HTTP).
        url: The streamable HTTP endpoint ("" for stdio).
        env: Names of variables passed from briotui's environment.
        network: Whether a stdio server may use the network.
        timeout_s: Time limit of one call, and of starting the server.
        arguments: Constraints per tool, per argument.
        source: The file it was read from.
    """

    name: str
    command: tuple[str, ...] = ()
    url: str = ""
    env: tuple[str, ...] = ()
    network: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
    arguments: Mapping[str, Mapping[str, Constraint]] = field(default_factory=dict)
    source: str = ""

    def check_arguments(self, tool: str, arguments: Mapping[str, Any]) -> None:
        """Raise :class:`McpRefused` when an argument is outside its constraint."""
        for name, constraint in self.arguments.get(tool, {}).items():
            if name in arguments:
                constraint.check(name, arguments[name])


@dataclass(frozen=True)
class McpSettings:
    """The whole ``[mcp]`` table.

    Attributes:
        servers: The servers, by name.
        budget: Tool calls one task may make.
        max_result_bytes: A result is cut to this many bytes.
    """

    servers: Mapping[str, ServerConfig] = field(default_factory=dict)
    budget: int = DEFAULT_BUDGET
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES


def _bad(where: str, what: str) -> ConfigError:
    return ConfigError(
        f"{what} in {where}. See the [mcp] example in the README.", title="Invalid [mcp] settings"
    )


def _constraint(value: Any, where: str) -> Constraint:
    if not isinstance(value, dict) or not set(value) <= {"min", "max", "values", "paths"}:
        raise _bad(where, f"{where.split(' ')[0]} must be a table of min, max, values, paths")
    for key in ("min", "max"):
        if key in value and (
            isinstance(value[key], bool) or not isinstance(value[key], int | float)
        ):
            raise _bad(where, f"{key} must be a number")
    values = value.get("values")
    paths = value.get("paths")
    if values is not None and not isinstance(values, list):
        raise _bad(where, "values must be a list")
    if paths is not None and (
        not isinstance(paths, list) or not all(isinstance(p, str) for p in paths)
    ):
        raise _bad(where, "paths must be a list of globs")
    return Constraint(
        minimum=value.get("min"),
        maximum=value.get("max"),
        values=tuple(values) if values is not None else None,
        paths=tuple(paths) if paths is not None else None,
    )


def _server(name: str, table: Any, source: str) -> ServerConfig:
    where = f"[mcp.servers.{name}] in {source}"
    if not isinstance(table, dict):
        raise _bad(source, f"[mcp.servers.{name}] must be a table")
    unknown = set(table) - _SERVER_KEYS
    if unknown:
        raise _bad(where, f"unknown keys {sorted(unknown)} (use {', '.join(sorted(_SERVER_KEYS))})")
    command = table.get("command", [])
    url = table.get("url", "")
    if not isinstance(command, list) or not all(isinstance(a, str) and a for a in command):
        raise _bad(where, "command must be a list of strings (program, then arguments)")
    if not isinstance(url, str) or (url and not url.startswith(("http://", "https://"))):
        raise _bad(where, "url must be an http:// or https:// address")
    if bool(command) == bool(url):
        raise _bad(where, "give exactly one of command (stdio) or url (streamable HTTP)")
    env = table.get("env", [])
    if not isinstance(env, list) or not all(isinstance(e, str) for e in env):
        raise _bad(where, "env must be a list of variable names")
    network = table.get("network", False)
    timeout = table.get("timeout_s", DEFAULT_TIMEOUT_S)
    if not isinstance(network, bool):
        raise _bad(where, "network must be true or false")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise _bad(where, "timeout_s must be a positive number")
    raw_args = table.get("arguments", {})
    if not isinstance(raw_args, dict):
        raise _bad(where, "arguments must be a table of tools")
    arguments: dict[str, dict[str, Constraint]] = {}
    for tool, args in raw_args.items():
        if not isinstance(args, dict):
            raise _bad(where, f"arguments.{tool} must be a table of arguments")
        arguments[str(tool)] = {
            str(arg): _constraint(c, f"arguments.{tool}.{arg} ({where})") for arg, c in args.items()
        }
    return ServerConfig(
        name=name,
        command=tuple(command),
        url=url,
        env=tuple(env),
        network=network,
        timeout_s=float(timeout),
        arguments=arguments,
        source=source,
    )


def parse_mcp(layers: list[tuple[Mapping[str, Any], str]]) -> McpSettings:
    """The ``[mcp]`` settings from its tables, later layers over earlier ones.

    Args:
        layers: ``(mcp table, source file)`` pairs, the user's first.

    Raises:
        ConfigError: a table is malformed (naming the file and the key).
    """
    servers: dict[str, ServerConfig] = {}
    budget, max_bytes = DEFAULT_BUDGET, DEFAULT_MAX_RESULT_BYTES
    for table, source in layers:
        if not isinstance(table, dict):
            raise _bad(source, "[mcp] must be a table")
        # clients_may_commit is read by `briotui mcp`, from the user's own config only
        unknown = set(table) - {"servers", "budget", "max_result_bytes", "clients_may_commit"}
        if unknown:
            raise _bad(source, f"unknown [mcp] keys {sorted(unknown)}")
        for key in ("budget", "max_result_bytes"):
            value = table.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise _bad(source, f"[mcp] {key} must be a whole number")
        budget = table.get("budget", budget)
        max_bytes = table.get("max_result_bytes", max_bytes)
        raw = table.get("servers", {})
        if not isinstance(raw, dict):
            raise _bad(source, "[mcp.servers] must be a table of servers")
        for name, server in raw.items():
            if not name or "/" in name:
                raise _bad(source, f"the server name {name!r} must not be empty or contain '/'")
            servers[str(name)] = _server(str(name), server, source)
    return McpSettings(servers=servers, budget=budget, max_result_bytes=max_bytes)
