"""``briotui agents wit``: agent authors get the WIT contract, from a checkout and from an
installed wheel, and a copy of it where they build (a JavaScript agent, say)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from briotui.cli.main import main

REPO = Path(__file__).resolve().parents[2]
WORLDS = ["coder", "council", "foreman", "minimal", "reviewer", "smart"]


def wit_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:  # type: ignore[type-arg]
    assert main([*argv, "agents", "wit", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_shows_where_the_wit_is_in_a_checkout(
    capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    result = wit_json(capsys, "-C", str(project))
    assert Path(result["directory"]) == REPO / "wit"
    assert result["exported"] is False
    assert result["package"] == "brio:agent@0.1.0"
    assert result["worlds"] == WORLDS
    assert "worlds.wit" in result["files"]


def test_exports_the_wit_files_into_a_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "my-agent" / "wit"
    assert main(["agents", "wit", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    count = len(list((REPO / "wit").glob("*.wit")))
    assert f"Wrote {count} WIT files to {out}" in said
    assert "--disable http fetch-event" in said
    shipped = sorted((REPO / "wit").glob("*.wit"))
    assert sorted(p.name for p in out.iterdir()) == [p.name for p in shipped]
    for file in shipped:
        assert (out / file.name).read_bytes() == file.read_bytes()
    assert main(["agents", "wit", "--out", str(out)]) == 0  # again: overwritten, same


def test_an_unwritable_out_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    assert main(["agents", "wit", "--out", str(blocker / "wit")]) == 2
    err = capsys.readouterr().err
    assert "Could not export the WIT files" in err
    assert "Traceback" not in err


def test_an_installed_wheel_ships_the_wit(tmp_path: Path) -> None:
    pytest.importorskip("hatchling", reason="building the wheel needs hatchling (the test extra)")
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(dist), str(REPO)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    [wheel] = dist.glob("briotui-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    proc = subprocess.run(
        [sys.executable, "-m", "briotui", "agents", "wit", "--json"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert Path(result["directory"]) == site / "briotui" / "_data" / "wit"
    assert result["worlds"] == WORLDS
