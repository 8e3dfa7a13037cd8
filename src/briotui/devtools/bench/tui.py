"""The TUI's cold start for ``briotui bench``: a fresh interpreter to the first frame,
beside the Textual apps a user would pick instead (harlequin, posting).

All three are measured the same way, in the same run, by one small child script: it
replaces Textual's ``App.run`` with Textual's own test harness (``run_test``, headless,
120x40), starts the program through its command-line entry point as its user would
(``briotui -C PROJECT``, ``harlequin``, ``posting``), and stamps the wall clock when
the harness hands over (the first frame is shown). What the app does after that (start
the kernel, shut down) is not counted.

The peers are never dependencies of briotui: they are looked for in a virtualenv of
their own, ``$BRIOTUI_BENCH_PEERS`` or by default ``~/.cache/briotui-bench-peers``,
made for example with::

    python3 -m venv ~/.cache/briotui-bench-peers
    ~/.cache/briotui-bench-peers/bin/pip install harlequin posting \\
        "numpy<2" "duckdb<1.2" "pyarrow<18"

(the pins are what harlequin 1.25's DuckDB adapter works with). A peer that is not
found there is skipped, and its figure says why.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from briotui.devtools.bench.measure import Measure

PEERS_ENV = "BRIOTUI_BENCH_PEERS"
"""The environment variable naming the virtualenv where the peers are installed."""

DEFAULT_PEERS = Path.home() / ".cache" / "briotui-bench-peers"
"""Where the peers' virtualenv is looked for when ``$BRIOTUI_BENCH_PEERS`` is unset."""

TARGET_S = 1.0
"""Seconds from a fresh interpreter to the TUI's first frame."""

_FIRST_FRAME = """
import asyncio, importlib, importlib.metadata, sys, time
import textual.app

def run(self, *args, **kwargs):
    async def first_frame():
        async with self.run_test(size=(120, 40)) as pilot:  # entered: first frame shown
            print(f"first-frame {time.time()}", flush=True)
            await pilot.pause()
    asyncio.run(first_frame())

textual.app.App.run = run
target, argv = sys.argv[1], sys.argv[2:]
if ":" in target:  # module:function
    module, _, attr = target.partition(":")
    entry = getattr(importlib.import_module(module), attr)
else:  # a console script of the interpreter's environment
    (script,) = importlib.metadata.entry_points(group="console_scripts", name=target)
    entry = script.load()
sys.argv = [target, *argv]
try:
    entry()
except SystemExit:
    pass
"""


@dataclass(frozen=True)
class Program:
    """A TUI to start: the interpreter, its entry point and its arguments."""

    name: str
    python: str
    target: str
    argv: tuple[str, ...] = ()


def peers_venv() -> Path:
    """The virtualenv where the peers are looked for."""
    named = os.environ.get(PEERS_ENV)
    return Path(named).expanduser() if named else DEFAULT_PEERS


def find_peer(name: str, venv: Path | None = None) -> Program | str:
    """The peer ``name`` ready to start, or why it cannot be.

    Args:
        name: The peer's console script ("harlequin", "posting").
        venv: Its virtualenv (default :func:`peers_venv`).
    """
    venv = venv or peers_venv()
    python = venv / "bin" / "python"
    if not python.is_file():
        return f"no virtualenv at {venv} (set {PEERS_ENV})"
    if not (venv / "bin" / name).is_file():
        return f"{name} is not installed in {venv}"
    argv = ("--locale", "C") if name == "harlequin" else ()  # no locale warning first
    return Program(name, str(python), name, argv)


def first_frame_s(program: Program, cwd: Path) -> float | str:
    """Seconds from starting ``program`` to its first frame, or why it did not show."""
    started = time.time()
    try:
        proc = subprocess.run(
            [program.python, "-c", _FIRST_FRAME, program.target, *program.argv],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired:
        return "no first frame within 120 s"
    if "first-frame" not in proc.stdout:
        return "it did not start: " + (proc.stderr.strip() or proc.stdout.strip())[-200:]
    stamp = proc.stdout.split("first-frame", 1)[1].split()[0]
    return float(stamp) - started


def bench_tui(project: str, *, rounds: int = 3) -> list[Measure]:
    """The TUI's first frame, best of ``rounds``, against each peer found.

    The programs take turns in each round, so the machine's load falls on all alike.

    Args:
        project: The project the TUI opens (its agents already built).
        rounds: Starts per program.
    """
    ours = Program("briotui", sys.executable, "briotui.cli.main:main", ("-C", project))
    peers = {name: find_peer(name) for name in ("harlequin", "posting")}
    programs = [ours, *(p for p in peers.values() if isinstance(p, Program))]
    best: dict[str, float] = {}
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="briotui-bench-tui-") as scratch:
        for _ in range(max(1, rounds)):
            for program in programs:
                took = first_frame_s(program, Path(scratch))
                if isinstance(took, str):  # said if no start of the program shows a frame
                    failed[program.name] = took
                else:
                    best[program.name] = min(took, best.get(program.name, took))
    name = "cold start of the TUI to first frame"
    if "briotui" not in best:
        return [
            Measure(name, float("nan"), "s", TARGET_S, detail=failed.get("briotui", "not measured"))
        ]
    value = best["briotui"]
    out = [
        Measure(
            name,
            value,
            "s",
            TARGET_S,
            detail=f"fresh interpreter to first frame, best of {rounds} (agents built)",
        )
    ]
    for peer, found in peers.items():
        why = found if isinstance(found, str) else ""
        if not why and peer not in best:
            why = failed.get(peer, "not measured")
        out.append(
            Measure(
                f"{name}, vs {peer}" + (f" (skipped: {why})" if why else ""),
                value,
                "s",
                None,
                detail=f"the same start for each, taking turns, best of {rounds}; the peer "
                f"from {peers_venv()} (${PEERS_ENV})",
                peer="" if why else peer,
                peer_value=None if why else best.get(peer),
            )
        )
    return out


__all__ = ["DEFAULT_PEERS", "PEERS_ENV", "bench_tui", "find_peer", "first_frame_s", "peers_venv"]
