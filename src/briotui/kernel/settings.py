"""The one loader of briotui's configuration files, and the trust gate on the project's.

Two files configure briotui: the user's ``<user config dir>/config.toml`` (trusted: the
user wrote it) and the project's ``.brio/config.toml`` (written by whoever wrote the
repository). :func:`load_settings` reads both once into a frozen :class:`Settings`;
every module takes its section from there (``[llm]``, ``[shell]``, ``[agents]``,
``[tests]``, ``[pipeline]``, ``[ui]``) instead of parsing the files itself, so a bad
file gives one error (:class:`~briotui.kernel.errors.ConfigFileError`) with one text.

The project's sensitive settings (see :mod:`briotui.kernel.trust`) apply only once the
user trusts the project with exactly those settings; until then the project runs with
the user's settings and safe defaults, and harmless project settings (``[pipeline]``,
``[ui]``, ``[llm]`` retries and timeouts, chains over known providers) still apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from briotui.kernel.agents import TrustedSettings, trusted_agent_settings
from briotui.kernel.configfile import read_config_file
from briotui.kernel.errors import ConfigError
from briotui.kernel.paths import ProjectPaths, user_config_dir
from briotui.kernel.trust import (
    SPENDING_KEYS,
    TrustRequest,
    TrustStore,
    build_request,
    gated_chains,
)

if TYPE_CHECKING:
    from briotui.kernel.mcp.config import McpSettings
    from briotui.kernel.shell.runner import ShellSettings

_USER_SHELL_KEYS = frozenset({"sandbox", "unsandboxed"})
"""``[shell]`` keys only the user's config may set (the sandbox and unsandboxed runs)."""

BUILTIN_PROVIDERS = frozenset({"anthropic", "openai", "ollama"})
"""Providers known without any configuration (see ``llm.config.default_providers``)."""


def _table(data: Mapping[str, Any], name: str, source: Path) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] in {source} must be a table.", title="Invalid config")
    return value


def _user_providers(user: Mapping[str, Any]) -> set[str]:
    llm = user.get("llm")
    raw = llm.get("providers") if isinstance(llm, dict) else None
    return {
        str(p["name"])
        for p in (raw if isinstance(raw, list) else [])
        if isinstance(p, dict) and isinstance(p.get("name"), str)
    }


