"""Regenerate the SVG screenshots in screenshots/ from the real app over a demo project.

Run: .venv/bin/python scripts/screenshots.py   (agents must be built: briotui agents build)

Each screenshot drives the real app, kernel and agents with the scripted provider over a
fresh git project. The Reviewer's findings on the review screen are recorded through the
kernel's state as the Reviewer agent publishes them (the scripted replies here only play
the Coder).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from briotui.kernel.llm.scripted import ScriptedProvider
from briotui.ui.app import BrioApp, make_app
from briotui.ui.screens.review import ReviewScreen

OUT = Path(__file__).resolve().parent.parent / "screenshots"
SIZE = (120, 34)

CALC = """def add(a, b):
    return a + b


def div(a, b):
    return a / b
"""

HINTS = """I'll add type hints to both functions and make `div` refuse a zero divisor
with a clear error instead of a bare `ZeroDivisionError`.

calc.py
```
<<<<<<< SEARCH
def add(a, b):
    return a + b
=======
def add(a: float, b: float) -> float:
    return a + b
>>>>>>> REPLACE
```

calc.py
```
<<<<<<< SEARCH
def div(a, b):
    return a / b
=======
def div(a: float, b: float) -> float:
    if b == 0:
        raise ValueError("div: the divisor must not be zero")
    return a / b
>>>>>>> REPLACE
```
"""

README = """README.md
```
<<<<<<< SEARCH
# calc
=======
# calc

Small, typed arithmetic helpers.
>>>>>>> REPLACE
```
"""


def demo_project(root: Path) -> Path:
    project = root / "calc"
    project.mkdir(parents=True)
    (project / "calc.py").write_text(CALC)
    (project / "README.md").write_text("# calc\n")
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run(
            ["git", "-c", "user.name=Demo", "-c", "user.email=demo@example.com", *args],
            cwd=project,
            check=True,
            env=env,
        )
    return project


def provider(root: Path, replies: list[Any]) -> ScriptedProvider:
    path = root / "replies.json"
    path.write_text(json.dumps(replies))
    return ScriptedProvider.from_file(path)


async def until(pilot: Any, check: Callable[[], bool], limit_s: float = 60) -> None:
    for _ in range(int(limit_s / 0.05)):
        if check():
            return
        await pilot.pause(0.05)
    raise SystemExit("the app did not get there in time")


def roots(app: BrioApp) -> list[dict[str, Any]]:
    tasks = (app.mirror.get("tasks") or {}).values()
    return sorted((t for t in tasks if not t.get("parent")), key=lambda t: t["created_at"])


async def request(pilot: Any, text: str) -> None:
    count = len(roots(pilot.app))
    await pilot.click("#request")
    await pilot.press(*text, "enter")
    await until(pilot, lambda: len(roots(pilot.app)) > count)


async def main_and_review(tmp: Path, config: Path) -> None:
    project = demo_project(tmp / "a")
    replies = [HINTS, {"text": README, "delay_ms": 60_000}]
    app = make_app(project, provider=provider(tmp, replies), config_dir=config, build=False)
    async with app.run_test(size=SIZE) as pilot:
        await request(pilot, "@coder add type hints to calc.py and guard div against zero")
        await until(pilot, lambda: roots(app)[-1]["status"] == "done")
        await request(pilot, "@coder describe the module in the README")
        await until(pilot, lambda: bool(app.workbench.running()))
        first = roots(app)[0]
        await app.screen.select_task(first["id"])  # type: ignore[attr-defined]
        await pilot.pause(0.3)
        app.save_screenshot(filename="main.svg", path=str(OUT))

        session_id = str(first["session"])
        hunks = app.workbench.sessions().get(session_id).diff().hunks()
        review = {
            "verdict": "approve",
            "findings": [
                {
                    "hunk_id": hunks[0].id,
                    "severity": "info",
                    "message": "Hints match how add() is called in the project.",
                    "suggestion": "",
                },
                {
                    "hunk_id": hunks[-1].id,
                    "severity": "warning",
                    "message": "Callers that caught ZeroDivisionError now get ValueError.",
                    "suggestion": "Mention it in the changelog.",
                },
            ],
        }
        record = getattr(app.workbench.kernel, "record_review", None)
        if record is not None:
            record(session_id, review)
        else:
            app.workbench.state.set(["sessions", session_id, "review"], review, parents=True)
        await app.push_screen(ReviewScreen(session_id))
        await until(pilot, lambda: bool(app.screen.query("HunkView")))
        await pilot.press("a")
        await pilot.pause(0.5)
        app.save_screenshot(filename="review.svg", path=str(OUT))
        for task in app.workbench.running():
            app.workbench.cancel(task)


async def capability(tmp: Path, config: Path) -> None:
    project = demo_project(tmp / "b")
    (project / ".brio").mkdir(exist_ok=True)
    (project / ".brio" / "config.toml").write_text(
        '[agents.coder]\nread = ["**"]\nwrite = ["src/**"]\n'
    )
    app = make_app(project, provider=provider(tmp, [README]), config_dir=config, build=False)
    async with app.run_test(size=SIZE) as pilot:
        await request(pilot, "@coder describe the module in the README")
        await until(pilot, lambda: type(app.screen).__name__ == "CapabilityPrompt")
        await pilot.pause(0.3)
        app.save_screenshot(filename="capability.svg", path=str(OUT))
        await pilot.press("n")
        await until(pilot, lambda: not app.workbench.running())


async def main() -> None:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = root / "config"
        config.mkdir()
        await main_and_review(root, config)
        await capability(root, config)
    for name in ("main.svg", "review.svg", "capability.svg"):
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    asyncio.run(main())
