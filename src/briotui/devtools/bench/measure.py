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
    """

    name: str
    value: float
    unit: str
    target: float | None
    better: Better = "lower"
    detail: str = ""

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
        }


def median_ms(samples: list[float]) -> float:
    """The median of durations in seconds, in milliseconds."""
    return statistics.median(samples) * 1000


__all__ = ["Better", "Measure", "median_ms"]
