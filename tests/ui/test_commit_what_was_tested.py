"""What the review screen commits is what was tested: accepting another hunk while the
tests run on the accepted subset (they can take minutes) makes the commit refuse with a
clear notice, instead of writing a hunk no test saw. Real app (Textual pilot), real
kernel, agents, unittest run in the sandbox, real git repository."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.trust_helpers import trust_project

from briotui.kernel.llm.scripted import ScriptedProvider
from briotui.ui.app import make_app
from briotui.ui.screens.review import ReviewScreen

from .helpers import EDIT_REPLY, README_REPLY, run_request, tasks_of, wait_until

pytestmark = pytest.mark.slow

SLOW_TEST = (
    "import time\nimport unittest\n\n\nclass Slow(unittest.TestCase):\n"
    "    def test_slow(self):\n        time.sleep(4)\n"
)


async def test_a_hunk_accepted_during_the_subset_run_is_not_committed(
    project: Path,
    built_agents: list[str],
    scripted: Callable[..., ScriptedProvider],
    config_dir: Path,
) -> None:
    (project / "test_slow.py").write_text(SLOW_TEST)
    (project / ".brio").mkdir(exist_ok=True)
    (project / ".brio" / "config.toml").write_text('[tests]\ncommand = "python -m unittest -q"\n')
    trust_project(project, user_dir=config_dir)
    provider = scripted({"text": EDIT_REPLY + "\n" + README_REPLY, "agent": "coder"})
    app = make_app(project, provider=provider, config_dir=config_dir, build=False)
    async with app.run_test(size=(100, 30)) as pilot:
        task_id = await run_request(pilot, "@coder comment the sum and edit the readme")
        session_id = tasks_of(app)[task_id]["session"]
        kernel = app.workbench.kernel
        files = {f["path"]: f["hunks"] for f in app.mirror["sessions"][session_id]["files"]}
        [tested] = [h["id"] for h in files["app.py"]]
        [later] = [h["id"] for h in files["README.md"]]
        await kernel.decide(session_id, [tested], "accepted")
        await kernel.decide(session_id, [later], "rejected", reason="not now")
        await pilot.press("ctrl+r")
        await app.workers.wait_for_complete()
        assert isinstance(app.screen, ReviewScreen)
        sessions_before = len(kernel.sessions().store.query("SELECT id FROM sessions"))
        await pilot.press("c")  # the tests run on the one accepted hunk (a few seconds)
        await wait_until(
            pilot,
            lambda: len(kernel.sessions().store.query("SELECT id FROM sessions")) > sessions_before,
            30,
        )  # the scratch session of the subset run exists: its test run is under way
        await kernel.decide(session_id, [later], "accepted")  # e.g. from another window
        await app.workers.wait_for_complete()
        await pilot.pause()
        notes = [(n.title, n.message) for n in app._notifications]
        assert "# the sum" not in (project / "app.py").read_text(), notes
        assert (project / "README.md").read_text() == "# demo\n", notes
        assert any(t == "Decisions changed" for t, _ in notes), notes
        assert app.mirror["sessions"][session_id]["state"] == "open"
        assert json.dumps(notes)
