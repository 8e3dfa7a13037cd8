"""Short human forms of numbers the UI shows: tokens, cost, fuel, bytes, durations."""

from __future__ import annotations

from typing import Any, Final

STATUS_ICONS: Final = {
    "pending": "○",
    "running": "●",
    "waiting": "◐",
    "done": "✔",
    "failed": "✘",
    "cancelled": "⊘",
}
"""One glyph per task status."""


def si(value: float, unit: str = "") -> str:
    """``1234567`` -> ``"1.2M"``."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}{suffix}{unit}"
    return f"{value:.0f}{unit}"


def mib(value: float) -> str:
    """Bytes as MiB."""
    return f"{value / 2**20:.0f}MiB"


def duration(ms: float) -> str:
    """Milliseconds as ``850ms``, ``12.3s`` or ``4m05s``."""
    if ms < 1000:
        return f"{ms:.0f}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def cost(usd: float) -> str:
    """Dollars, to the cent (or a tenth of a cent when small)."""
    return f"${usd:.3f}" if 0 < usd < 0.1 else f"${usd:.2f}"


def usage_line(usage: dict[str, Any]) -> str:
    """``1.2k tok · $0.01 · 3.4G fuel · 2.1s`` for a task's usage (zeros left out)."""
    parts: list[str] = []
    tokens = int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0))
    if tokens:
        parts.append(f"{si(tokens)} tok")
    if usage.get("cost_usd"):
        parts.append(cost(float(usage["cost_usd"])))
    if usage.get("fuel"):
        parts.append(f"{si(float(usage['fuel']))} fuel")
    if usage.get("wall_ms"):
        parts.append(duration(float(usage["wall_ms"])))
    return " · ".join(parts)
