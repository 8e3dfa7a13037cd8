"""The mesh and state benches run and report well-formed figures (values are not asserted)."""

from __future__ import annotations

from briotui.devtools.bench.measure import Measure
from briotui.devtools.bench.mesh import bench_mesh
from briotui.devtools.bench.state import bench_state

KEYS = {
    "name",
    "value",
    "unit",
    "target",
    "better",
    "ratio",
    "ok",
    "detail",
    "peer",
    "peer_value",
    "peer_ratio",
}


def test_bench_mesh_rows() -> None:
    rows = bench_mesh(messages=2000, round_trips=50)
    assert len(rows) == 8
    for row in rows:
        assert isinstance(row, Measure)
        assert set(row.to_dict()) == KEYS
        assert row.value > 0
        assert row.better in {"higher", "lower"}


def test_bench_state_rows() -> None:
    rows = bench_state(mutations=500)
    assert len(rows) == 5
    for row in rows:
        assert isinstance(row, Measure)
        assert set(row.to_dict()) == KEYS
        assert row.value > 0
