"""Real ``briotui worker`` processes for the cluster tests."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


@dataclass
class WorkerProcess:
    """A running worker: its id and process."""

    id: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_worker(
    url: str, token: str, name: str, *, slots: int = 1, extra_env: dict[str, str] | None = None
) -> WorkerProcess:
    """``python -m briotui worker`` joined to ``url``; returns once it listens."""
    env = {
        **os.environ,
        "BRIOTUI_NATS_TOKEN": token,
        "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        **(extra_env or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "briotui", "worker", "--nats", url, "--slots", str(slots),
         "--name", name, "--json"],
        stdout=subprocess.PIPE,
        stderr=open(f"/tmp/briotui-worker-{name}-{os.getpid()}.log", "wb"),  # noqa: SIM115
        env=env,
    )  # fmt: skip
    assert process.stdout is not None
    end = time.monotonic() + 60
    line = b""
    while time.monotonic() < end:
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if ready:
            line = process.stdout.readline()
            break
        if process.poll() is not None:
            break
    if not line:
        process.kill()
        raise RuntimeError(f"worker {name} did not start (see /tmp/briotui-worker-{name}-*.log)")
    info = json.loads(line)
    return WorkerProcess(str(info["worker"]), process)


@contextmanager
def workers(url: str, token: str, *names: str, slots: int = 1) -> Iterator[list[WorkerProcess]]:
    """Workers for the duration of a block."""
    started: list[WorkerProcess] = []
    try:
        for name in names:
            started.append(start_worker(url, token, name, slots=slots))
        yield started
    finally:
        for worker in started:
            worker.stop()
