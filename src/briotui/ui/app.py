"""The briotui Textual app: for now, a home screen that says what is there.

The full workstation (task tree, conversations, hunk review, capability prompts) is a
later step; this screen reads the kernel's view of the project — agents and their
build state, the project's git status — and builds missing agents in the background.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Header, Static

from briotui import __version__
from briotui.kernel.kernel import Kernel
from briotui.kernel.runtime.build import BuildEvent


class BrioApp(App[int]):
    """The briotui application."""

    TITLE = "briotui"
    CSS = """
    #intro { padding: 1 2; height: auto; }
    #agents { height: 1fr; margin: 0 2; }
    #status { padding: 0 2; height: 1; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("b", "build", "Build agents", id="build", tooltip="Build missing agents"),
        Binding("q", "quit", "Quit", id="quit", tooltip="Quit briotui"),
    ]

    def __init__(self, project: Path | str) -> None:
        super().__init__()
        self.project = Path(project).resolve()
        self.kernel: Kernel | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical():
            yield Static(id="intro")
            yield DataTable(id="agents", cursor_type="row", zebra_stripes=True)
            yield Static(id="status")
        yield Footer()

    async def on_mount(self) -> None:
        self.sub_title = self.project.name
        self.kernel = Kernel(self.project)
        git = "a git repository" if (self.project / ".git").exists() else "not a git repository"
        self.query_one("#intro", Static).update(
            f"briotui {__version__} — project [b]{self.project.name}[/b] ({git}).\n"
            "Agents run as sandboxed WebAssembly components. The task view, hunk review "
            "and capability prompts arrive next; today you can build agents here and run "
            "them with `briotui run`."
        )
        table = self.query_one("#agents", DataTable)
        table.add_columns("agent", "origin", "world", "state", "description")
        self.refresh_agents()
        self.watch_project()
        if self._missing():
            self.action_build()

    def _missing(self) -> list[str]:
        assert self.kernel is not None
        found = self.kernel.discovery()
        return [s.name for s in found.agents.values() if not self.kernel.builder.is_built(s)]

    def refresh_agents(self, states: dict[str, str] | None = None) -> None:
        """Redraw the agents table from the kernel's discovery."""
        assert self.kernel is not None
        table = self.query_one("#agents", DataTable)
        table.clear()
        for spec in self.kernel.discovery().agents.values():
            state = (states or {}).get(spec.name) or (
                "built" if self.kernel.builder.is_built(spec) else "not built"
            )
            table.add_row(
                spec.name, spec.origin, spec.world, state, spec.description, key=spec.name
            )

    def action_build(self) -> None:
        """Build missing agents in the background."""
        self.build_agents()

    @work(exclusive=True, exit_on_error=False, group="build", description="build agents")
    async def build_agents(self) -> None:
        """Build agents off the UI thread, showing progress per agent."""
        assert self.kernel is not None
        states: dict[str, str] = {}
        status = self.query_one("#status", Static)
        status.update("Building agents in the background…")

        def on_event(event: BuildEvent) -> None:
            label = {
                "cached": "built",
                "building": "building…",
                "compiling": "compiling…",
                "done": "built",
                "failed": "FAILED",
            }[event.phase]
            states[event.agent] = label
            self.call_from_thread(self.refresh_agents, dict(states))

        results = await self.kernel.build_agents(on_event=on_event)
        failed = [r for r in results if r.status == "failed"]
        status.update(
            f"{len(failed)} agent(s) failed to build: " + ", ".join(r.agent for r in failed)
            if failed
            else "All agents are built."
        )
        self.refresh_agents()

    @work(exclusive=True, exit_on_error=False, group="watch", description="watch the project")
    async def watch_project(self) -> None:
        """Keep the project's live base current, so new sessions start in milliseconds."""
        assert self.kernel is not None
        await self.kernel.watch_project()

    async def on_unmount(self) -> None:
        if self.kernel is not None:
            await self.kernel.close()


def make_app(project: Path | str = ".") -> BrioApp:
    """The app for ``project``: used by the CLI and the tests alike."""
    return BrioApp(project)
