"""The session benches run on a small project and report Measures (values are not asserted)."""

from __future__ import annotations

from briotui.cli.cmd_bench import render
from briotui.devtools.bench.measure import Measure
from briotui.devtools.bench.sessions import bench_commit, bench_create, bench_diff, bench_fork


def test_session_benches_report_measures() -> None:
    rows = [
        *bench_fork(n_files=200, repeat=2),
        *bench_create(n_files=200, repeat=1),
        *bench_diff(3, repeat=1),
        *bench_commit(3, repeat=1),
    ]
    assert [r.name.split(" (")[0] for r in rows] == [
        "session create, cold: first in a process",
        "session create, watched project, 10 files edited",
        "session fork",
        "session create in a fresh process, cold",
        "session create in a fresh process, persisted index",
        "diff + hunk split",
        "accept + commit",
    ]
    for row in rows:
        assert isinstance(row, Measure)
        assert row.value > 0
        assert row.to_dict()["unit"] == "ms"
    # every figure a user compares with git carries git's, measured in the same run
    peers = {r.name.split(" (")[0]: r.to_dict() for r in rows if r.peer}
    assert peers["diff + hunk split"]["peer"] == "git diff"
    assert peers["accept + commit"]["peer"] == "git apply + sync"
    assert peers["session create in a fresh process, persisted index"]["peer"] == "git status"
    for d in peers.values():
        assert d["peer_value"] > 0
        assert d["peer_ratio"] > 0
    # the table shows the peer and the ratio beside the figure
    table = render(rows)
    assert "git diff" in table
    assert "git apply + sync" in table
