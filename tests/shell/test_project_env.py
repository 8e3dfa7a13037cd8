"""Finding the project's virtualenv for its commands: ``.venv``, ``venv``, then the
``VIRTUAL_ENV`` active at start; real venvs made by ``python -m venv``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from briotui.kernel.shell.runner import default_safe_path, project_env


def make_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path.resolve()


def test_venv_then_active_virtual_env_then_none(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    active = make_venv(tmp_path / "elsewhere")
    none = project_env(root, {})
    assert none.venv is None
    assert none.path == default_safe_path()
    from_env = project_env(root, {"VIRTUAL_ENV": str(active)})
    assert from_env.venv == active
    assert from_env.source == "VIRTUAL_ENV"
    assert from_env.path.split(":")[0] == str(active / "bin")
    plain = make_venv(root / "venv")
    assert project_env(root, {"VIRTUAL_ENV": str(active)}).venv == plain
    dotted = make_venv(root / ".venv")
    found = project_env(root, {"VIRTUAL_ENV": str(active)})
    assert (found.venv, found.source) == (dotted, ".venv")
    assert str(dotted) in found.line()
    # a directory that only looks like one is not a virtualenv
    assert project_env(tmp_path, {"VIRTUAL_ENV": str(tmp_path / "nothing")}).venv is None
