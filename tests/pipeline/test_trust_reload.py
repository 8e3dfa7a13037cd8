"""Trusting a project while the kernel runs (the TUI's trust dialog) makes its
``[tests] command`` run: the kernel's shell service takes the new command and the
project's environment, not only the new allowlist. Real kernel, agents and tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.scripted import REVIEW, edit, plan
from tests.trust_helpers import trust_project

from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply

pytestmark = pytest.mark.slow

COMMAND = "python -m py_compile calc.py"
"""Not in the built-in allowlist: only the user's own (trusted) test command may run it."""


def untrusted_project(root: Path) -> Path:
    root.mkdir()
    (root / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (root / ".brio").mkdir()
    (root / ".brio" / "config.toml").write_text(f'[tests]\ncommand = "{COMMAND}"\n')
    git = ["git", "-c", "user.name=T", "-c", "user.email=t@e.x"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "calc.py"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=root, check=True)
    return root


async def test_the_test_command_runs_after_trust_in_a_running_kernel(
    tmp_path: Path, built_agents: list[str]
) -> None:
    root = untrusted_project(tmp_path / "proj")
    kernel = Kernel(root)
    try:
        assert not kernel.shell().check(COMMAND.split()).allowed  # untrusted: not its command
        trust_project(root)
        kernel.reload_config()  # what the TUI does once the user trusts the project
        assert kernel.shell().check(COMMAND.split()).allowed
        provider = ScriptedProvider(
            [
                plan({"title": "doc", "goal": "Document add", "files": ["calc.py"]}),
                ScriptedReply(
                    edit("calc.py", "    return a + b", "    return a + b  # the sum"),
                    agent="coder",
                ),
                REVIEW,
            ]
        )
        result = await kernel.wait(await kernel.submit("Document add", provider=provider))
        run = kernel.test_run(result.session_id)
        assert run is not None, result
        assert run["exit_code"] == 0, run
        assert result.verified is True, result
    finally:
        await kernel.close()
