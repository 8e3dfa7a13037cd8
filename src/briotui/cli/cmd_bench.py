"""``briotui bench``: measure this machine against the targets, print a table, write JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from pathlib import Path
from typing import Any

from briotui import __version__
from briotui.cli.output import print_json, say, table
from briotui.devtools.bench.builds import bench_builds
from briotui.devtools.bench.journal import bench_journal
from briotui.devtools.bench.llm import bench_llm
from briotui.devtools.bench.measure import Measure
from briotui.devtools.bench.mesh import bench_mesh
from briotui.devtools.bench.runtime import bench_live_agents, bench_overhead, bench_runtime
from briotui.devtools.bench.sessions import run_all as run_sessions_bench
from briotui.devtools.bench.state import bench_state
from briotui.devtools.bench.tui import bench_tui
from briotui.kernel.kernel import Kernel
from briotui.kernel.paths import ProjectPaths
from briotui.kernel.runtime.engine import wasmtime_version
from briotui.kernel.runtime.instance import RunFailed


def register(sub: Any) -> None:
    """Add the ``bench`` subcommand."""
    bench = sub.add_parser(
        "bench",
        help="run the benchmark suite",
        description=(
            "Measure this machine against the targets: the runtime (component load, "
            "instantiate, pool hand-out, host calls, event-loop lag, timeout release, "
            "the kernel's overhead per agent run, warm against cold runs, the run "
            "journal's overhead per host call and replay speed), "
            "sessions (fork of a 50k-file project, create in a fresh process, diff and "
            "commit of 100 files, each beside git doing the same: git status, git diff, "
            "git apply + sync), model streaming overhead, the mesh, the state tree and a "
            "served kernel's fan-out, the state feed over a loopback NATS, workers over "
            "NATS (a relayed host call's round trip, agents/s on two local workers against "
            "one kernel), and the TUI's first frame beside harlequin and posting when they "
            "are installed in $BRIOTUI_BENCH_PEERS (default ~/.cache/briotui-bench-peers); "
            "print a table and write JSON. With --builds, also agent builds from an empty "
            "cache (first run, all agents) and hot reload."
        ),
    )
    bench.add_argument("--json", action="store_true", help="print the results as JSON")
    bench.add_argument(
        "--out",
        metavar="FILE",
        help="where to write the JSON results (default: .brio/bench.json in the project)",
    )
    bench.add_argument("--rounds", type=int, default=20, help="samples per figure (default 20)")
    bench.add_argument(
        "--quick", action="store_true", help="runtime figures only (skip sessions and models)"
    )
    bench.add_argument(
        "--builds",
        action="store_true",
        help="also time agent builds from an empty cache and hot reloads (slow: minutes)",
    )
    bench.add_argument(
        "--live-agents",
        type=int,
        default=1000,
        metavar="N",
        help="how many live agents to hold at once for the memory figure (default 1000)",
    )
    bench.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Handle ``bench``."""
    try:
        measures = asyncio.run(_measure(args))
    except RunFailed as failure:  # a probe run failed: say which and why, not a traceback
        raise failure.error from None
    report = {
        "briotui": __version__,
        "wasmtime": wasmtime_version(),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}",
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "results": [m.to_dict() for m in measures],
    }
    out = Path(args.out) if args.out else ProjectPaths.at(args.project).brio / "bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print_json(report)
    else:
        say(render(measures))
        say(f"\nWrote {out}", err=True)
    return 0


async def _measure(args: argparse.Namespace) -> list[Measure]:
    rounds = max(3, args.rounds)
    kernel = Kernel(args.project)
    try:
        measures = await bench_runtime(kernel, rounds=rounds)
    finally:
        await kernel.close()
    kernel = Kernel(args.project)
    try:
        measures += await bench_overhead(kernel, rounds=rounds)
    finally:
        await kernel.close()
    kernel = Kernel(args.project)
    try:
        measures += await bench_journal(kernel, rounds=rounds)
    finally:
        await kernel.close()
    if args.builds:
        measures += await bench_builds()
    if args.quick:
        return measures
    kernel = Kernel(args.project)
    try:
        measures += await bench_live_agents(kernel, count=args.live_agents, rounds=rounds)
    finally:
        await kernel.close()
    measures += await asyncio.to_thread(bench_tui, args.project)
    sessions = await asyncio.to_thread(run_sessions_bench)
    models = await bench_llm()
    mesh = await asyncio.to_thread(bench_mesh)
    state = await asyncio.to_thread(bench_state)
    served = await _serve_figures()
    feed = await _statefeed_figures()
    cluster = await _cluster_figures(args.project, rounds)
    return [*measures, *sessions, *models, *mesh, *state, *served, *feed, *cluster]


async def _cluster_figures(project: str, rounds: int) -> list[Measure]:
    """Workers over NATS on loopback: a relayed host call's round trip, agents per second
    on two local workers against one local kernel (none without nats-server)."""
    from briotui.devtools.bench.cluster import bench_cluster

    return await bench_cluster(Path(project), rounds=rounds)


async def _serve_figures() -> list[Measure]:
    """A served kernel on loopback: patch fan-out, change-to-client latency, late join."""
    from briotui.devtools.bench.serve import bench_serve

    return await bench_serve()


async def _statefeed_figures() -> list[Measure]:
    """The state feed over a loopback NATS: fan-out to followers, late join."""
    from briotui.devtools.bench.statefeed import bench_statefeed

    return await bench_statefeed()


def render(measures: list[Measure]) -> str:
    """The results as a text table."""
    rows = []
    for m in measures:
        op = "<=" if m.better == "lower" else ">="
        target = f"{op} {m.target:g} {m.unit}" if m.target is not None else "-"
        verdict = {True: "ok", False: "MISSED", None: "-"}[m.ok]
        ratio = f"{m.ratio:.2f}" if m.ratio is not None else "-"
        peer = "-"
        if m.peer and m.peer_value is not None and m.peer_ratio is not None:
            peer = f"{m.peer} {m.peer_value:.3f} {m.unit} (x{m.peer_ratio:.2f})"
        rows.append([m.name, f"{m.value:.3f} {m.unit}", target, ratio, verdict, peer])
    return table(["figure", "measured", "target", "ratio", "", "peer (ratio)"], rows)
