"""A watched project keeps a live base: new sessions derive it in O(changes)."""

from __future__ import annotations

import time
from pathlib import Path

import git

from briotui.kernel.vfs import SessionManager


def wait_for_pending(manager: SessionManager, *paths: str, timeout: float = 5.0) -> None:
    """Wait until the watcher has reported ``paths`` (no fixed sleeps)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if set(paths) <= manager.pending_changes():
            return
        time.sleep(0.01)
    raise AssertionError(f"the watcher never reported {paths}")


def test_unchanged_project_reuses_the_base(manager: SessionManager) -> None:
    manager.start_watching()
    first = manager.create()
    second = manager.create()
    assert second.base is first.base
    assert second.id != first.id


def test_without_a_watcher_a_create_refreshes_the_recorded_base(
    manager: SessionManager, repo_dir: Path
) -> None:
    first = manager.create()
    assert manager.create().base is first.base  # nothing changed: the recorded base
    (repo_dir / "src/util.py").write_text("def f():\n    return 3\n")
    third = manager.create()
    assert third.base is not first.base
    assert third.read("src/util.py") == b"def f():\n    return 3\n"


def test_user_edits_reach_the_next_session(manager: SessionManager, repo_dir: Path) -> None:
    manager.start_watching()
    before = manager.create()
    (repo_dir / "src/util.py").write_text("def f():\n    return 2\n")
    (repo_dir / "fresh.txt").write_text("new file\n")
    (repo_dir / "debug.log").write_text("ignored by .gitignore\n")
    (repo_dir / "notes.txt").unlink()
    wait_for_pending(manager, "src/util.py", "fresh.txt", "notes.txt")
    after = manager.create()
    assert after.base is not before.base
    assert after.read("src/util.py") == b"def f():\n    return 2\n"
    assert after.read("fresh.txt") == b"new file\n"
    assert after.stat("notes.txt") is None
    assert after.stat("debug.log") is None
    # the earlier session still sees the project as it was when it was created
    assert before.read("src/util.py") == b"def f():\n    return 1\n"
    assert before.read("notes.txt") == b"no trailing newline"
    # a derived base reloads from the store as it was
    manager.close()
    reopened = SessionManager.open(repo_dir)
    try:
        again = reopened.get(after.id)
        assert again.read("src/util.py") == b"def f():\n    return 2\n"
        assert again.stat("notes.txt") is None
        assert again.stat("fresh.txt") is not None
    finally:
        reopened.close()


def test_derived_base_keeps_the_edit_after_the_user_reverts(
    manager: SessionManager, repo_dir: Path
) -> None:
    manager.start_watching()
    manager.create()
    (repo_dir / "src/util.py").write_text("edited\n")
    wait_for_pending(manager, "src/util.py")
    session = manager.create()
    (repo_dir / "src/util.py").write_text("def f():\n    return 1\n")
    assert session.read("src/util.py") == b"edited\n"  # captured when derived


def test_a_new_head_rebuilds_the_base(manager: SessionManager, repo_dir: Path) -> None:
    manager.start_watching()
    first = manager.create()
    repo = git.Repo(repo_dir)
    (repo_dir / "README.md").write_text("# Changed and committed\n")
    repo.git.commit("-qam", "second", "--no-verify")
    second = manager.create()
    assert second.base.head != first.base.head
    assert second.read("README.md") == b"# Changed and committed\n"


def test_a_watcher_stopped_before_it_is_ready_does_not_hold_up_its_start(
    manager: SessionManager,
) -> None:
    """A TUI quit right after its start stops the watcher before its first report:
    ``start_watching`` (waiting for that report, up to 5 s) returns as soon as the
    watcher has ended, instead of holding up the app's exit for the full 5 s."""
    import threading

    starting = threading.Thread(target=manager.start_watching)
    starting.start()
    while not manager.watching:  # the watcher thread exists; its first report is ~0.1 s away
        time.sleep(0.001)
    manager.stop_watching()
    starting.join(timeout=3)
    assert not starting.is_alive()
