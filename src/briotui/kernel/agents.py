"""Finding agents: built-ins under ``agents/``, the user's under ``.brio/agents/``.

An agent is a directory ``<name>/`` holding either ``app.py`` (a Python agent, built
with componentize-py) or a prebuilt component named in its manifest (any toolchain:
the WIT contract, not the toolchain, is the API). ``agent.toml`` is optional::

    world = "reviewer"          # the WIT world: what the agent may import
    description = "Reviews a session's diff"
    security = "default"        # strict | default | relaxed: a preset of limits
    component = "agent.wasm"    # optional: a prebuilt component (.wasm or .wat)
    build = "own"               # optional: build app.py into a component of its own
                                # (default: the shared Python runtime of its world runs
                                # it when it can, and edits need no build)

    [limits]                    # optional overrides of single limits
    deadline_ms = 60000

A project's agents (``.brio/agents/``) come with the project, which may be someone
else's: their manifests may only *lower* what they get. ``security`` may be made
stricter than ``default`` and each limit lower than its default, never the other way.
Raising them is the user's decision, made in the user's own config
(``config.toml`` in :func:`~briotui.kernel.paths.user_config_dir`)::

    [agents.NAME]
    security = "relaxed"        # the most this agent's manifest may ask for
    memory_bytes = 2147483648   # any limit: the agent's new ceiling (and default)

A built-in's manifest ships with briotui and is trusted; the user's config may change
its limits too. A project agent with the name of a built-in is refused (the built-in
stays): it would otherwise inherit the built-in's grants. A broken manifest does not
hide the other agents: discovery reports it as a problem.
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from briotui.kernel.configfile import read_config_file
from briotui.kernel.errors import AgentNotFound, BuildError, ConfigError
from briotui.kernel.limits import LEVELS, Limits, SecurityLevel, limits_for
from briotui.kernel.paths import ProjectPaths, builtin_agents_dir, user_config_dir, wit_dir

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
"""Agent names: lowercase, start with a letter, then letters, digits, ``-`` or ``_``."""

WIT_PACKAGE = "brio:agent"
WIT_VERSION = "0.1.0"

Origin = Literal["builtin", "user"]
BuildMode = Literal["auto", "own"]

_STRICTNESS: dict[str, int] = {"strict": 0, "default": 1, "relaxed": 2}
_LIMIT_NAMES = frozenset(f.name for f in fields(Limits))

TrustedSettings = Mapping[str, Mapping[str, Any]]
"""Per agent name, what the user allowed it in their own config: ``security`` and
single limits."""


def user_config_file() -> Path:
    """The user's own config file, where raising an agent's limits is allowed."""
    return user_config_dir() / "config.toml"


def trusted_agent_settings(user: Mapping[str, Any]) -> TrustedSettings:
    """The ``[agents.NAME]`` limit settings of the user's own (parsed) config.

    Only ``security`` and limit names are read here; other keys of those tables
    (grants, say) are someone else's business and are left alone.
    """
    data = user
    agents = data.get("agents", {})
    if not isinstance(agents, dict):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for name, table in agents.items():
        if isinstance(table, dict):
            picked = {
                k.replace("-", "_"): v
                for k, v in table.items()
                if k == "security" or k.replace("-", "_") in _LIMIT_NAMES
            }
            if picked:
                out[str(name)] = picked
    return out


@dataclass(frozen=True)
class AgentSpec:
    """Everything needed to build and run one agent.

    Attributes:
        name: The agent's name (its directory name).
        directory: Its source directory.
        origin: "builtin" (shipped) or "user" (``.brio/agents``).
        world: The WIT world it targets.
        description: One line for listings.
        security: The security level its limits start from.
        limits: Its effective limits.
        component_file: A prebuilt component (.wasm/.wat), or None for ``app.py``.
        extra_wit: The agent's own ``wit/`` directory, if it has one.
        build: "auto" (a Python agent runs on its world's shared runtime when it can)
            or "own" (``app.py`` is always built into a component of its own).
    """

    name: str
    directory: Path
    origin: Origin
    world: str
    description: str = ""
    security: SecurityLevel = "default"
    limits: Limits = field(default_factory=Limits)
    component_file: Path | None = None
    extra_wit: Path | None = None
    build: BuildMode = "auto"

    @property
    def manifest(self) -> Path:
        """The agent's ``agent.toml`` path (it may not exist)."""
        return self.directory / "agent.toml"


@dataclass(frozen=True)
class Discovery:
    """The result of looking for agents: the usable ones and the broken ones."""

    agents: dict[str, AgentSpec]
    problems: list[BuildError]

    def get(self, name: str) -> AgentSpec:
        """The agent called ``name``.

        Raises:
            AgentNotFound: no such agent (the message lists the known ones).
            BuildError: the agent exists but its manifest is broken.
        """
        if name in self.agents:
            return self.agents[name]
        for problem in self.problems:
            if problem.agent == name:
                raise problem
        known = ", ".join(sorted(self.agents)) or "none"
        raise AgentNotFound(
            f"There is no agent called {name!r}. Known agents: {known}. "
            "Add one under .brio/agents/<name>/app.py.",
        )


_WORLD_RE = re.compile(r"\bworld\s+([a-z][a-z0-9-]*)\s*\{(.*?)\}", re.S)
_IMPORT_RE = re.compile(r"^\s*import\s+([a-z][a-z0-9-]*)\s*;", re.M)


def world_imports(wit: Path | None = None) -> dict[str, frozenset[str]]:
    """Each world of the brio package and the brio interfaces it imports.

    Read from ``worlds.wit`` itself so the WIT stays the one source of truth (once per
    process: the shipped contract does not change while briotui runs).
    """
    return dict(_parse_worlds(wit or wit_dir()))


@functools.lru_cache(maxsize=4)
def _parse_worlds(directory: Path) -> tuple[tuple[str, frozenset[str]], ...]:
    text = (directory / "worlds.wit").read_text(encoding="utf-8")
    text = re.sub(r"//[^\n]*", "", text)
    return tuple(
        (name, frozenset(_IMPORT_RE.findall(body))) for name, body in _WORLD_RE.findall(text)
    )


def _load_spec(
    directory: Path,
    origin: Origin,
    worlds: dict[str, frozenset[str]],
    trusted: TrustedSettings | None = None,
) -> AgentSpec:
    name = directory.name
    manifest = directory / "agent.toml"
    data: dict[str, object] = {}
    if manifest.is_file():
        try:
            data = tomllib.loads(manifest.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise BuildError(
                f"{manifest} is not valid TOML: {exc}. Fix the file or delete it to use "
                "the defaults.",
                agent=name,
                file=str(manifest),
                title="Agent manifest does not parse",
            ) from None
    world = data.get("world", "minimal")
    if not isinstance(world, str) or world not in worlds:
        raise BuildError(
            f"{manifest} names world {world!r}; known worlds: {', '.join(sorted(worlds))}.",
            agent=name,
            file=str(manifest),
            title="Unknown agent world",
        )
    limits_table = data.get("limits", {})
    if not isinstance(limits_table, dict):
        raise BuildError(f"[limits] in {manifest} must be a table.", agent=name, file=str(manifest))
    allowed = dict((trusted or {}).get(name, {}))
    try:
        security, limits = _limits(
            name, origin, data.get("security"), limits_table, allowed, manifest
        )
    except ConfigError as exc:
        raise BuildError(exc.message, agent=name, file=str(manifest), title=exc.title) from None
    component = data.get("component")
    component_file: Path | None = None
    if component is not None:
        if not isinstance(component, str):
            raise BuildError(
                f"component in {manifest} must be a file name.", agent=name, file=str(manifest)
            )
        component_file = (directory / component).resolve()
        if directory.resolve() not in component_file.parents:
            raise BuildError(
                f"component {component!r} in {manifest} must be inside the agent's directory.",
                agent=name,
                file=str(manifest),
            )
    elif not (directory / "app.py").is_file():
        raise BuildError(
            f"{directory} has no app.py and its manifest names no component. Add app.py "
            '(a class Agent with run(task)) or set component = "file.wasm" in agent.toml.',
            agent=name,
            file=str(directory / "app.py"),
            title="Agent has no source",
        )
    build = data.get("build", "auto")
    if build not in ("auto", "own"):
        raise BuildError(
            f'build = {build!r} in {manifest} is unknown; use "own" (a component of its own) '
            "or leave it out (the shared Python runtime of its world, when it can).",
            agent=name,
            file=str(manifest),
        )
    build_mode: BuildMode = "own" if build == "own" else "auto"
    description = data.get("description", "")
    extra = directory / "wit"
    return AgentSpec(
        name=name,
        directory=directory,
        origin=origin,
        world=world,
        description=str(description),
        security=security,
        limits=limits,
        component_file=component_file,
        extra_wit=extra if extra.is_dir() else None,
        build=build_mode,
    )


def _level(value: object, where: str) -> SecurityLevel:
    if value not in LEVELS:
        raise ConfigError(
            f"Unknown security level {value!r} in {where}; use strict, default or relaxed.",
            title="Unknown security level",
        )
    level: SecurityLevel = value
    return level


def _limits(
    name: str,
    origin: Origin,
    asked_level: object,
    asked: Mapping[str, Any],
    allowed: Mapping[str, Any],
    manifest: Path,
) -> tuple[SecurityLevel, Limits]:
    """An agent's security level and limits: its manifest's, within what it may ask.

    A built-in's manifest is trusted; a project agent's may only lower the defaults
    (or what the user allowed it in their own config).

    Raises:
        ConfigError: a value is invalid, or a project agent asks for more than it may.
    """
    config = user_config_file()
    user_level = allowed.get("security")
    user_limits = {k: v for k, v in allowed.items() if k != "security"}
    if origin == "builtin":
        level = _level(user_level or asked_level or "default", str(manifest))
        base = limits_for(level, asked, source=str(manifest))
        return level, base.with_overrides(user_limits, source=str(config))
    ceiling_level = _level(user_level or "default", str(config))
    level = _level(asked_level or ceiling_level, str(manifest))
    how = f"add it to {config} under [agents.{name}]"
    if _STRICTNESS[level] > _STRICTNESS[ceiling_level]:
        raise ConfigError(
            f'security = "{level}" in {manifest} is less strict than {ceiling_level!r}, '
            "the most a project's own agent may ask for: its manifest may only make it "
            f'stricter. If you trust this agent, {how}: security = "{level}".',
            title="Agent asks for more than it may",
        )
    ceiling = LEVELS[ceiling_level].with_overrides(user_limits, source=str(config))
    limits = LEVELS[level].with_overrides(user_limits, source=str(config))
    limits = limits.with_overrides(asked, source=str(manifest))
    for key in asked:
        field_name = key.replace("-", "_")
        value, most = getattr(limits, field_name), getattr(ceiling, field_name)
        if value > most:
            raise ConfigError(
                f"{key} = {value} in {manifest} is above {most}, the most this project "
                "agent may have: an agent's own manifest may only lower its limits. If "
                f"you trust this agent, {how}: {field_name} = {value}.",
                title="Agent asks for more than it may",
            )
    return level, limits


def discover(
    project: ProjectPaths | None,
    *,
    builtin: Path | None = None,
    trusted: TrustedSettings | None = None,
) -> Discovery:
    """Find the built-in agents and, if ``project`` is given, the project's own.

    Args:
        project: The project whose ``.brio/agents`` to look in (None for built-ins only).
        builtin: Where the built-in agents are (default: the shipped ones).
        trusted: What the user allowed each agent in their own config (default: read
            from :func:`user_config_file`).
    """
    worlds = world_imports()
    agents: dict[str, AgentSpec] = {}
    problems: list[BuildError] = []
    if trusted is None:
        try:
            trusted = trusted_agent_settings(read_config_file(user_config_file()))
        except ConfigError as exc:
            trusted = {}
            problems.append(
                BuildError(
                    exc.message + " Agents run with their default limits until it is fixed.",
                    agent="*",
                    file=str(user_config_file()),
                    title="User config does not parse",
                )
            )
    builtin_names: set[str] = set()
    roots: list[tuple[Path, Origin]] = [(builtin or builtin_agents_dir(), "builtin")]
    if project is not None:
        roots.append((project.user_agents, "user"))
    for root, origin in roots:
        if not root.is_dir():
            continue
        for directory in sorted(p for p in root.iterdir() if p.is_dir()):
            if directory.name.startswith((".", "_")) or directory.name == "__pycache__":
                continue
            if not NAME_RE.match(directory.name):
                problems.append(
                    BuildError(
                        f"{directory.name!r} is not a valid agent name: use lowercase letters, "
                        "digits, '-' and '_', starting with a letter.",
                        agent=directory.name,
                        file=str(directory),
                        title="Invalid agent name",
                    )
                )
                continue
            if origin == "user" and (linked := _symlink_problem(directory)) is not None:
                problems.append(linked)
                continue
            if origin == "builtin":
                builtin_names.add(directory.name)  # even if its manifest is broken
            elif directory.name in builtin_names:
                problems.append(
                    BuildError(
                        f"{directory} has the name of the built-in agent {directory.name!r}; "
                        "it was ignored and the built-in kept (a project agent must not "
                        "take over a built-in and its grants). Rename the directory, e.g. "
                        f"to {directory.parent / ('my-' + directory.name)}.",
                        agent=directory.name,
                        file=str(directory),
                        title="Agent name taken by a built-in",
                    )
                )
                continue
            try:
                spec = _load_spec(directory, origin, worlds, trusted)
            except BuildError as problem:
                problems.append(problem)
                continue
            agents[spec.name] = spec
    return Discovery(agents=agents, problems=problems)


def _symlink_problem(directory: Path) -> BuildError | None:
    """Why a project agent's directory is refused for a symlink, or None.

    The trust digest hashes a symlink's target text, never what it points at, while
    the build would follow it: code outside ``.brio/agents/`` could then change after
    the user trusted the project without a new prompt. So a project agent may neither
    be a symlink nor hold one.
    """
    found = [directory] if directory.is_symlink() else []
    if not found:
        for root, dirs, files in os.walk(directory, followlinks=False):
            found += [Path(root) / n for n in (*dirs, *files) if (Path(root) / n).is_symlink()]
            if found:
                break
    if not found:
        return None
    where = found[0]
    return BuildError(
        f"{where} is a symlink. A project agent's files must be real files inside "
        f"{directory.parent} (what the project's trust covers); replace the link with "
        "a copy of the file or directory.",
        agent=directory.name,
        file=str(where),
        title="Symlink in a project agent",
    )
