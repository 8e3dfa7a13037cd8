"""The session benches run on a small project and report Measures (values are not asserted)."""

from __future__ import annotations

from briotui.devtools.bench.measure import Measure
from briotui.devtools.bench.sessions import bench_commit, bench_diff, bench_fork


def test_session_benches_report_measures() -> None:
    rows = [*bench_fork(n_files=200, repeat=2), *bench_diff(3, repeat=1), *bench_commit(3)]
    assert [r.name.split(" (")[0] for r in rows] == [
        "session create, cold: first in a process",
        "session create, watched project, 10 files edited",
        "session fork",
        "diff + hunk split",
        "commit",
    ]
    for row in rows:
        assert isinstance(row, Measure)
        assert row.value > 0
        assert row.to_dict()["unit"] == "ms"
