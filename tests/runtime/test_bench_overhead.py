"""The runtime bench reports each figure with its peer from the same run (values not asserted)."""

from __future__ import annotations

import pytest

from briotui.devtools.bench.runtime import NOT_INSTALLED, bench_overhead
from briotui.kernel.kernel import Kernel

pytestmark = pytest.mark.slow


async def test_overhead_figures_have_their_peers(kernel: Kernel) -> None:
    rows = {
        m.name.split(" vs ")[0] + (" vs" if " vs " in m.name else ""): m
        for m in await bench_overhead(kernel, rounds=3)
    }
    overhead = rows["kernel overhead per agent run"]
    assert overhead.peer == "the component call"
    assert overhead.peer_value is not None
    assert overhead.peer_value > 0
    assert overhead.value > 0
    warm = rows["agent run, warm pool"]
    assert warm.peer == "cold run"
    assert warm.peer_ratio is not None
    amla = rows["agent run, warm pool, vs"]
    assert (amla.peer == "amla-sandbox") != (NOT_INSTALLED in amla.name)
