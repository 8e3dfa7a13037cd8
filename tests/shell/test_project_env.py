"""Finding the project's virtualenv for its commands: ``.venv``, ``venv``, then the
``VIRTUAL_ENV`` active at start; real venvs made by ``python -m venv``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    # a project's own venv is used only as trusted (its real path), else the user's
    assert project_env(root, {"VIRTUAL_ENV": str(active)}).venv == active
    assert project_env(root, {"VIRTUAL_ENV": str(active)}, trusted_venv=plain).venv == plain
    dotted = make_venv(root / ".venv")
    found = project_env(root, {"VIRTUAL_ENV": str(active)}, trusted_venv=dotted)
    assert (found.venv, found.source) == (dotted, ".venv")
    assert str(dotted) in found.line()
    # trusting one venv is not trusting another put in its place
    untrusted = project_env(root, {}, trusted_venv=plain)
    assert untrusted.venv is None
    assert "not trusted" in untrusted.line()
    # a directory that only looks like one is not a virtualenv
    assert project_env(tmp_path, {"VIRTUAL_ENV": str(tmp_path / "nothing")}).venv is None


# --- a repository's own .venv before trust (the review's finding) ---------------------

LEAK = """\
import pathlib
def test_leak():
    try:
        print("LEAKED:" + pathlib.Path({secret!r}).read_text())
    except OSError as exc:
        print("SAFE:" + type(exc).__name__)
"""


def hostile_project(tmp_path: Path, home: Path) -> tuple[Path, Path]:
    """A git project shipping ``.venv`` whose pyvenv.cfg names ``~/.ssh/bin`` as its
    Python home and whose ``bin/git`` would shadow the real git; returns (root, secret)."""
    from tests.conftest import make_git_project

    secret = home / ".ssh" / "id_rsa"
    (home / ".ssh" / "bin").mkdir(parents=True)
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY----- hunter2")
    root = make_git_project(tmp_path / "proj")
    venv = root / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(f"home = {home / '.ssh' / 'bin'}\nversion = 3.12.0\n")
    fake_git = venv / "bin" / "git"
    fake_git.write_text("#!/bin/sh\necho HIJACKED-GIT\n")
    fake_git.chmod(0o755)
    (root / "test_leak.py").write_text(LEAK.format(secret=str(secret)))
    return root, secret


async def test_an_untrusted_repos_venv_exposes_nothing_and_shadows_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real kernel and runner (bubblewrap where it works, else the reaper):
    the repo's pyvenv.cfg cannot get ``~/.ssh`` shown to the default-allowed pytest,
    and its ``.venv/bin`` does not come first on PATH while the project is untrusted."""
    from briotui.kernel.kernel import Kernel

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    root, _secret = hostile_project(tmp_path, home)
    kernel = Kernel(root)
    try:
        shell = kernel.shell()
        session = kernel.sessions().create(label="t", task="t")
        run = shell.run(
            session, ["pytest", "-q", "-s", "test_leak.py"], cwd="", timeout_s=120, confirmed=True
        )
        out = run.output.stdout + run.output.stderr
        assert "hunter2" not in out, out
        assert "SAFE:" in out, out
        git = shell.run(session, ["git", "status", "--short"], cwd="", timeout_s=60, confirmed=True)
        assert "HIJACKED" not in git.output.stdout + git.output.stderr
        assert shell.env.venv is None, shell.env
        assert "not trusted" in shell.env.line()
    finally:
        await kernel.close()


def test_pyvenv_home_must_be_a_real_python_outside_home_dot_dirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even a trusted venv's ``home =`` shows its prefix only when that prefix is a real
    Python installation (``lib/python3.*/os.py``) and not a dot-directory of the home."""
    from briotui.kernel.shell.runner import _toolchain

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    root, _secret = hostile_project(tmp_path, home)
    shown = _toolchain([], [root / ".venv"])
    assert not any(p.startswith(str(home / ".ssh")) for p in shown), shown
    # a real installation in a home dot-directory itself is refused too
    fake = home / ".pyenvlike"
    (fake / "lib" / "python3.12").mkdir(parents=True)
    (fake / "lib" / "python3.12" / "os.py").write_text("")
    (fake / "bin").mkdir()
    (root / ".venv" / "pyvenv.cfg").write_text(f"home = {fake / 'bin'}\n")
    assert str(fake) not in _toolchain([], [root / ".venv"])
    # a real one elsewhere (here: the base of a venv made by python -m venv) is shown
    from briotui.kernel.shell.runner import _base_python

    real = make_venv(tmp_path / "realvenv")
    assert _base_python(real) == [os.path.realpath(sys.base_prefix)]
