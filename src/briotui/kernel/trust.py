"""Trusting a project: which of its settings need the user's consent, and the stored decision.

A cloned repository's ``.brio/config.toml`` is written by whoever wrote the repository.
Settings in it that could send the user's secrets somewhere or widen what agents may
do take effect only after the user trusts the project (``briotui trust``, or the
dialog the TUI shows on start):

- ``[llm] providers`` (their URLs and key variables), and ``[llm] fallback`` /
  ``[llm.roles]`` entries that name a provider only the project defines;
- ``[shell] allow`` (commands added to the allowlist);
- ``[agents.*]`` (capability grants);
- ``[tests] command`` (a command the pipeline runs);
- ``[mcp]`` (servers to start);
- ``[llm.budget]`` and ``[llm.prices]`` (what a task may spend before it is stopped);
- agents under ``.brio/agents/`` (code that would run, possibly under a built-in's name);
- the project's own virtualenv (``.venv`` or ``venv``): its ``bin`` would come first on
  the PATH of every command and its ``pyvenv.cfg`` names a Python to show to them.

:class:`TrustRequest` is exactly that set, with a digest over it (and over the contents
of ``.brio/agents/``). :class:`TrustStore` keeps the user's decisions in
``<user config dir>/trust.json`` keyed by the project's real path and that digest, so a
changed config asks again. The file is written atomically with mode 0600.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from briotui.kernel.errors import ConfigError

TRUST_FILE = "trust.json"
"""The file in the user's config dir that holds trust decisions."""

GATED_LLM_KEYS = ("providers",)
"""``[llm]`` keys that always need trust (``fallback``/``roles`` only when they name
a provider the project defines)."""


@dataclass(frozen=True)
class ProviderAsk:
    """One model provider the project config defines or changes.

    Attributes:
        name: Its name.
        kind: Its protocol (anthropic, openai, ollama, scripted), "" when inherited.
        base_url: The URL it would talk to ("" when the vendor's default).
        api_key_env: The environment variable whose value would be sent ("" for none).
        model: Its model ("" when inherited).
    """

    name: str
    kind: str = ""
    base_url: str = ""
    api_key_env: str = ""
    model: str = ""

    def describe(self) -> str:
        """One line: name, kind, URL and key variable."""
        where = self.base_url or "the vendor's default URL"
        key = f"sends ${self.api_key_env}" if self.api_key_env else "no key"
        kind = f" ({self.kind})" if self.kind else ""
        return f"model provider {self.name!r}{kind} at {where}, {key}"


SPENDING_KEYS = ("budget", "prices")
"""``[llm]`` tables that decide what a task may spend: a project could lift a limit or
price a model at zero, so they wait for trust too."""


VENV_NAMES = (".venv", "venv")
"""Where a project keeps its own virtualenv, in the order they are looked for."""


def find_project_venv(root: Path) -> Path | None:
    """The project's own virtualenv directory (``.venv``, then ``venv``), unresolved.

    A virtualenv is a directory with ``pyvenv.cfg`` and ``bin/``.
    """
    for name in VENV_NAMES:
        path = root / name
        if (path / "pyvenv.cfg").is_file() and (path / "bin").is_dir():
            return path
    return None


def venv_home(venv: Path) -> str:
    """The ``home =`` line of a virtualenv's ``pyvenv.cfg`` ("" when absent or unreadable)."""
    with contextlib.suppress(OSError, UnicodeDecodeError):
        for line in (venv / "pyvenv.cfg").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home":
                return value.strip()
    return ""


@dataclass(frozen=True)
class VenvAsk:
    """The project's own virtualenv, which its commands would run with.

    Attributes:
        name: Its directory in the project (``.venv`` or ``venv``).
        real: Its real path (symlinks resolved).
        home: The Python its ``pyvenv.cfg`` names (``home =``), "" if none.
    """

    name: str
    real: str
    home: str = ""

    def describe(self) -> str:
        """One line: where it is and which Python it names."""
        python = f", Python from {self.home}" if self.home else ""
        return (
            f"project virtualenv {self.name} ({self.real}{python}): its bin/ comes first on "
            "the PATH of agents' commands"
        )


def project_venv_ask(root: Path) -> VenvAsk | None:
    """What trusting ``root`` would let its commands run with, or None (no virtualenv)."""
    found = find_project_venv(root)
    if found is None:
        return None
    return VenvAsk(found.name, os.path.realpath(found), venv_home(found))


