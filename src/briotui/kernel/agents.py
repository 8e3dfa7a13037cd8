"""Finding agents: built-ins under ``agents/``, the user's under ``.brio/agents/``.

An agent is a directory ``<name>/`` holding either ``app.py`` (a Python agent, built
with componentize-py) or a prebuilt component named in its manifest (any toolchain:
the WIT contract, not the toolchain, is the API). ``agent.toml`` is optional::

    world = "reviewer"          # the WIT world: what the agent may import
    description = "Reviews a session's diff"
    security = "default"        # strict | default | relaxed: a preset of limits
    component = "agent.wasm"    # optional: a prebuilt component (.wasm or .wat)

    [limits]                    # optional overrides of single limits
    deadline_ms = 60000

A user agent with the same name as a built-in replaces it for that project. A broken
manifest does not hide the other agents: discovery reports it as a problem.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from briotui.kernel.errors import AgentNotFound, BuildError, ConfigError
from briotui.kernel.limits import Limits, SecurityLevel, limits_for
from briotui.kernel.paths import ProjectPaths, builtin_agents_dir, wit_dir

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
"""Agent names: lowercase, start with a letter, then letters, digits, ``-`` or ``_``."""

WIT_PACKAGE = "brio:agent"
WIT_VERSION = "0.1.0"

Origin = Literal["builtin", "user"]


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


def _load_spec(directory: Path, origin: Origin, worlds: dict[str, frozenset[str]]) -> AgentSpec:
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
    security = data.get("security", "default")
    limits_table = data.get("limits", {})
    if not isinstance(limits_table, dict):
        raise BuildError(f"[limits] in {manifest} must be a table.", agent=name, file=str(manifest))
    try:
        limits = limits_for(str(security), limits_table, source=str(manifest))
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
    description = data.get("description", "")
    extra = directory / "wit"
    return AgentSpec(
        name=name,
        directory=directory,
        origin=origin,
        world=world,
        description=str(description),
        security=security,  # type: ignore[arg-type]  # validated by limits_for
        limits=limits,
        component_file=component_file,
        extra_wit=extra if extra.is_dir() else None,
    )


def discover(project: ProjectPaths | None, *, builtin: Path | None = None) -> Discovery:
    """Find the built-in agents and, if ``project`` is given, the project's own."""
    worlds = world_imports()
    agents: dict[str, AgentSpec] = {}
    problems: list[BuildError] = []
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
            try:
                spec = _load_spec(directory, origin, worlds)
            except BuildError as problem:
                agents.pop(directory.name, None)
                problems.append(problem)
                continue
            agents[spec.name] = spec
    return Discovery(agents=agents, problems=problems)
