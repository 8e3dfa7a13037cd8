"""Commands run in a session cannot redirect the kernel's writes with symlinks, nor
block it with FIFOs; what they create that is not a file is reported, not dropped.

The work directory persists between runs (:class:`ShellService`), so whatever a run
plants there is still there when the next run's sync writes.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.vfs.conftest import BASE_FILES, make_repo

from briotui.kernel.errors import PathRefused
from briotui.kernel.paths import ProjectPaths
from briotui.kernel.shell.session import ShellService
from briotui.kernel.vfs import SessionManager


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[SessionManager]:
    root = tmp_path / "proj"
    make_repo(root, BASE_FILES, executable=("bin/run.sh",))
    m = SessionManager.open(root)
    yield m
    m.close()


def _py(code: str) -> list[str]:
    return ["python", "-c", code]


def _run_with_deadline(fn: object, seconds: float = 60) -> None:
    """Run ``fn`` in a thread; fail (instead of hanging the suite) if it blocks."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn()  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "the kernel blocked (it opened a FIFO)"
    if errors:
        raise errors[0]


def test_planted_symlink_never_redirects_the_next_sync(
    manager: SessionManager, tmp_path: Path
) -> None:
    outside = tmp_path / "outside-file"
    outside.write_text("precious\n")
    outside.chmod(0o600)
    shell = ShellService(ProjectPaths.at(manager.root))
    session = manager.create(label="tests")
    # A test run's conftest plants links: one at the temp name the old sync used for
    # src/app.py, one as a new file of its own.
    plant = (
        "import os\n"
        f"os.symlink({str(outside)!r}, 'src/.app.py.brio-mat.tmp')\n"
        f"os.symlink({str(outside)!r}, 'victim.py')\n"
    )
    session.write("conftest.py", plant.encode(), False)
    first = shell.run(session, _py("import conftest"), cwd="", timeout_s=60)
    assert first.output.exit_code == 0, first.output.stderr
    # The agent edits files between runs, so the next sync writes them.
    session.write("src/app.py", b"print('edited')\n", False)
    session.write("victim.py", b"x = 1\n", False)
    second = shell.run(session, _py("pass"), cwd="", timeout_s=60)
    assert second.output.exit_code == 0, second.output.stderr
    assert outside.read_text() == "precious\n"
    assert oct(outside.stat().st_mode & 0o777) == oct(0o600)
    # The links the command made are changes of the session, reviewable as links.
    # (victim.py was then overwritten by the agent's write, a regular file again.)
    assert "src/.app.py.brio-mat.tmp" in first.changed
    assert "victim.py" in first.changed
    change = session.diff().file("src/.app.py.brio-mat.tmp")
    assert change is not None
    assert change.new_symlink
    assert change.new == os.fsencode(str(outside))
    assert "new file mode 120000" in change.text()
    shell_dir = shell.workdir(session)
    assert (shell_dir / "victim.py").read_bytes() == b"x = 1\n"
    assert not (shell_dir / "victim.py").is_symlink()


def test_planted_symlinked_directory_never_receives_files(
    manager: SessionManager, tmp_path: Path
) -> None:
    outside = tmp_path / "outside-dir"
    outside.mkdir()
    shell = ShellService(ProjectPaths.at(manager.root))
    session = manager.create(label="tests")
    plant = f"import os, shutil\nshutil.rmtree('bin')\nos.symlink({str(outside)!r}, 'bin')\n"
    first = shell.run(session, _py(plant), cwd="", timeout_s=60)
    assert first.output.exit_code == 0, first.output.stderr
    # The agent then adds a script under bin/: the session refuses (bin is a link
    # now), or, before the fix, the next sync created it outside.
    with contextlib.suppress(PathRefused):
        session.write("bin/new.sh", b"#!/bin/sh\necho pwned\n", True)
    second = shell.run(session, _py("pass"), cwd="", timeout_s=60)
    assert second.output.exit_code == 0, second.output.stderr
    assert list(outside.iterdir()) == []
    change = session.diff().file("bin")
    assert change is not None
    assert change.new_symlink
    assert change.new == os.fsencode(str(outside))
    deleted = session.diff().file("bin/run.sh")
    assert deleted is not None
    assert deleted.status == "deleted"


def test_materialize_replaces_a_planted_directory_link(
    manager: SessionManager, tmp_path: Path
) -> None:
    """Even when the session still has a directory where the work dir has a link."""
    outside = tmp_path / "outside-dir"
    outside.mkdir()
    session = manager.create()
    mat = session.materialize(tmp_path / "work")
    import shutil

    shutil.rmtree(tmp_path / "work" / "src")
    (tmp_path / "work" / "src").symlink_to(outside)
    session.write("src/util.py", b"def f():\n    return 3\n", True)
    session.write("src/more.py", b"y = 2\n", False)
    mat.sync_out()
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "work" / "src").is_symlink()
    assert (tmp_path / "work" / "src" / "more.py").read_bytes() == b"y = 2\n"
    assert (tmp_path / "work" / "src" / "util.py").read_bytes() == b"def f():\n    return 3\n"


def test_a_fifo_made_by_a_command_is_left_out_not_opened(
    manager: SessionManager, tmp_path: Path
) -> None:
    shell = ShellService(ProjectPaths.at(manager.root))
    session = manager.create(label="tests")
    make = "import os\nos.mkfifo('pipe')\nos.symlink('pipe', 'to_pipe.py')\n"

    def run() -> None:
        out = shell.run(session, _py(make), cwd="", timeout_s=60)
        assert out.output.exit_code == 0, out.output.stderr
        shell.run(session, _py("pass"), cwd="", timeout_s=60)

    _run_with_deadline(run)
    assert session.stat("pipe") is None
    reasons = dict(session.left_out())
    assert "fifo" in reasons["pipe"]
    link = session.diff().file("to_pipe.py")
    assert link is not None
    assert link.new_symlink
    assert link.new == b"pipe"


def test_many_directories_sync_both_ways(manager: SessionManager, tmp_path: Path) -> None:
    """Directory fds are cached a few at a time, not one per directory of the tree."""
    session = manager.create()
    for i in range(150):
        session.write(f"d{i:03}/sub/f.txt", f"{i}\n".encode(), False)
    mat = session.materialize(tmp_path / "work")
    for i in range(150):
        assert (tmp_path / "work" / f"d{i:03}/sub/f.txt").read_text() == f"{i}\n"
    (tmp_path / "work" / "d149/sub/f.txt").write_text("changed\n")
    (tmp_path / "work" / "d000/sub/f.txt").unlink()
    assert mat.sync_back() == ["d000/sub/f.txt", "d149/sub/f.txt"]
    assert session.read("d149/sub/f.txt") == b"changed\n"
    assert session.stat("d000/sub/f.txt") is None
    mat.remove()