@dataclass(frozen=True)
class TrustRequest:
    """What a project's config asks for that needs the user's trust.

    Attributes:
        providers: Model providers it defines or changes.
        chains: ``fallback`` / ``roles.X`` entries naming a project-defined provider,
            as ``(where, targets)``.
        shell_allow: Commands added to the shell allowlist (as written).
        grants: ``(agent, capability, patterns)`` from ``[agents.*]``.
        test_command: The ``[tests] command``, or "".
        mcp: ``[mcp]`` entries, as ``(name, description)``.
        agents: Names of the agents under ``.brio/agents/``.
        spending: ``[llm.budget]`` / ``[llm.prices]`` entries, as ``(key, value)``: they
            decide when a task is stopped for what it costs.
        venv: The project's own virtualenv, or None.
        digest: A hash over exactly these settings and the ``.brio/agents/`` files.
        agents_tree: The hash of the ``.brio/agents/`` files alone when this request was
            made ("" for none): what trusting the project covers, so a project agent's
            code runs only while it still hashes to this.
    """

    providers: tuple[ProviderAsk, ...] = ()
    chains: tuple[tuple[str, tuple[str, ...]], ...] = ()
    shell_allow: tuple[str, ...] = ()
    grants: tuple[tuple[str, str, str], ...] = ()
    test_command: str = ""
    mcp: tuple[tuple[str, str], ...] = ()
    agents: tuple[str, ...] = ()
    spending: tuple[tuple[str, str], ...] = ()
    venv: VenvAsk | None = None
    digest: str = ""
    agents_tree: str = ""

    @property
    def empty(self) -> bool:
        """Whether the project asks for nothing that needs trust."""
        return not (
            self.providers
            or self.chains
            or self.shell_allow
            or self.grants
            or self.test_command
            or self.mcp
            or self.agents
            or self.spending
            or self.venv
        )

    def lines(self, refused: Mapping[str, str] | None = None) -> list[str]:
        """What is asked, one item a line, in a fixed order.

        Args:
            refused: Provider name -> why its key would not be sent (shown after it).
        """
        refused = refused or {}
        out: list[str] = []
        for provider in self.providers:
            line = provider.describe()
            if provider.name in refused:
                line += f" — REFUSED: {refused[provider.name]}"
            out.append(line)
        out += [f"model chain {where} = {', '.join(targets)}" for where, targets in self.chains]
        out += [f"shell command allowed: {rule}" for rule in self.shell_allow]
        out += [f"agent {agent!r} may {cap}: {patterns}" for agent, cap, patterns in self.grants]
        if self.test_command:
            out.append(f"test command the pipeline runs: {self.test_command}")
        out += [f"MCP server {name!r}: {what}" for name, what in self.mcp]
        out += [f"project agent {name!r} (.brio/agents/{name})" for name in self.agents]
        out += [f"spending limit or price llm.{key} = {value}" for key, value in self.spending]
        if self.venv is not None:
            out.append(self.venv.describe())
        return out

    def to_dict(self, refused: Mapping[str, str] | None = None) -> dict[str, Any]:
        """As JSON-able data."""
        refused = refused or {}
        return {
            "providers": [
                {**p.__dict__, "refused": refused.get(p.name, "")} for p in self.providers
            ],
            "chains": [{"where": w, "targets": list(t)} for w, t in self.chains],
            "shell_allow": list(self.shell_allow),
            "grants": [{"agent": a, "capability": c, "patterns": p} for a, c, p in self.grants],
            "test_command": self.test_command,
            "mcp": [{"name": n, "server": w} for n, w in self.mcp],
            "agents": list(self.agents),
            "spending": [{"key": k, "value": v} for k, v in self.spending],
            "venv": dict(self.venv.__dict__) if self.venv is not None else None,
            "digest": self.digest,
        }


def _target_provider(value: object) -> str:
    if isinstance(value, str):
        return value.strip().partition("/")[0]
    if isinstance(value, dict) and isinstance(value.get("provider"), str):
        return str(value["provider"])
    return ""


def _targets(value: object) -> list[object]:
    return value if isinstance(value, list) else [value]


def _all_chains(llm: Mapping[str, Any]) -> dict[str, list[object]]:
    chains: dict[str, list[object]] = {}
    if "fallback" in llm:
        chains["fallback"] = _targets(llm["fallback"])
    roles = llm.get("roles")
    if isinstance(roles, dict):
        for role, value in roles.items():
            chains[f"roles.{role}"] = _targets(value)
    return chains


def gated_chains(llm: Mapping[str, Any], known: set[str]) -> dict[str, list[object]]:
    """``fallback`` / ``roles.X`` entries of ``[llm]`` that need trust.

    An entry needs trust when one of its targets names a provider that is not in
    ``known`` (built-in and user-defined) or that the project itself (re)defines.

    Returns:
        ``"fallback"`` or ``"roles.X"`` -> the targets as written.
    """
    raw = llm.get("providers")
    redefined = {
        str(p["name"])
        for p in (raw if isinstance(raw, list) else [])
        if isinstance(p, dict) and isinstance(p.get("name"), str)
    }
    return {
        where: targets
        for where, targets in _all_chains(llm).items()
        if any(
            _target_provider(t) not in known or _target_provider(t) in redefined for t in targets
        )
    }


