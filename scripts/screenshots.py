"""Regenerate the SVG screenshots in screenshots/ from the real app over a demo project.

Run: .venv/bin/python scripts/screenshots.py
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
from pathlib import Path

from briotui.ui.app import make_app

OUT = Path(__file__).resolve().parent.parent / "screenshots"


def demo_project(root: Path) -> Path:
    project = root / "demo"
    project.mkdir()
    (project / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    return project


async def main() -> None:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(demo_project(Path(tmp)))
        async with app.run_test(size=(110, 28)) as pilot:
            await pilot.pause(0.5)
            app.save_screenshot(filename="home.svg", path=str(OUT))
    print(f"wrote {OUT / 'home.svg'}")


if __name__ == "__main__":
    asyncio.run(main())
