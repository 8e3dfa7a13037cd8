"""The trap soak: 200 trapping runs of a real agent, and the process survives every one.

Observed before: after a guest trap, wasmtime's tokio worker thread called back into
Python (the guest's stdout/stderr) while the interpreter was shutting down, and the
process aborted ("panic in a function that cannot unwind", exit 134). The runs go in
a subprocess, since only its exit status and its stderr can show that.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

RUNS = 200
CHILD = Path(__file__).with_name("trap_soak_child.py")


def test_two_hundred_trapping_runs_never_take_the_process_down(
    project: Path, built_agents: list[str]
) -> None:
    src = Path(__file__).resolve().parents[2] / "src"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, str(CHILD), str(project), str(RUNS)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "panic" not in proc.stderr.lower(), proc.stderr[-3000:]
    kinds = json.loads(proc.stdout.strip().splitlines()[-1])["kinds"]
    # Every run is reported as the typed error its trap means, none as anything else.
    assert kinds == {
        "panic:GuestPanic": RUNS // 2,
        "loop:FuelExhausted": RUNS // 4,
        "alloc 200:MemoryLimit": RUNS // 4,
    }
