"""``briotui serve --nats`` publishes its kernel's state; ``attach --nats`` finds it by default."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.cluster.conftest import NatsServer
from tests.conftest import make_git_project

from briotui.cli.cmd_attach import namespace_of
from briotui.kernel.cluster.observer import ObserverKernel
from briotui.kernel.errors import ObserverReadOnly


async def test_serve_with_nats_publishes_the_state_an_observer_follows(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    project = make_git_project(tmp_path / "proj")
    (project / "replies.json").write_text("[]")
    env = {**os.environ, "BRIOTUI_NATS_TOKEN": nats_server.token}
    proc = subprocess.Popen(  # noqa: ASYNC220 - the real command, stopped below
        [
            sys.executable,
            "-m",
            "briotui",
            "-C",
            str(project),
            "serve",
            "--port",
            "0",
            "--json",
            "--nats",
            nats_server.url,
            "--provider",
            f"scripted:{project / 'replies.json'}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        printed = ""
        while not printed.rstrip().endswith("}"):  # one JSON object, indented
            line = await asyncio.to_thread(proc.stdout.readline)
            assert line, proc.stderr.read() if proc.stderr else ""
            printed += line
        info = json.loads(printed)
        # an observer in a clone of the project finds it with no --namespace
        assert info["namespace"] == namespace_of(project)
        observer = await ObserverKernel.follow(
            nats_server.url, f"brio.{info['namespace']}", token=nats_server.token
        )
        try:
            assert set(observer.follower.tree) >= {"tasks", "sessions", "agents"}
            with pytest.raises(ObserverReadOnly):
                await observer.submit("change something")
        finally:
            await observer.close()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
