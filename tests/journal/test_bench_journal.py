"""The journal bench reports its figures, the replays it times replayed identically
(values not asserted: speed is measured by ``briotui bench``, never by tests)."""

from __future__ import annotations

import pytest

from briotui.devtools.bench.journal import JOURNAL_SHARE_TARGET, bench_journal
from briotui.kernel.kernel import Kernel

pytestmark = pytest.mark.slow


async def test_journal_figures(kernel: Kernel) -> None:
    rows = {m.name: m for m in await bench_journal(kernel, rounds=3)}
    overhead = rows["journal overhead per host call"]
    assert overhead.peer == "the unjournaled call"
    assert overhead.peer_value is not None
    assert overhead.target == pytest.approx(JOURNAL_SHARE_TARGET * overhead.peer_value)
    assert rows["journal dispatch per host call, alone"].target == overhead.target
    assert rows["journal writing per host call, after the run"].value > 0
    for name in ("replay speed, host calls", "replay speed, agent runs"):
        assert rows[name].value > 0
        assert "identical" in rows[name].detail
        assert "DIVERGED" not in rows[name].detail
