"""The base index persists across processes: a fresh process (a CLI run) starts from
the base the previous one recorded instead of listing and stat-ing the whole project,
and still sees every file changed in between."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from briotui.kernel.paths import ProjectPaths

from .conftest import BASE_FILES, make_repo

CHILD = """
import json, sys
from briotui.kernel.vfs import SessionManager
m = SessionManager.open(sys.argv[1])
s = m.create(task="index test")
out = {"base": s.base.id, "files": sorted(s.base.files), "left_out": s.base.left_out}
for rel in sys.argv[2:]:
    try:
        out[rel] = s.read(rel).decode()
    except Exception as exc:
        out[rel] = type(exc).__name__
m.close()
print(json.dumps(out))
"""


def _create_in_child(root: Path, *reads: str) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), *reads],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    data = json.loads(proc.stdout)
    assert isinstance(data, dict)
    return data


def _manifest(root: Path, base_id: object) -> dict[str, object]:
    path = ProjectPaths.at(root).sessions / "bases" / f"{base_id}.json"
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def test_a_fresh_process_reuses_the_base_and_sees_what_changed(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    make_repo(root, BASE_FILES)
    first = _create_in_child(root)
    assert "parent" not in _manifest(root, first["base"])  # built from the project

    # Nothing changed: the next process takes the same base as it is.
    again = _create_in_child(root)
    assert again["base"] == first["base"]

    # Changed between the processes: same size, mtime put back; a new untracked file;
    # a deleted file; a dirty file edited again.
    app = root / "src/app.py"
    st = app.stat()
    old = app.read_bytes()
    app.write_bytes(old.replace(b"line 7\n", b"LINE 7\n"))
    os.utime(app, ns=(st.st_atime_ns, st.st_mtime_ns))
    (root / "fresh.txt").write_text("new file\n")
    (root / "notes.txt").unlink()
    second = _create_in_child(root, "src/app.py", "fresh.txt", "notes.txt")
    manifest = _manifest(root, second["base"])
    assert manifest["parent"] == first["base"]  # derived from the persisted base
    assert second["src/app.py"] == old.replace(b"line 7\n", b"LINE 7\n").decode()
    assert second["fresh.txt"] == "new file\n"
    assert second["notes.txt"] == "WorkspaceFileNotFound"
    files = second["files"]
    assert isinstance(files, list)
    assert "fresh.txt" in files
    assert "notes.txt" not in files

    (root / "fresh.txt").write_text("edited again\n")
    third = _create_in_child(root, "fresh.txt")
    assert _manifest(root, third["base"])["parent"] == second["base"]
    assert third["fresh.txt"] == "edited again\n"

    # A file git now ignores leaves the base, as a full build would leave it out.
    (root / ".gitignore").write_text("ignored/\n*.log\nfresh.txt\n")
    fourth = _create_in_child(root)
    files = fourth["files"]
    assert isinstance(files, list)
    assert "fresh.txt" not in files


def test_a_new_head_rebuilds_the_base(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    repo = make_repo(root, BASE_FILES)
    first = _create_in_child(root)
    (root / "README.md").write_text("# Committed since\n")
    repo.git.commit("-q", "-am", "next", "--no-verify")
    second = _create_in_child(root, "README.md")
    assert second["base"] != first["base"]
    assert "parent" not in _manifest(root, second["base"])
    assert second["README.md"] == "# Committed since\n"


def test_a_recorded_base_that_cannot_be_loaded_is_rebuilt(tmp_path: Path) -> None:
    """The git status started while the recorded base loads is stopped when the base
    cannot be used (its manifest is gone): the process builds a new base, which sees
    the change made in between."""
    root = tmp_path / "proj"
    make_repo(root, BASE_FILES)
    first = _create_in_child(root)
    (ProjectPaths.at(root).sessions / "bases" / f"{first['base']}.json").unlink()
    (root / "src/util.py").write_text("changed in between\n")
    second = _create_in_child(root, "src/util.py")
    assert second["base"] != first["base"]
    assert "parent" not in _manifest(root, second["base"])
    assert second["src/util.py"] == "changed in between\n"


def test_a_recorded_base_loads_back_exactly(tmp_path: Path) -> None:
    """What a fresh process loads is the base as it was built: sizes, times, inodes,
    the executable bit and symlinks, names that are not UTF-8 included."""
    from briotui.kernel.vfs import SessionManager
    from briotui.kernel.vfs.snapshot import BaseSnapshot

    root = tmp_path / "proj"
    root.mkdir()
    odd = os.fsdecode(b"caf\xe9-\xff.txt")
    (root / odd).write_text("latin-1 name, committed\n")
    (root / "link-to-readme").symlink_to("README.md")
    (root / "empty.txt").write_bytes(b"")
    make_repo(root, BASE_FILES, executable=("bin/run.sh",))
    m = SessionManager.open(root)
    try:
        built = m.create(task="t").base
        loaded = BaseSnapshot.load(
            built.id,
            root,
            m.store,
            m.blobs,
            m.policy,
            m.manifest_dir,
            max_file_size=m.max_file_size,
        )
    finally:
        m.close()
    assert loaded.files == built.files
    assert loaded.files["bin/run.sh"].executable
    assert loaded.files["link-to-readme"].symlink
    assert not loaded.files["README.md"].executable
    assert odd in loaded.files
    assert loaded.files["empty.txt"].size == 0
