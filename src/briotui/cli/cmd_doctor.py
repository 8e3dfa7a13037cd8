"""``briotui doctor``: check the toolchain, agents, project and state; say what to fix."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import tempfile
from dataclasses import asdict, dataclass
from typing import Any, Literal

from briotui.cli.output import print_json, say, table
from briotui.kernel.errors import BrioError, ConfigError
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.config import models_config
from briotui.kernel.llm.health import check_providers
from briotui.kernel.paths import ProjectPaths, cache_dir, user_config_dir
from briotui.kernel.runtime.cache import componentize_py_version
from briotui.kernel.runtime.engine import wasmtime_version
from briotui.kernel.settings import Settings, load_settings
from briotui.kernel.shell.runner import INSTALL_HINT, ShellSettings, project_env, sandbox_status
from briotui.kernel.text import sanitize

Status = Literal["ok", "warn", "error"]


@dataclass(frozen=True)
class Check:
    """One doctor check."""

    name: str
    status: Status
    detail: str
    fix: str = ""


def register(sub: Any) -> None:
    """Add the ``doctor`` subcommand."""
    doctor = sub.add_parser(
        "doctor",
        help="check the set-up and say what to fix",
        description=(
            "Check Python, wasmtime, componentize-py, the build cache, agents, "
            "model providers and the project."
        ),
    )
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    doctor.set_defaults(handler=handle)


def _toolchain() -> list[Check]:
    checks = []
    version = sys.version_info
    checks.append(
        Check("python", "ok", f"{version.major}.{version.minor}.{version.micro}")
        if version >= (3, 11)
        else Check(
            "python", "error", f"{version.major}.{version.minor}", "Use Python 3.11 or newer."
        )
    )
    checks.append(Check("wasmtime", "ok", wasmtime_version()))
    cpy = componentize_py_version()
    checks.append(
        Check("componentize-py", "ok", cpy)
        if cpy != "missing"
        else Check("componentize-py", "error", "not installed", "pip install componentize-py")
    )
    root = cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root):
            pass
        checks.append(Check("build cache", "ok", str(root)))
    except OSError as exc:
        checks.append(
            Check(
                "build cache",
                "error",
                f"{root}: {exc.strerror}",
                "Make it writable, or set BRIOTUI_CACHE_DIR to a writable directory.",
            )
        )
    return checks


def _agents(kernel: Kernel) -> list[Check]:
    discovery = kernel.discovery()
    checks = []
    for spec in discovery.agents.values():
        name = f"agent {spec.name}"
        try:
            runs = kernel.builder.artifact(spec).describe()
        except BrioError as exc:
            checks.append(Check(name, "error", exc.message, "Fix the agent's files."))
            continue
        where = f"{spec.origin}, world {spec.world}, runs on {runs}"
        if kernel.builder.is_built(spec):
            checks.append(Check(name, "ok", f"{where}, built"))
        elif (failure := kernel.builder.failure(spec)) is not None:
            # Building again would only fail again: say why instead.
            checks.append(
                Check(
                    name,
                    "error",
                    f"{where}; it cannot be built: {failure.title}: {failure.message}",
                    "Fix the agent (its files, or the world in its agent.toml); an "
                    "unchanged agent is not built again.",
                )
            )
        else:
            checks.append(Check(name, "warn", f"{where}, not built", "Run `briotui agents build`."))
    for problem in discovery.problems:
        checks.append(
            Check(f"agent {problem.agent}", "error", problem.message, "Fix the agent's files.")
        )
    return checks


def _project(paths: ProjectPaths, shell: tuple[ShellSettings, str]) -> list[Check]:
    checks = []
    if (paths.root / ".git").exists():
        checks.append(Check("project", "ok", f"git repository at {paths.root}"))
    else:
        checks.append(
            Check(
                "project",
                "warn",
                f"{paths.root} is not a git repository",
                "Sessions still work; approving changes cannot make a git commit. "
                "Run `git init` to enable commits.",
            )
        )
    settings, problem = shell
    status = sandbox_status(settings)
    if status.sandboxed:
        checks.append(Check("shell sandbox", "ok", status.detail))
    else:
        rule = {
            "ask": "agents' commands are run only after you confirm each one",
            "allow": "agents' commands run WITHOUT asking (your setting)",
            "deny": "agents' commands are refused (your setting)",
        }[status.unsandboxed]
        checks.append(
            Check(
                "shell sandbox",
                "warn",
                f"UNSANDBOXED: {status.detail} [shell] unsandboxed = "
                f'"{status.unsandboxed}": {rule}. Confinement here: '
                f"{', '.join(status.confinement) or 'none'}.",
                INSTALL_HINT + f" Your user config: {user_config_dir() / 'config.toml'}.",
            )
        )
    if problem:
        checks.append(Check("shell settings", "error", problem, "Fix your user config."))
    if paths.brio.exists() and not os.access(paths.brio, os.W_OK):
        checks.append(
            Check("state", "error", f"{paths.brio} is not writable", "Fix its permissions.")
        )
    else:
        checks.append(Check("state", "ok", str(paths.brio)))
    return checks


def _tests_env(paths: ProjectPaths, settings: Settings) -> Check:
    """Which test command runs, and in which Python environment."""
    from briotui.kernel.supervisor import test_command_of

    env = project_env(paths.root, trusted_venv=settings.trusted_venv())
    try:
        command = test_command_of(settings)
    except ConfigError as error:
        return Check("tests", "error", error.message, "Fix [tests] command in that file.")
    if command is None:
        return Check(
            "tests",
            "warn",
            f"no test command (or the project is not trusted); commands would use {env.line()}",
            'Set [tests] command (e.g. "python -m pytest -q") in .brio/config.toml so '
            "sessions are verified.",
        )
    return Check("tests", "ok", f"`{shlex.join(command)}` runs with {env.line()}")


async def _providers(settings: Settings) -> list[Check]:
    try:
        statuses = await check_providers(models_config(settings))
    except ConfigError as error:
        return [Check("models config", "error", error.message)]  # it says what to do
    return [Check(f"provider {s.name}", s.severity, s.detail, s.fix) for s in statuses]


def _trust(settings: Settings) -> Check:
    if settings.request.empty:
        return Check("project trust", "ok", "the project config asks for nothing that needs trust")
    if settings.trusted:
        asked = "; ".join(sanitize(line) for line in settings.request.lines())
        return Check("project trust", "ok", "trusted: " + asked)
    ignored = "; ".join(sanitize(line) for line in settings.ignored)
    return Check(
        "project trust",
        "warn",
        "not trusted, so these project settings are ignored: " + ignored,
        "Run `briotui trust` to review and trust them.",
    )


async def _mcp(kernel: Kernel) -> list[Check]:
    """One line per configured MCP server: started and listed its tools, or why not."""
    try:
        hub = kernel.mcp()
    except ConfigError as error:
        return [Check("mcp config", "error", error.message)]
    if hub is None:
        return []
    statuses = await asyncio.to_thread(hub.status)
    return [
        Check(
            f"MCP server {s.name}",
            "ok" if s.ok else "error",
            f"{s.transport}: {s.detail}",
            "" if s.ok else f"Fix [mcp.servers.{s.name}] in the config, or the server itself.",
        )
        for s in statuses
    ]


def handle(args: argparse.Namespace) -> int:
    """Handle ``doctor``."""
    return asyncio.run(_doctor(args))


async def _doctor(args: argparse.Namespace) -> int:
    paths = ProjectPaths.at(args.project)
    try:
        settings = load_settings(paths)
    except ConfigError as error:
        bad = Check("config", "error", error.message)  # its message says what to do
        checks = [*_toolchain(), bad, *_project(paths, (ShellSettings(), ""))]
    else:
        kernel = Kernel(args.project, config=settings)
        try:
            checks = (
                _toolchain()
                + _agents(kernel)
                + [_trust(settings), _tests_env(kernel.paths, settings)]
                + await _providers(settings)
                + await _mcp(kernel)
                + _project(
                    kernel.paths,
                    (
                        kernel.shell_settings,
                        (kernel.state.get(["sandbox"]) or {}).get("problem", ""),
                    ),
                )
            )
        finally:
            await kernel.close()
    if args.json:
        print_json(
            {
                "checks": [asdict(c) for c in checks],
                "ok": not any(c.status == "error" for c in checks),
            }
        )
    else:
        say(
            table(
                ["check", "status", "detail", "fix"],
                [[c.name, c.status, c.detail, c.fix] for c in checks],
            )
        )
    return 1 if any(c.status == "error" for c in checks) else 0
