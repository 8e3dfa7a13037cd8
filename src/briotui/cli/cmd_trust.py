"""``briotui trust``: show what a project's config asks for, and trust it (or not).

A project's ``.brio/config.toml`` and ``.brio/agents/`` come with the repository. The
settings in them that could send secrets somewhere or widen what agents may do (model
providers and their URLs and key variables, shell allowlist additions, agent grants,
the test command, MCP servers, project agents) apply only once the user trusts the
project with exactly those settings; a changed config asks again.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from briotui.cli.output import print_json, say
from briotui.kernel.errors import TrustRefused
from briotui.kernel.llm.config import project_key_refusals
from briotui.kernel.paths import ProjectPaths
from briotui.kernel.settings import Settings, load_settings, revoke_trust
from briotui.kernel.trust import TrustStore


def register(sub: Any) -> None:
    """Add the ``trust`` subcommand."""
    trust = sub.add_parser(
        "trust",
        help=(
            "trust this project's config (providers, shell rules, grants, test command, "
            "MCP servers, project agents, its virtualenv)"
        ),
        description=(
            "Show what the project's .brio/config.toml and .brio/agents/ ask for that needs "
            "your trust (model providers with their URLs and key variables, shell commands, "
            "agent grants, the test command, MCP servers, project agents, the project's own "
            "virtualenv) and trust it. "
            "Until then briotui runs the project with your own settings and safe defaults."
        ),
    )
    mode = trust.add_mutually_exclusive_group()
    mode.add_argument("--yes", action="store_true", help="trust without asking")
    mode.add_argument("--show", action="store_true", help="only show what is asked")
    mode.add_argument("--revoke", action="store_true", help="withdraw trust in this project")
    trust.add_argument("--json", action="store_true", help="only show, as JSON")
    trust.set_defaults(handler=handle)


def state_of(settings: Settings) -> str:
    """``none`` (nothing to trust), ``trusted``, ``changed`` or ``untrusted``."""
    if settings.request.empty:
        return "none"
    if settings.trusted:
        return "trusted"
    if settings.project_file is not None:
        root = settings.project_file.parent.parent
        if TrustStore(settings.user_dir).digest(root) is not None:
            return "changed"
    return "untrusted"


def handle(args: argparse.Namespace) -> int:
    """Handle ``trust``."""
    paths = ProjectPaths.at(args.project)
    if args.revoke:
        was = revoke_trust(paths)
        say(
            f"{paths.root}: trust withdrawn." if was else f"{paths.root} was not trusted.", err=True
        )
        return 0
    settings = load_settings(paths)
    state = state_of(settings)
    why = project_key_refusals(settings)
    lines = settings.request.lines(why)
    if args.json:
        print_json(
            {
                "project": str(paths.root),
                "state": state,
                "asks": settings.request.to_dict(why),
                "lines": lines,
            }
        )
        return 0
    if state == "none":
        say(f"{paths.root}: its config asks for nothing that needs trust.")
        return 0
    head = {
        "trusted": "is trusted with these settings",
        "changed": "changed since you trusted it; it now asks for",
        "untrusted": "is not trusted; its config asks for",
    }[state]
    say(f"{paths.root} {head}:")
    for line in lines:
        say(f"  - {line}")
    if why:
        say(
            "Keys marked REFUSED are never sent to a URL a project chooses, trusted or not; "
            "briotui stops with an error while they are configured."
        )
    if args.show or state == "trusted":
        if state != "trusted":
            say("Run `briotui trust` to trust them.")
        return 0
    if not args.yes:
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            raise TrustRefused(
                f"{paths.root} asks for the settings above and there is no terminal to ask "
                "on. Read them, then run `briotui trust --yes` in the project to trust them "
                "(or `briotui trust --show` to only see them).",
            )
        say("Trust this project with these settings? [y/N] ", end="", err=True, flush=True)
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            say("Not trusted; briotui keeps ignoring these settings.", err=True)
            return 1
    TrustStore(settings.user_dir).trust(paths.root, settings.request)  # exactly what was shown
    say(f"Trusted {paths.root} with these settings.", err=True)
    return 0
