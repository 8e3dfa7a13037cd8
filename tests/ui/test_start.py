"""The TUI's start: its first frame comes before the kernel is even imported, and a
request typed before the kernel runs waits for it and then runs.

Each check runs in a fresh interpreter, since what it looks at is which modules a
start has imported (this test process has imported them all long ago), and the app
there is Textual's own, without the suite's wait for the kernel (``conftest.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
HEAVY = (
    "briotui.kernel.kernel",
    "briotui.kernel.runtime.instance",
    "briotui.kernel.vfs",
    "wasmtime",
)


def python(script: str, *args: str) -> dict:  # type: ignore[type-arg]
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict = json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[type-arg]
    return result


def test_importing_the_app_does_not_import_the_kernel() -> None:
    loaded = python(
        "import json, sys\nimport briotui.ui.app\n"
        f"print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    )
    assert not any(loaded.values()), loaded


def test_the_command_line_reaches_the_tui_without_the_kernel(project: Path) -> None:
    script = f"""
import json, sys
import briotui.ui.app as ui

def run(self, *args, **kwargs):  # where Textual would take over the terminal
    print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))

ui.BrioApp.run = run
from briotui.cli.main import main
main(["-C", sys.argv[1]])
"""
    loaded = python(script, str(project))
    assert not any(loaded.values()), loaded


START = """
import asyncio, json, sys, threading
from pathlib import Path
import briotui.ui.app as ui
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply

imported = ui._import_kernel
typed = threading.Event()

def slow_import():  # the kernel's imports take long: the user is quicker
    typed.wait(60)
    imported()

ui._import_kernel = slow_import
seen = {}

on_ready = ui.BrioApp.on_ready

def first_frame(self):
    seen["kernel_at_first_frame"] = "briotui.kernel.kernel" in sys.modules
    on_ready(self)

ui.BrioApp.on_ready = first_frame

async def main():
    provider = ScriptedProvider([ScriptedReply("Hello from the model.")])
    app = ui.BrioApp(sys.argv[1], provider=provider, config_dir=Path(sys.argv[2]), build=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.click("#request")
        await pilot.press(*"@echo hi", "enter")
        seen["typed_before_start"] = not app.kernel_started.is_set()
        typed.set()
        for _ in range(2400):
            tasks = app.mirror.get("tasks") or {}
            if tasks and all(t["status"] in ("done", "failed") for t in tasks.values()):
                break
            await pilot.pause(0.05)
        tasks = (app.mirror.get("tasks") or {}).values()
        seen["statuses"] = [t["status"] for t in tasks if not t.get("parent")]
    print(json.dumps(seen))

asyncio.run(main())
"""


@pytest.mark.slow
def test_first_frame_before_the_kernel_and_an_early_request_waits_for_it(
    project: Path, built_agents: list[str], config_dir: Path
) -> None:
    seen = python(START, str(project), str(config_dir))
    assert seen["kernel_at_first_frame"] is False, seen
    assert seen["typed_before_start"] is True, seen
    assert seen["statuses"] == ["done"], seen
