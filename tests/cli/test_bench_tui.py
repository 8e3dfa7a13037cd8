"""The TUI start bench: ours and the peers started the same way; a missing peer is
skipped with the reason (values are never asserted)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from briotui.devtools.bench.tui import PEERS_ENV, Program, bench_tui, find_peer, first_frame_s


def test_a_peer_without_its_virtualenv_is_skipped_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PEERS_ENV, str(tmp_path / "nowhere"))
    why = find_peer("harlequin")
    assert isinstance(why, str)
    assert "nowhere" in why
    assert PEERS_ENV in why


def test_a_peer_missing_from_its_virtualenv_is_named(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").write_text("")
    why = find_peer("posting", tmp_path)
    assert why == f"posting is not installed in {tmp_path}"


def test_a_program_that_shows_no_frame_says_why(tmp_path: Path) -> None:
    broken = Program("nothing", sys.executable, "no_such_module_here:main")
    took = first_frame_s(broken, tmp_path)
    assert isinstance(took, str)
    assert "no_such_module_here" in took


@pytest.mark.slow
def test_the_tui_start_is_measured_beside_the_peers_or_says_why_not(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PEERS_ENV, str(tmp_path / "no-peers"))
    rows = bench_tui(str(project), rounds=1)
    ours, *peers = rows
    assert ours.name == "cold start of the TUI to first frame"
    assert ours.value > 0  # a real start of `briotui -C PROJECT` showed its first frame
    assert [p.name.split(" (")[0] for p in peers] == [
        f"{ours.name}, vs harlequin",
        f"{ours.name}, vs posting",
    ]
    for peer in peers:
        assert "skipped: no virtualenv" in peer.name
        assert peer.peer == ""
        assert peer.peer_value is None
