"""The test command runs in the project's own environment: its virtualenv's bin comes
first on PATH, and the user's own ``[tests] command`` may name its program by a path.
A real venv (``python -m venv --without-pip``) holding a module only the project has,
a real unittest suite, the real pipeline and agents; ``doctor`` says which environment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.scripted import REVIEW, edit, plan
from tests.trust_helpers import trust_project

from briotui.cli.main import main
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply

pytestmark = pytest.mark.slow

TEST = (
    "import unittest\n\nimport projdep\nfrom calc import add\n\n\n"
    "class T(unittest.TestCase):\n    def test_add(self):\n"
    "        self.assertEqual(add(2, 3), projdep.FIVE)\n"
)


def project_with_venv(root: Path, command: str) -> Path:
    """A git project whose tests import ``projdep``, which only its ``.venv`` has."""
    root.mkdir(parents=True)
    (root / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (root / "test_calc.py").write_text(TEST)
    (root / ".gitignore").write_text(".venv/\n")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / ".venv")], check=True)
    [site] = (root / ".venv" / "lib").glob("python3*/site-packages")
    (site / "projdep.py").write_text("FIVE = 5\n")
    (root / ".brio").mkdir()
    (root / ".brio" / "config.toml").write_text(f"[tests]\ncommand = {json.dumps(command)}\n")
    git = ["git", "-c", "user.name=T", "-c", "user.email=t@e.x"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "calc.py", "test_calc.py", ".gitignore"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=root, check=True)
    trust_project(root)
    return root


def replies() -> ScriptedProvider:
    return ScriptedProvider(
        [
            plan({"title": "doc", "goal": "Document add", "files": ["calc.py"]}),
            ScriptedReply(
                edit("calc.py", "    return a + b", "    return a + b  # the sum"),
                agent="coder",
                match="Document add",
            ),
            REVIEW,
        ]
    )


@pytest.mark.parametrize("command", ["python -m unittest -v", ".venv/bin/python -m unittest -v"])
async def test_the_tests_run_with_the_projects_virtualenv(
    tmp_path: Path, built_agents: list[str], command: str
) -> None:
    project = project_with_venv(tmp_path / "proj", command)
    kernel = Kernel(project)
    try:
        task_id = await kernel.submit("Document add", provider=replies())
        result = await kernel.wait(task_id)
        run = kernel.test_run(result.session_id)
        assert run is not None, result
        assert "No module named" not in run["output"]
        assert run["exit_code"] == 0, run["output"]
        assert result.verified is True
    finally:
        await kernel.close()


def test_doctor_says_which_environment_the_tests_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = project_with_venv(tmp_path / "proj", "python -m unittest")
    capsys.readouterr()
    main(["-C", str(project), "doctor", "--json"])
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    detail = checks["tests"]["detail"]
    assert "python -m unittest" in detail
    assert str((project / ".venv").resolve()) in detail


def test_doctor_says_an_untrusted_projects_venv_is_not_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A repository's own .venv waits for trust: doctor says it is not used and why, and
    `briotui trust` lists it among what the project asks for."""
    project = project_with_venv(tmp_path / "proj", "python -m unittest")
    from briotui.kernel.settings import revoke_trust

    revoke_trust(project)
    capsys.readouterr()
    main(["-C", str(project), "doctor", "--json"])
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert "virtualenv" in checks["project trust"]["detail"]
    assert "not used because the project is not trusted" in checks["tests"]["detail"]
    main(["-C", str(project), "trust", "--json"])
    shown = json.loads(capsys.readouterr().out)
    assert str((project / ".venv").resolve()) in json.dumps(shown)
