"""``briotui agents build|list|wit``: build the agent components, show what is there, and
hand agent authors the WIT contract they build against."""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
from pathlib import Path
from typing import Any

from briotui.cli.output import print_json, say, table
from briotui.cli.progress import BuildProgress
from briotui.kernel.errors import BrioError, WitExportError
from briotui.kernel.kernel import Kernel
from briotui.kernel.paths import wit_dir


def register(sub: Any) -> None:
    """Add the ``agents`` subcommand tree."""
    agents = sub.add_parser(
        "agents",
        help="build and list agent components",
        description="Build and list the agents: built-ins and the project's .brio/agents.",
    )
    agents_sub = agents.add_subparsers(dest="agents_command", metavar="ACTION", required=True)

    build = agents_sub.add_parser(
        "build",
        help="build and cache agent components",
        description=(
            "Build every agent (or the named ones) into a WebAssembly component and "
            "compile it for this machine. Cached: a second build with nothing changed "
            "does nothing."
        ),
    )
    build.add_argument("names", nargs="*", metavar="NAME", help="only these agents")
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    build.add_argument("--json", action="store_true", help="print the results as JSON")
    build.set_defaults(handler=run_build)

    listing = agents_sub.add_parser(
        "list", help="list agents", description="List the agents, their worlds and build state."
    )
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    listing.set_defaults(handler=run_list)

    wit = agents_sub.add_parser(
        "wit",
        help="show or export the WIT files agents are built against",
        description=(
            "Show where the brio WIT package is (in a checkout or an installed wheel) and "
            "its worlds, or copy its .wit files into a directory with --out, to build an "
            "agent in another language against them (e.g. JavaScript with componentize-js)."
        ),
    )
    wit.add_argument(
        "--out", metavar="DIR", help="copy the .wit files into DIR (created if missing)"
    )
    wit.add_argument("--json", action="store_true", help="print the result as JSON")
    wit.set_defaults(handler=run_wit)


def run_build(args: argparse.Namespace) -> int:
    """Handle ``agents build``."""
    return asyncio.run(_build(args))


async def _build(args: argparse.Namespace) -> int:
    kernel = Kernel(args.project)
    try:
        discovery = kernel.discovery(refresh=True)
        progress = None if args.json else BuildProgress()
        results = await kernel.build_agents(args.names or None, force=args.force, on_event=progress)
    finally:
        await kernel.close()
    failed = [r for r in results if r.status == "failed"]
    problems = [] if args.names else discovery.problems
    if args.json:
        print_json(
            {
                "status": "error" if failed or problems else "ok",
                "agents": [r.to_dict() for r in results],
                "problems": [p.to_dict() for p in problems],
            }
        )
        return 1 if failed or problems else 0
    for problem in problems:
        say(f"{problem.agent:<16} SKIPPED\n    {problem.title}: {problem.message}", err=True)
    built = [r for r in results if r.status == "built"]
    if results and all(r.status == "cached" for r in results):
        say(f"All {len(results)} agents are up to date; nothing to build.")
    else:
        artifacts = len({r.key for r in built})
        say(
            f"Built {len(built)} ({artifacts} component{'s' if artifacts != 1 else ''}), "
            "up to date "
            f"{len(results) - len(built) - len(failed)}, failed {len(failed)}."
        )
    for result in failed:
        assert result.error is not None
        say(f"\n{result.agent}: {result.error.title}\n{result.error.message}", err=True)
    return 1 if failed or problems else 0