def _argv_text(rule: object) -> str:
    if isinstance(rule, list):
        return " ".join(str(w) for w in rule)
    return str(rule)


def agents_tree_digest(directory: Path) -> str:
    """The hash of every file under a project's ``.brio/agents/``, as trusting it records
    ("" when there is none): a project agent's code runs only while it is unchanged."""
    return _agents_tree(directory)[1]


def _agents_tree(directory: Path) -> tuple[list[str], str]:
    """The agent directories under ``directory`` and a hash of every file in it.

    Symlinks are hashed as their target text, never followed; ``__pycache__`` is left out.
    """
    if not directory.is_dir():
        return [], ""
    digest = hashlib.sha256()
    names = sorted(
        p.name
        for p in directory.iterdir()
        if p.is_dir() and not p.name.startswith((".", "_"))  # as agent discovery sees them
    )
    for root, dirs, files in os.walk(directory, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            path = Path(root) / name
            rel = path.relative_to(directory).as_posix()
            digest.update(rel.encode() + b"\0")
            try:
                if path.is_symlink():
                    digest.update(b"link:" + os.readlink(path).encode())
                else:
                    digest.update(hashlib.sha256(path.read_bytes()).digest())
            except OSError as exc:
                digest.update(f"unreadable:{exc.errno}".encode())
            digest.update(b"\0")
        for name in dirs:  # a symlinked directory is content too
            path = Path(root) / name
            if path.is_symlink():
                digest.update(path.relative_to(directory).as_posix().encode() + b"\0link:")
                digest.update(os.readlink(path).encode() + b"\0")
    return names, digest.hexdigest()


def build_request(
    project: Mapping[str, Any],
    agents_dir: Path | None,
    known_providers: set[str],
    *,
    root: Path | None = None,
) -> TrustRequest:
    """What the parsed project config (and ``.brio/agents/``) asks that needs trust.

    Args:
        project: The parsed ``.brio/config.toml``.
        agents_dir: The project's ``.brio/agents/`` (it may not exist), or None.
        known_providers: Providers defined without the project (built-in and user's).
        root: The project root, whose own virtualenv is asked about too (None: not).
    """
    hashed: dict[str, Any] = {}
    providers: list[ProviderAsk] = []
    chains: list[tuple[str, tuple[str, ...]]] = []
    spending: list[tuple[str, str]] = []
    llm = project.get("llm")
    if isinstance(llm, dict):
        for key in SPENDING_KEYS:
            if key in llm:
                hashed[f"llm.{key}"] = llm[key]
                value = llm[key]
                items = sorted(value.items()) if isinstance(value, dict) else [("", value)]
                for name, item in items:
                    text = json.dumps(item, sort_keys=True, default=str)
                    spending.append((f"{key}.{name}" if name else key, text))
        raw_providers = llm.get("providers")
        if raw_providers is not None:
            hashed["llm.providers"] = raw_providers
            for raw in raw_providers if isinstance(raw_providers, list) else []:
                if not isinstance(raw, dict):
                    continue
                providers.append(
                    ProviderAsk(
                        name=str(raw.get("name", "?")),
                        kind=str(raw.get("kind", "")),
                        base_url=str(raw.get("base_url", "")),
                        api_key_env=str(raw.get("api_key_env", "")),
                        model=str(raw.get("model", "")),
                    )
                )
        gated = gated_chains(llm, known_providers)
        if raw_providers is not None:
            # hashed whatever the user's config defines: the digest depends on the project
            for where, targets in _all_chains(llm).items():
                hashed[f"llm.{where}"] = targets
        for where, targets in sorted(gated.items()):
            hashed[f"llm.{where}"] = targets
            chains.append((where, tuple(str(_target_text(t)) for t in targets)))
    shell = project.get("shell")
    shell_allow: tuple[str, ...] = ()
    if isinstance(shell, dict) and "allow" in shell:
        hashed["shell.allow"] = shell["allow"]
        allow = shell["allow"] if isinstance(shell["allow"], list) else [shell["allow"]]
        shell_allow = tuple(_argv_text(r) for r in allow)
    grants: list[tuple[str, str, str]] = []
    agents_table = project.get("agents")
    if agents_table is not None:
        hashed["agents"] = agents_table
        if isinstance(agents_table, dict):
            for agent, table in sorted(agents_table.items()):
                if not isinstance(table, dict):
                    grants.append((agent, "?", repr(table)))
                    continue
                for cap, value in table.items():
                    text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
                    grants.append((agent, cap, text))
    test_command = ""
    tests = project.get("tests")
    if isinstance(tests, dict) and "command" in tests:
        hashed["tests.command"] = tests["command"]
        command = tests["command"]
        test_command = _argv_text(command) if isinstance(command, list) else str(command)
    mcp_items: list[tuple[str, str]] = []
    mcp = project.get("mcp")
    if mcp is not None:
        hashed["mcp"] = mcp
        if isinstance(mcp, dict):
            servers = mcp.get("servers")
            for name, value in sorted(mcp.items()):
                if name == "servers" and isinstance(servers, dict):
                    # one line per server: what it runs (or where it connects)
                    mcp_items += [
                        (str(n), json.dumps(v, sort_keys=True, default=str))
                        for n, v in sorted(servers.items())
                    ]
                    continue
                mcp_items.append((str(name), json.dumps(value, sort_keys=True, default=str)))
        else:
            mcp_items.append(("mcp", json.dumps(mcp, default=str)))
    names: list[str] = []
    tree = ""
    if agents_dir is not None:
        names, tree = _agents_tree(agents_dir)
        if tree:
            hashed["agents_tree"] = tree
    venv = project_venv_ask(root) if root is not None else None
    if venv is not None:
        hashed["venv"] = venv.__dict__
    request = TrustRequest(
        providers=tuple(providers),
        chains=tuple(chains),
        shell_allow=shell_allow,
        grants=tuple(grants),
        test_command=test_command,
        mcp=tuple(mcp_items),
        agents=tuple(names),
        spending=tuple(spending),
        venv=venv,
        agents_tree=tree,
    )
    if request.empty and not hashed:
        return request
    canonical = json.dumps(hashed, sort_keys=True, default=str, separators=(",", ":"))
    return TrustRequest(
        providers=request.providers,
        chains=request.chains,
        shell_allow=request.shell_allow,
        grants=request.grants,
        test_command=request.test_command,
        mcp=request.mcp,
        agents=request.agents,
        spending=request.spending,
        venv=request.venv,
        digest=hashlib.sha256(canonical.encode()).hexdigest(),
        agents_tree=tree,
    )


def _target_text(value: object) -> str:
    if isinstance(value, dict):
        provider, model = value.get("provider", "?"), value.get("model", "")
        return f"{provider}/{model}" if model else str(provider)
    return str(value)


class TrustStore:
    """The user's trust decisions: ``<user config dir>/trust.json``.

    Args:
        directory: The user's config dir.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / TRUST_FILE

    @staticmethod
    def key(root: Path) -> str:
        """The project's key: its real path."""
        return os.path.realpath(root)

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"version": 1, "projects": {}}
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"{self.path} cannot be read ({exc}). Delete it; projects will ask for "
                "trust again.",
                title="Trust file unreadable",
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("projects"), dict):
            raise ConfigError(
                f"{self.path} is not a briotui trust file. Delete it; projects will ask "
                "for trust again.",
                title="Trust file unreadable",
            )
        return data

    def digest(self, root: Path) -> str | None:
        """The digest the user trusted for ``root``, or None."""
        entry = self._read()["projects"].get(self.key(root))
        if isinstance(entry, dict) and isinstance(entry.get("digest"), str):
            return str(entry["digest"])
        return None

    def is_trusted(self, root: Path, digest: str) -> bool:
        """Whether the user trusted ``root`` with exactly these settings."""
        return bool(digest) and self.digest(root) == digest

    def trust(self, root: Path, request: TrustRequest) -> None:
        """Record that the user trusts ``root`` with ``request``'s settings."""
        with self._locked() as data:
            data["projects"][self.key(root)] = {
                "digest": request.digest,
                "trusted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "asked": request.lines(),
            }

    def revoke(self, root: Path) -> bool:
        """Withdraw trust in ``root``; returns whether it was trusted."""
        with self._locked() as data:
            return data["projects"].pop(self.key(root), None) is not None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """Read, let the caller change, and write back atomically under a lock."""
        self.directory.mkdir(parents=True, exist_ok=True)
        lock_path = self.directory / (TRUST_FILE + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            with contextlib.suppress(ImportError):
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX)
            data = self._read()
            yield data
            self._write(data)
        finally:
            os.close(fd)  # closing releases the lock

    def _write(self, data: Mapping[str, Any]) -> None:
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=".trust-", suffix=".tmp", dir=self.directory)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def describe(lines: Sequence[str]) -> str:
    """The asked-for settings as an indented list."""
    return "\n".join(f"  - {line}" for line in lines)
