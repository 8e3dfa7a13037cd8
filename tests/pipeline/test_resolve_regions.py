"""Resolving merge conflicts through the kernel: a resolved region is exactly what was
chosen and everything else of the file is kept.

Many files get random overlapping edits in a session and a branch of it; the branch is
merged as the pipeline merges (keep going, the conflicts recorded with the session), and
every file is resolved through :meth:`Kernel.resolve_conflict`. Taking ours, theirs or
both in every region must give what ``git merge-file --ours/--theirs/--union`` gives;
resolving region by region in a random order with random choices must give the
conflict-marked merge with each region replaced by its choice. Real git, real SQLite.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest
from tests.conftest import make_git_project

from briotui.kernel import contract
from briotui.kernel.errors import (
    ConflictMoved,
    ConflictNotFound,
    MergeConflict,
    SessionStateError,
)
from briotui.kernel.kernel import Kernel
from briotui.kernel.vfs.merge import merge3, split_lines

SEED = 20261129
FILES = 40


def _edit(rng: random.Random, lines: list[str], tag: str) -> list[str]:
    """``lines`` with one to three random replacements, insertions or deletions."""
    out = list(lines)
    for n in range(rng.randint(1, 3)):
        start = rng.randrange(0, len(out) + 1)
        size = rng.randint(0, min(3, len(out) - start))
        new = [f"{tag} {n}.{k} {rng.random():.3f}\n" for k in range(rng.randint(0, 3))]
        if not size and not new:
            new = [f"{tag} {n} inserted\n"]
        out[start : start + size] = new
    return out


def _marked(base: bytes, ours: bytes, theirs: bytes, choices: dict[int, str]) -> bytes:
    """The diff3 merge with region ``i`` replaced by ``choices[i]``'s side(s)."""
    merged = merge3(base, ours, theirs)
    assert merged.content is not None
    out: list[str] = []
    parts: dict[str, list[str]] = {}
    state, index = "", 0
    for line in split_lines(merged.content.decode()):
        if line.startswith("<<<<<<< "):
            state, parts = "ours", {"ours": [], "base": [], "theirs": []}
        elif state and line.startswith("|||||||"):
            state = "base"
        elif state and line == "=======\n":
            state = "theirs"
        elif state and line.startswith(">>>>>>> "):
            index += 1
            choice = choices[index]
            sides = ["ours", "theirs"] if choice == "both" else [choice]
            out += [x for side in sides for x in parts[side]]
            state = ""
        elif state:
            parts[state].append(line)
        else:
            out.append(line)
    return "".join(out).encode()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    rng = random.Random(SEED)
    root = make_git_project(tmp_path / "proj")
    for i in range(FILES):
        body = "".join(f"line {k} of {i}\n" for k in range(rng.randint(3, 14)))
        (root / f"f{i:02}.txt").write_text(body)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, capture_output=True)
    subprocess.run(
        ["git", "-c", "user.name=T", "-c", "user.email=t@e.x", "commit", "-qm", "files"],
        cwd=root,
        check=True,
        capture_output=True,
    )
    return root


async def test_resolved_regions_are_exactly_what_was_chosen(project: Path) -> None:
    rng = random.Random(SEED + 1)
    kernel = Kernel(project)
    try:
        session = kernel.new_session(label="pipeline", task="t")
        branch = session.fork(label="coder")
        sides: dict[str, tuple[bytes, bytes, bytes]] = {}
        for i in range(FILES):
            path = f"f{i:02}.txt"
            base = (project / path).read_bytes()
            lines = split_lines(base.decode())
            ours = "".join(_edit(rng, lines, "ours")).encode()
            theirs = "".join(_edit(rng, lines, "theirs")).encode()
            session.write(path, ours, False)
            branch.write(path, theirs, False)
            sides[path] = (base, ours, theirs)
        with pytest.raises(MergeConflict) as merged:
            session.merge_from(branch, keep_going=True)
        kernel.record_conflicts(
            session.id, contract.conflict_views(branch.id, merged.value.conflicts)
        )
        conflicted = {c["path"]: len(c["regions"]) for c in merged.value.conflicts}
        assert len(conflicted) > FILES // 3, conflicted  # the seed makes enough of them
        expected: dict[str, bytes] = {}
        by_region = 0
        for n, (path, count) in enumerate(sorted(conflicted.items())):
            base, ours, theirs = sides[path]
            if n % 4 < 3:  # every region at once, compared with git's own strategies
                choice = ("ours", "theirs", "both")[n % 4]
                strategy = {"ours": "ours", "theirs": "theirs", "both": "union"}[choice]
                done = await kernel.resolve_conflict(session.id, path, choice)  # type: ignore[arg-type]
                assert done.regions == tuple(range(1, count + 1))
                want = merge3(base, ours, theirs, strategy=strategy).content  # type: ignore[arg-type]
                assert want is not None
                expected[path] = want
            else:  # one region at a time, in a random order, random choices
                choices = {i: rng.choice(["ours", "theirs", "both"]) for i in range(1, count + 1)}
                order = list(choices)
                rng.shuffle(order)
                for i in order:
                    await kernel.resolve_conflict(session.id, path, choices[i], region=i)  # type: ignore[arg-type]
                    by_region += 1
                expected[path] = _marked(base, ours, theirs, choices)
        assert by_region > 3
        for path, want in expected.items():
            assert session.read(path) == want, path
        # the files without conflicts kept the clean merge (both sides' edits)
        for path, (base, ours, theirs) in sides.items():
            if path not in conflicted:
                assert session.read(path) == merge3(base, ours, theirs).content
        # the store and the state say every region is resolved, and how
        views = kernel.recorder.conflicts_of(session.id)
        assert contract.unresolved(views) == 0
        assert {r["resolution"] for v in views for r in v["regions"]} == {"ours", "theirs", "both"}
        published = contract.session(kernel.state.get(""), session.id)
        assert published is not None
        assert published["conflicts"] == views
        contract.validate(["sessions", session.id], published)
        rows = session.manager.store.query(
            "SELECT regions FROM session_conflicts WHERE session_id = ?", (session.id,)
        )
        stored = [r for row in rows for r in json.loads(row["regions"])]
        assert all(
            r["resolved"] and r["resolved_by"] == "user" and r["resolved_at"] > 0 for r in stored
        )
        # resolving again is refused, as is a file without conflicts, or a region past the end
        path = next(iter(conflicted))
        with pytest.raises(SessionStateError, match="resolved already"):
            await kernel.resolve_conflict(session.id, path, "theirs", region=1)
        clean = next(p for p in sides if p not in conflicted)
        with pytest.raises(ConflictNotFound, match=f"no conflict in {clean}"):
            await kernel.resolve_conflict(session.id, clean, "theirs")
        with pytest.raises(ConflictNotFound, match="no region 99"):
            await kernel.resolve_conflict(session.id, path, "theirs", region=99)
    finally:
        await kernel.close()