def run_list(args: argparse.Namespace) -> int:
    """Handle ``agents list``."""
    kernel_loop = asyncio.new_event_loop()
    try:
        kernel = Kernel(args.project, loop=kernel_loop)
        discovery = kernel.discovery()
        rows = []
        for spec in discovery.agents.values():
            failure = kernel.builder.failure(spec)
            try:
                artifact = kernel.builder.artifact(spec)
            except BrioError:
                kind, runs = "?", "?"
            else:
                kind, runs = artifact.kind, artifact.describe()
            rows.append(
                {
                    "name": spec.name,
                    "origin": spec.origin,
                    "world": spec.world,
                    "security": spec.security,
                    "built": kernel.builder.is_built(spec),
                    "artifact": kind,
                    "runs": runs,
                    "failure": failure.to_dict() if failure else None,
                    "description": spec.description,
                    "directory": str(spec.directory),
                }
            )
        kernel.ticker.stop()
    finally:
        kernel_loop.close()
    if args.json:
        print_json({"agents": rows, "problems": [p.to_dict() for p in discovery.problems]})
        return 0
    say(
        table(
            ["agent", "origin", "world", "security", "built", "runs on", "description"],
            [
                [
                    r["name"],
                    r["origin"],
                    r["world"],
                    r["security"],
                    "yes" if r["built"] else ("FAILED" if r["failure"] else "no"),
                    _RUNS_ON.get(str(r["artifact"]), "?"),
                    r["description"],
                ]
                for r in rows
            ],
        )
    )
    for problem in discovery.problems:
        say(f"\n{problem.agent}: {problem.title}\n  {problem.message}", err=True)
    for row in rows:
        remembered = row["failure"]
        if isinstance(remembered, dict):
            say(f"\n{row['name']}: {remembered['title']}\n  {remembered['message']}", err=True)
    if any(not r["built"] and not r["failure"] for r in rows):
        say("\nBuild the missing ones with `briotui agents build`.", err=True)
    return 0


_RUNS_ON = {
    "runtime": "python runtime",
    "own": "own build",
    "prebuilt": "prebuilt",
}
"""The "runs on" column: its world's shared Python runtime (code read at each run: edits
need no build), a component of its own, or a prebuilt component."""
_WORLD = re.compile(r"^\s*world\s+([a-z][a-z0-9-]*)\s*\{", re.M)
_PACKAGE = re.compile(r"^\s*package\s+([^;\s]+)\s*;", re.M)


def run_wit(args: argparse.Namespace) -> int:
    """Handle ``agents wit``: where the WIT package is, or a copy of it in ``--out``.

    Raises:
        WitExportError: the WIT files are missing, or ``--out`` cannot be written.
    """
    source = wit_dir()
    files = sorted(source.glob("*.wit"))
    if not files:
        raise WitExportError(
            f"No .wit files in {source}: this installation of briotui is incomplete. "
            "Reinstall it (pip install --force-reinstall briotui)."
        )
    texts = [f.read_text(encoding="utf-8") for f in files]
    worlds = sorted({w for text in texts for w in _WORLD.findall(text)})
    package = next((m.group(1) for text in texts if (m := _PACKAGE.search(text))), "brio:agent")
    where = source
    if args.out:
        where = Path(args.out).expanduser().resolve()
        try:
            where.mkdir(parents=True, exist_ok=True)
            for file in files:
                shutil.copyfile(file, where / file.name)
        except OSError as exc:
            raise WitExportError(
                f"Could not write the WIT files to {where}: {exc.strerror or exc}. "
                "Choose a directory you can write to with --out DIR."
            ) from None
    if args.json:
        print_json(
            {
                "status": "ok",
                "directory": str(where),
                "exported": bool(args.out),
                "files": [f.name for f in files],
                "package": package,
                "worlds": worlds,
            }
        )
        return 0
    if args.out:
        say(f"Wrote {len(files)} WIT files to {where}")
    else:
        say(f"The WIT package {package} is in {where}")
    say(f"Worlds: {', '.join(worlds)}")
    say(
        "Build a JavaScript agent against a world with componentize-js, e.g.\n"
        f"  componentize-js app.js --wit {where} --world-name minimal "
        "--disable http fetch-event -o agent.wasm\n"
        'then name the component in its agent.toml (component = "agent.wasm").'
    )
    return 0
