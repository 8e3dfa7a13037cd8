"""run_in_session: materialize, run, copy back only what changed (never caches)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.vfs.conftest import BASE_FILES, make_repo

from briotui.kernel.errors import CommandTimeout, PathRefused
from briotui.kernel.shell.session import is_cache_path, run_in_session
from briotui.kernel.vfs import SessionManager

SCRIPT = """\
import os, pathlib
p = pathlib.Path
p("README.md").write_text(p("README.md").read_text() + "edited\\n")
p("new/made.txt").parent.mkdir(exist_ok=True)
p("new/made.txt").write_text("made by the command\\n")
os.remove("notes.txt")
for cache in ("__pycache__/m.cpython-311.pyc", ".pytest_cache/v/x", ".ruff_cache/x", "src/y.pyc"):
    p(cache).parent.mkdir(parents=True, exist_ok=True)
    p(cache).write_bytes(b"cache")
print("cwd", os.getcwd().rsplit("/", 1)[-1])
"""


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[SessionManager]:
    root = tmp_path / "proj"
    make_repo(root, BASE_FILES, executable=("bin/run.sh",))
    m = SessionManager.open(root)
    yield m
    m.close()


def test_round_trip_copies_back_changes_but_not_caches(
    manager: SessionManager, tmp_path: Path
) -> None:
    session = manager.create(label="shell")
    session.write("tools/change.py", SCRIPT.encode(), False)
    run = run_in_session(
        session,
        ["python", "tools/change.py"],
        workdir=tmp_path / "work",
        timeout_s=60,
        max_output_bytes=10_000,
        sandbox=False,
    )
    assert run.output.exit_code == 0, run.output.stderr
    assert run.output.stdout == "cwd work\n"
    assert run.changed == ["README.md", "new/made.txt", "notes.txt"]
    assert session.read("README.md").endswith(b"edited\n")
    assert session.read("new/made.txt") == b"made by the command\n"
    assert session.stat("notes.txt") is None
    listed = [e.path for e in session.list_dir("", True)]
    assert not [p for p in listed if is_cache_path(p)]
    # The user's project is untouched, and the work directory is gone.
    project = tmp_path / "proj"
    assert (project / "notes.txt").exists()
    assert "edited" not in (project / "README.md").read_text()
    assert not (tmp_path / "work").exists()


def test_pytest_runs_in_a_session(manager: SessionManager, tmp_path: Path) -> None:
    session = manager.create(label="tests")
    session.write("test_demo.py", b"def test_ok():\n    assert 1 + 1 == 2\n", False)
    run = run_in_session(
        session,
        ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_demo.py"],
        workdir=tmp_path / "work",
        timeout_s=120,
        max_output_bytes=20_000,
        sandbox=False,
    )
    assert run.output.exit_code == 0, run.output.stdout + run.output.stderr
    assert "1 passed" in run.output.stdout
    assert run.changed == []


def test_cwd_inside_the_session(manager: SessionManager, tmp_path: Path) -> None:
    session = manager.create()
    session.write("src/where.py", b"import os\nprint(os.path.basename(os.getcwd()))\n", False)
    run = run_in_session(
        session,
        ["python", "where.py"],
        workdir=tmp_path / "work",
        cwd="src",
        timeout_s=60,
        max_output_bytes=1000,
        sandbox=False,
    )
    assert run.output.stdout == "src\n"
    with pytest.raises(PathRefused):
        run_in_session(
            session,
            ["python", "where.py"],
            workdir=tmp_path / "work",
            cwd="../..",
            timeout_s=60,
            max_output_bytes=1000,
            sandbox=False,
        )


def test_timeout_copies_nothing_back(manager: SessionManager, tmp_path: Path) -> None:
    session = manager.create()
    session.write(
        "slow.py", b"open('half.txt', 'w').write('x')\nimport time\ntime.sleep(60)\n", False
    )
    with pytest.raises(CommandTimeout):
        run_in_session(
            session,
            ["python", "slow.py"],
            workdir=tmp_path / "work",
            timeout_s=2,
            max_output_bytes=1000,
            sandbox=False,
        )
    assert session.stat("half.txt") is None
