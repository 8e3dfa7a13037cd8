"""The status bar: provider and model, tokens and cost, running agents, session state.

It also shows an "unsandboxed" badge when the kernel publishes (at ``/sandbox``) that
agents' commands run without an OS sandbox; the bar never probes for one itself.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from briotui.kernel.text import sanitize
from briotui.ui.format import cost, mib, si
from briotui.ui.widgets.task_tree import themed

FUEL_LIMIT = 20_000_000_000
"""The default fuel per run (the meter's full scale)."""
MEMORY_LIMIT = 512 * 2**20
"""The default memory cap per instance (the meter's full scale)."""


def meter(value: float, limit: float, width: int = 5) -> str:
    """A small bar: ``▮▮▯▯▯``."""
    filled = 0 if limit <= 0 else max(0, min(width, round(width * value / limit)))
    return "▮" * filled + "▯" * (width - filled)


class StatusBar(Static):
    """One line at the bottom of the main screen, drawn from the state tree."""

    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; color: $text; padding: 0 1; }
    """

    def show_state(
        self, tree: dict[str, Any], *, session: str | None, tree_changed: int, demo: bool
    ) -> None:
        """Redraw from the mirrored state tree."""
        v = self.app.theme_variables
        provider = tree.get("provider") or {}
        usage = tree.get("usage") or {}
        agents: dict[str, Any] = tree.get("agents") or {}
        sessions: dict[str, Any] = tree.get("sessions") or {}
        line = Text(no_wrap=True, overflow="ellipsis")
        ok = bool(provider.get("ok"))
        name = sanitize(str(provider.get("name", "none")))
        model = sanitize(str(provider.get("model", "")))
        line.append("● " if ok else "○ ", style=themed("$success" if ok else "$error", v))
        line.append(f"{name}/{model}" if model and model != name else name, style="bold")
        if demo:
            line.append(" DEMO", style=themed("bold $warning", v))
        sandbox = tree.get("sandbox") or {}
        if sandbox and not sandbox.get("sandboxed"):
            line.append(" │ ")
            line.append("⚠ unsandboxed", style=themed("bold $error", v))
            mode = sandbox.get("unsandboxed")
            if mode in ("ask", "allow", "deny"):
                line.append(f" ({mode})", style="dim")
        tokens = int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0))
        line.append(f" │ {si(tokens)} tok {cost(float(usage.get('cost_usd', 0.0)))}")
        running = [a for a in agents.values() if a.get("state") == "running"]
        if running:
            for agent in running[:3]:
                line.append(f" │ {agent.get('agent', '?')} ", style=themed("$accent", v))
                fuel = float(agent.get("fuel_used", 0))
                memory = float(agent.get("memory_bytes", 0))
                fuel_limit = float(agent.get("fuel_limit") or FUEL_LIMIT)
                line.append(f"fuel {meter(fuel, fuel_limit)} ", style="dim")
                line.append(f"{mib(memory)}" if memory else "", style="dim")
            if len(running) > 3:
                line.append(f" +{len(running) - 3}")
        else:
            line.append(" │ idle", style="dim")
        if session and session in sessions:
            data = sessions[session]
            state = data.get("state")
            line.append(f" │ session {session}" + (f" {state}" if state else ""))
            files = data.get("files")
            if files:
                line.append(f": {len(files)} files {len(data.get('hunks') or [])} hunks")
            if data.get("verified"):
                line.append(" ✔ verified", style=themed("$success", v))
        if tree_changed:
            line.append(f" │ working tree changed ({tree_changed})", style=themed("$warning", v))
        self.update(line)
