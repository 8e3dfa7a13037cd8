"""Per-agent fuel and memory are measured from the store and published live."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from briotui.cli.main import main
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply
from briotui.kernel.runtime.context import RunBindings
from briotui.kernel.state import StatePatch

pytestmark = pytest.mark.slow


async def test_agent_meters_are_published_while_it_runs(kernel: Kernel) -> None:
    seen: list[dict[str, Any]] = []

    def watch(patch: StatePatch) -> None:
        for op in patch.ops:
            parts = op["path"].split("/")
            if len(parts) == 3 and parts[1] == "agents" and op["op"] in ("add", "replace"):
                seen.append(dict(op["value"]))

    kernel.state.subscribe(watch)
    provider = ScriptedProvider([ScriptedReply("Metered reply.", delay_ms=250)])
    outcome = await kernel.run_agent("echo", "meter me", bindings=RunBindings(provider=provider))
    running = [v for v in seen if v.get("state") == "running"]
    assert running, seen
    metered = [v for v in running if v.get("fuel_used", 0) > 0 and v.get("memory_bytes", 0) > 0]
    assert metered, running
    last = metered[-1]
    assert last["agent"] == "echo"
    assert last["fuel_limit"] > last["fuel_used"]
    assert last["memory_limit"] >= last["memory_bytes"]
    assert last["peak_memory_bytes"] >= last["memory_bytes"]
    assert outcome.usage.peak_memory_bytes > 0
    assert outcome.usage.peak_memory_bytes == max(v["peak_memory_bytes"] for v in metered)
    assert outcome.usage.fuel >= last["fuel_used"]


def test_run_json_reports_real_peak_memory(project: Path, built_agents: list[str]) -> None:
    replies = project.parent / "replies.json"
    replies.write_text(json.dumps(["The echo agent answered."]))
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(
            [
                "-C",
                str(project),
                "run",
                "say hi",
                "--agent",
                "echo",
                "--provider",
                f"scripted:{replies}",
                "--json",
            ]
        )
    assert code == 0, out.getvalue()
    data = json.loads(out.getvalue())
    assert data["usage"]["peak_memory_bytes"] > 1 << 20
    assert data["usage"]["fuel"] > 0