@dataclass(frozen=True)
class Settings:
    """The configuration of one briotui process, read once.

    Attributes:
        user_file: The user's config file (it may not exist).
        user: The user's parsed file.
        project_file: The project's ``.brio/config.toml``, or None without a project.
        project: The project's parsed file, as written (gated parts included).
        request: What the project asks for that needs trust.
        trusted: Whether the user trusted the project with exactly ``request``.
        agents_dir: The project's ``.brio/agents/``, or None.
        user_dir: The user's config dir (where trust decisions live).
    """

    user_file: Path
    user: Mapping[str, Any] = field(default_factory=dict)
    project_file: Path | None = None
    project: Mapping[str, Any] = field(default_factory=dict)
    request: TrustRequest = field(default_factory=TrustRequest)
    trusted: bool = False
    agents_dir: Path | None = None
    user_dir: Path = field(default_factory=user_config_dir)

    @property
    def applies(self) -> bool:
        """Whether the project's sensitive settings take effect (trusted, or none asked)."""
        return self.trusted or self.request.empty

    @property
    def ignored(self) -> list[str]:
        """The project's sensitive settings being ignored, one a line (empty if none)."""
        return [] if self.applies else self.request.lines()

    @property
    def known_providers(self) -> set[str]:
        """Providers defined without the project: built-in and the user's."""
        return set(BUILTIN_PROVIDERS) | _user_providers(self.user)

    def _project_section(self, name: str) -> dict[str, Any]:
        if self.project_file is None:
            return {}
        return _table(self.project, name, self.project_file)

    # -- sections ----------------------------------------------------------------------

    def llm_layers(self) -> list[tuple[Mapping[str, Any], str, bool]]:
        """The ``[llm]`` layers to apply in order: ``(document, source, is_project)``.

        The project's layer leaves out providers and the chains naming them unless the
        project is trusted.
        """
        layers: list[tuple[Mapping[str, Any], str, bool]] = [
            (self.user, str(self.user_file), False)
        ]
        if self.project_file is None or "llm" not in self.project:
            return layers
        llm = self._project_section("llm")
        if not self.applies:
            gated = gated_chains(llm, self.known_providers)
            llm = {k: v for k, v in llm.items() if k not in ("providers", *SPENDING_KEYS)}
            if "fallback" in gated:
                llm.pop("fallback", None)
            roles = llm.get("roles")
            if isinstance(roles, dict):
                llm["roles"] = {r: v for r, v in roles.items() if f"roles.{r}" not in gated}
        layers.append(({"llm": llm}, str(self.project_file), True))
        return layers

    def shell(self) -> dict[str, Any]:
        """The ``[shell]`` table: the user's allow rules, plus the project's when trusted.

        ``defaults = false`` (fewer commands) applies from either file.
        """
        user = {k: v for k, v in _table(self.user, "shell", self.user_file).items()
                if k not in _USER_SHELL_KEYS}  # fmt: skip
        project = self._project_section("shell")
        own = _USER_SHELL_KEYS & set(project)
        if own:
            raise ConfigError(
                f"[shell] {sorted(own)[0]} in {self.project_file} is a user setting: a "
                "project cannot turn the sandbox off or opt itself in to unsandboxed "
                "commands. Remove it there; set it in your user config if you mean it."
            )
        allow: list[Any] = list(user.get("allow", []) or [])
        if self.applies and "allow" in project:
            allow += project["allow"] if isinstance(project["allow"], list) else [project["allow"]]
        merged = {**user, **{k: v for k, v in project.items() if k != "allow"}}
        merged["allow"] = allow
        if "defaults" in user and user["defaults"] is False:
            merged["defaults"] = False
        return merged

    def shell_settings(self) -> ShellSettings:
        """The user's sandbox settings (``[shell] sandbox`` and ``unsandboxed``): only the
        user's file is read for them; a project cannot set them.

        Raises:
            ConfigError: they are malformed (naming the file).
        """
        from briotui.kernel.shell.runner import ShellSettings

        return ShellSettings.from_user_config(self.user, str(self.user_file))

    def agent_limits(self) -> TrustedSettings:
        """What the user's own config allows each agent beyond its manifest (limits and
        security level; a project's manifest may only lower them)."""
        return trusted_agent_settings(self.user)

    def agents(self) -> list[tuple[Mapping[str, Any], str]]:
        """The ``[agents]`` tables to apply in order: ``(table, source)``."""
        layers: list[tuple[Mapping[str, Any], str]] = [
            (_table(self.user, "agents", self.user_file), str(self.user_file))
        ]
        if self.applies and self.project_file is not None:
            layers.append((self._project_section("agents"), str(self.project_file)))
        return layers

    def tests_command(self) -> tuple[object, str]:
        """The raw ``[tests] command`` (None when unset or untrusted) and its source."""
        if self.applies and self.project_file is not None:
            tests = self._project_section("tests")
            return tests.get("command"), str(self.project_file)
        return None, ""

    def tests_fix_rounds(self) -> tuple[object, str]:
        """The raw ``[tests] fix_rounds`` (harmless: the project's applies untrusted too;
        else the user's) and its source; None when unset."""
        project = self._project_section("tests")
        if "fix_rounds" in project:
            return project["fix_rounds"], str(self.project_file)
        return _table(self.user, "tests", self.user_file).get("fix_rounds"), str(self.user_file)

    def pipeline(self) -> tuple[dict[str, Any], str]:
        """The ``[pipeline]`` table (harmless: the project's applies) and its source."""
        project = self._project_section("pipeline")
        if project:
            return project, str(self.project_file)
        return _table(self.user, "pipeline", self.user_file), str(self.user_file)

    def ui(self) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
        """The user's and the project's ``[ui]`` documents (harmless: both apply)."""
        return self.user, self.project

    def trusted_venv(self) -> Path | None:
        """The real path of the project's own virtualenv once the user trusted it, else
        None (an untrusted repository's ``.venv`` is never used: see
        :func:`briotui.kernel.shell.runner.project_env`)."""
        if self.trusted and self.request.venv is not None:
            return Path(self.request.venv.real)
        return None

    def mcp(self) -> McpSettings:
        """The ``[mcp]`` servers: the user's, plus the project's once it is trusted.

        Raises:
            ConfigError: an ``[mcp]`` table is malformed.
        """
        from briotui.kernel.mcp.config import parse_mcp

        layers: list[tuple[Mapping[str, Any], str]] = []
        if "mcp" in self.user:
            layers.append((self.user["mcp"], str(self.user_file)))
        if self.applies and self.project_file is not None and "mcp" in self.project:
            layers.append((self.project["mcp"], str(self.project_file)))
        return parse_mcp(layers)

    def user_agents_allowed(self) -> bool:
        """Whether the project's ``.brio/agents/`` may be used."""
        return self.applies


def load_settings(
    project: ProjectPaths | Path | str | None = None,
    *,
    user_dir: Path | None = None,
    user_file: Path | None = None,
) -> Settings:
    """Read the user's and the project's config files once.

    Args:
        project: The project (its ``.brio/config.toml`` and ``.brio/agents/``), or None.
        user_dir: The user's config dir (``user_config_dir()`` by default); trust
            decisions are kept there.
        user_file: The user's config file; ``<user_dir>/config.toml`` by default.

    Raises:
        ConfigFileError: a file cannot be read or is not valid TOML.
        ConfigError: the trust file is unreadable.
    """
    directory = user_dir or user_config_dir()
    file = user_file or directory / "config.toml"
    user = read_config_file(file)
    if project is None:
        return Settings(user_file=file, user=user, user_dir=directory)
    paths = project if isinstance(project, ProjectPaths) else ProjectPaths.at(project)
    data = read_config_file(paths.config_file)
    partial = Settings(user_file=file, user=user, user_dir=directory)
    request = build_request(data, paths.user_agents, partial.known_providers, root=paths.root)
    trusted = not request.empty and TrustStore(directory).is_trusted(paths.root, request.digest)
    return Settings(
        user_file=file,
        user=user,
        project_file=paths.config_file,
        project=data,
        request=request,
        trusted=trusted,
        agents_dir=paths.user_agents,
        user_dir=directory,
    )


def trust_project(project: ProjectPaths | Path | str, *, user_dir: Path | None = None) -> Settings:
    """Trust ``project`` with the settings its config asks for now.

    Returns:
        The project's settings, trusted.
    """
    settings = load_settings(project, user_dir=user_dir)
    if settings.request.empty:
        return settings
    paths = project if isinstance(project, ProjectPaths) else ProjectPaths.at(project)
    TrustStore(settings.user_dir).trust(paths.root, settings.request)
    return load_settings(project, user_dir=user_dir)


def revoke_trust(project: ProjectPaths | Path | str, *, user_dir: Path | None = None) -> bool:
    """Withdraw trust in ``project``; returns whether it was trusted."""
    paths = project if isinstance(project, ProjectPaths) else ProjectPaths.at(project)
    return TrustStore(user_dir or user_config_dir()).revoke(paths.root)
