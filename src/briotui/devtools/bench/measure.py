"""The one result type of ``briotui bench``: a measured figure and its target.

Every benchmark module returns a list of :class:`Measure`; ``briotui bench`` prints them
as a table and writes their :meth:`Measure.to_dict` forms as JSON.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Literal

Better = Literal["lower", "higher"]
"""Which side of its target a figure is good on."""


@dataclass(frozen=True)
class Measure:
    """One measured figure.

    Attributes:
        name: What was measured.
        value: The figure (median unless the name says otherwise).
        unit: "ms", "us", "msg/s", ...
        target: The target, in the same unit, or None when the figure is for scale.
        better: "lower" or "higher": which side of the target is good.
        detail: How it was measured.
        peer: What the figure is compared with, measured in the same run on the same
            input (``git diff``, ``git apply + sync``...); empty when none.
        peer_value: The peer's figure, in the same unit (None without a peer).
    """

    name: str
    value: float
    unit: str
    target: float | None
    better: Better = "lower"
    detail: str = ""
    peer: str = ""
    peer_value: float | None = None

    @property
    def ok(self) -> bool | None:
        """Whether the target is met (None without a target)."""
        if self.target is None:
            return None
        return self.value <= self.target if self.better == "lower" else self.value >= self.target

    @property
    def ratio(self) -> float | None:
        """value / target (below 1 is good for "lower", above 1 for "higher")."""
        if not self.target:
            return None
        return self.value / self.target

    @property
    def peer_ratio(self) -> float | None:
        """value / peer_value (below 1: faster than the peer for "lower")."""
        if not self.peer_value:
            return None
        return self.value / self.peer_value

    def to_dict(self) -> dict[str, Any]:
        """As JSON-able data."""
        return {
            "name": self.name,
            "value": round(self.value, 4),
            "unit": self.unit,
            "target": self.target,
            "better": self.better,
            "ratio": None if self.ratio is None else round(self.ratio, 4),
            "ok": self.ok,
            "detail": self.detail,
            "peer": self.peer or None,
            "peer_value": None if self.peer_value is None else round(self.peer_value, 4),
            "peer_ratio": None if self.peer_ratio is None else round(self.peer_ratio, 4),
        }


def median_ms(samples: list[float]) -> float:
    """The median of durations in seconds, in milliseconds."""
    return statistics.median(samples) * 1000


__all__ = ["Better", "Measure", "median_ms"]