async def test_a_region_at_the_end_of_a_file_without_a_final_newline(project: Path) -> None:
    (project / "tail.txt").write_text("a\nb\nc")
    kernel = Kernel(project)
    try:
        session = kernel.new_session(label="pipeline", task="t")
        branch = session.fork()
        session.write("tail.txt", b"a\nb\nX", False)
        branch.write("tail.txt", b"A\nb\nY", False)
        with pytest.raises(MergeConflict) as merged:
            session.merge_from(branch, keep_going=True)
        kernel.record_conflicts(
            session.id, contract.conflict_views(branch.id, merged.value.conflicts)
        )
        assert session.read("tail.txt") == b"A\nb\nX"  # the clean part merged, ours kept
        await kernel.resolve_conflict(session.id, "tail.txt", "theirs", region=1)
        assert session.read("tail.txt") == b"A\nb\nY"
    finally:
        await kernel.close()


async def test_a_whole_file_conflict_takes_the_branchs_file(project: Path) -> None:
    kernel = Kernel(project)
    try:
        session = kernel.new_session(label="pipeline", task="t")
        branch = session.fork()
        session.delete("f01.txt")  # deleted here, changed in the branch
        branch.write("f01.txt", b"changed in the branch\n", True)
        with pytest.raises(MergeConflict) as merged:
            session.merge_from(branch, keep_going=True)
        kernel.record_conflicts(
            session.id, contract.conflict_views(branch.id, merged.value.conflicts)
        )
        [view] = kernel.recorder.conflicts_of(session.id)
        [region] = view["regions"]
        assert region["whole"]
        assert region["ours"] == "(no file)"
        assert not session.stat("f01.txt")
        with pytest.raises(ConflictMoved, match="cannot be kept together"):
            await kernel.resolve_conflict(session.id, "f01.txt", "both")
        await kernel.resolve_conflict(session.id, "f01.txt", "theirs")
        assert session.read("f01.txt") == b"changed in the branch\n"
        assert session.content("f01.txt")[1] is True  # the branch's executable bit too
        assert contract.unresolved(kernel.recorder.conflicts_of(session.id)) == 0
    finally:
        await kernel.close()


async def test_the_session_is_verified_again_only_by_a_run_after_the_resolution(
    tmp_path: Path,
) -> None:
    from tests.scripted import FILES, repo

    project = repo(tmp_path / "proj", FILES)  # trusted, [tests] command = python -m pytest -q
    kernel = Kernel(project)
    try:
        session = kernel.new_session(label="pipeline", task="t")
        branch = session.fork()
        session.write("calc.py", b"def add(a, b):\n    return a + b  # ours\n", False)
        branch.write("calc.py", b"def add(a, b):\n    return b + a  # theirs\n", False)
        with pytest.raises(MergeConflict) as merged:
            session.merge_from(branch, keep_going=True)
        kernel.record_conflicts(
            session.id, contract.conflict_views(branch.id, merged.value.conflicts)
        )
        # the tests pass on ours, but with a conflict left the session is not verified
        first = await kernel.retest_session(session.id)
        assert first.run is not None
        assert first.run["exit_code"] == 0
        assert first.verified is False
        assert "1 conflicting region(s) are left" in first.message
        assert (await kernel.verify_commit(session.id)).status == "conflicts"
        # resolving changes the file: the earlier run no longer speaks for it
        await kernel.resolve_conflict(session.id, "calc.py", "theirs")
        view = contract.session(kernel.state.get(""), session.id)
        assert view is not None
        assert view["verified"] is False
        assert view.get("tests") is None
        await kernel.decide(session.id, None, "accepted")
        check = await kernel.verify_commit(session.id)
        assert check.status == "subset-passed"  # tested on what is there now, not the old run
        # a run on the resolved content verifies it
        second = await kernel.retest_session(session.id)
        assert second.verified is True
        view = contract.session(kernel.state.get(""), session.id)
        assert view is not None
        assert view["verified"] is True
        tests = view.get("tests")
        assert tests is not None
        assert tests["passed"]
        assert (await kernel.verify_commit(session.id)).status == "verified"
        assert session.read("calc.py") == b"def add(a, b):\n    return b + a  # theirs\n"
    finally:
        await kernel.close()
