"""The status bar: provider and model, tokens and cost, running agents, session state.

It also shows an "unsandboxed" badge when the kernel publishes (at ``/sandbox``) that
agents' commands run without an OS sandbox; the bar never probes for one itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.text import Text
from textual.widgets import Static

from briotui.kernel import contract
from briotui.kernel.text import sanitize
from briotui.ui.format import cost, mib, si
from briotui.ui.widgets.task_tree import themed


def meter(value: float, limit: float, width: int = 5) -> str:
    """A small bar: ``▮▮▯▯▯``."""
    filled = 0 if limit <= 0 else max(0, min(width, round(width * value / limit)))
    return "▮" * filled + "▯" * (width - filled)


def agent_meters(agent: contract.AgentView) -> str:
    """``1.2M fuel ▮▯▯▯▯ 12/512MiB``: fuel burnt (a number: against a budget of billions a
    bar would not move), then memory in use against its limit as a bar."""
    memory, limit = agent["memory_bytes"], agent["memory_limit"]
    text = f"{si(agent['fuel_used'])} fuel"
    if memory:
        text += (
            f" {meter(memory, limit)} {memory / 2**20:.0f}/{mib(limit)}"
            if limit
            else (f" {mib(memory)}")
        )
    return text


class StatusBar(Static):
    """One line at the bottom of the main screen, drawn from the state tree."""

    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; color: $text; padding: 0 1; }
    """

    def show_state(
        self, tree: Mapping[str, Any], *, session: str | None, tree_changed: int, demo: bool
    ) -> None:
        """Redraw from the mirrored state tree (read through the state contract)."""
        v = self.app.theme_variables
        provider = contract.provider(tree)
        usage = contract.usage(tree)
        line = Text(no_wrap=True, overflow="ellipsis")
        ok = provider["ok"]
        name = sanitize(provider["name"] or "none")
        model = sanitize(provider["model"])
        line.append("● " if ok else "○ ", style=themed("$success" if ok else "$error", v))
        line.append(f"{name}/{model}" if model and model != name else name, style="bold")
        if provider["fallback_from"]:
            line.append(f" (fell back from {sanitize(provider['fallback_from'])})", style="dim")
        if demo:
            line.append(" DEMO", style=themed("bold $warning", v))
        sandbox = contract.sandbox(tree)
        if sandbox is not None and not sandbox["sandboxed"]:
            line.append(" │ ")
            line.append("⚠ unsandboxed", style=themed("bold $error", v))
            mode = sandbox["unsandboxed"]
            if mode in ("ask", "allow", "deny"):
                line.append(f" ({mode})", style="dim")
        tokens = usage["input_tokens"] + usage["output_tokens"]
        line.append(f" │ {si(tokens)} tok {cost(usage['cost_usd'])}")
        running = [a for a in contract.agents(tree).values() if a["state"] == "running"]
        if running:
            for agent in running[:3]:
                line.append(f" │ {sanitize(agent['agent'])} ", style=themed("$accent", v))
                line.append(agent_meters(agent), style="dim")
            if len(running) > 3:
                line.append(f" +{len(running) - 3}")
        else:
            line.append(" │ idle", style="dim")
        view = contract.session(tree, session)
        if session and view is not None:
            line.append(f" │ session {session}" + (f" {view['state']}" if view["state"] else ""))
            files = view["files"]
            if files:
                line.append(f": {len(files)} files {len(contract.hunks(view))} hunks")
            if view["verified"]:
                line.append(" ✔ verified", style=themed("$success", v))
        if tree_changed:
            line.append(f" │ working tree changed ({tree_changed})", style=themed("$warning", v))
        self.update(line)
