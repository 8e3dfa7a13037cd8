"""The mesh and state benches run and report well-formed rows (figures are not asserted)."""

from __future__ import annotations

from briotui.kernel.mesh_bench import bench_mesh
from briotui.kernel.state_bench import bench_state

KEYS = {"name", "value", "unit", "target", "better", "detail"}


def test_bench_mesh_rows() -> None:
    rows = bench_mesh(messages=2000, round_trips=50)
    assert len(rows) == 7
    for row in rows:
        assert set(row) == KEYS
        assert row["value"] > 0
        assert row["better"] in {"higher", "lower"}


def test_bench_state_rows() -> None:
    rows = bench_state(mutations=500)
    assert len(rows) == 4
    for row in rows:
        assert set(row) == KEYS
        assert row["value"] > 0
