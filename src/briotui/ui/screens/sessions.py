"""Sessions and history: past sessions from the store, open ones reviewable or
discardable, their tasks resumable (an interrupted task goes on as a new task, the steps
it had done replayed from its run journals: no model request again for them)."""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Static

from briotui.kernel.errors import BrioError
from briotui.kernel.text import sanitize
from briotui.kernel.vfs import SessionInfo
from briotui.ui.host import host_of


class SessionsScreen(Screen[str | None]):
    """Every session of the project; Enter reviews one (dismisses with its id)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "enter", "open", "Review", id="sessions-open", tooltip="Review the selected session"
        ),
        Binding(
            "u",
            "resume",
            "Resume task",
            id="sessions-resume",
            tooltip="Resume the highlighted session's task (an interrupted one goes on from "
            "its journal)",
        ),
        Binding(
            "d",
            "discard",
            "Discard",
            id="sessions-discard",
            tooltip="Discard the highlighted open session (kept in history)",
        ),
        Binding("escape", "close", "Back", id="sessions-back", tooltip="Back to the main screen"),
    ]

    def compose(self) -> ComposeResult:
        yield Static("Sessions and history", id="sessions-title")
        yield DataTable(id="sessions-table", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="sessions-actions"):
            yield Button("Review", id="sessions-review", variant="primary", compact=True)
            yield Button("Resume task", id="sessions-resume", variant="success", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("session", "state", "agent", "files", "created", "task")
        self.load()

    @work(exclusive=True, exit_on_error=False, group="sessions", description="list sessions")
    async def load(self) -> None:
        """Read the session list off the loop."""
        app = host_of(self.app)
        try:
            infos: list[SessionInfo] = await asyncio.to_thread(app.workbench.sessions().list)
        except BrioError as exc:
            self.notify(exc.message, title=exc.title, severity="error")
            return
        table = self.query_one(DataTable)
        table.clear()
        for info in sorted(infos, key=lambda i: i.created, reverse=True):
            created = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.created))
            table.add_row(
                info.id,
                info.state,
                sanitize(info.label),
                str(info.changed_files),
                created,
                sanitize(info.task).replace("\n", " ")[:60],
                key=info.id,
            )
        if not infos:
            self.query_one("#sessions-title", Static).update(
                "Sessions and history: none yet. Submit a request on the main screen."
            )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.dismiss(str(event.row_key.value))

    def action_open(self) -> None:
        """Review the highlighted session."""
        table = self.query_one(DataTable)
        if table.row_count:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
            self.dismiss(str(key.value))

    def _highlighted(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(key.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "sessions-review":
            self.action_open()
        elif event.button.id == "sessions-resume":
            self.action_resume()

    def action_resume(self) -> None:
        """Run the highlighted session's task again (through the kernel)."""
        session_id = self._highlighted()
        if session_id is None:
            return
        app = host_of(self.app)
        task_id = app.workbench.kernel.task_of_session(session_id)
        if task_id is None:
            self.notify(f"No task made session {session_id}.", title="Nothing to resume")
            return
        app.resume_task(task_id)
        self.dismiss(None)

    def action_discard(self) -> None:
        """Discard the highlighted session (through the kernel), then list again."""
        session_id = self._highlighted()
        if session_id is not None:
            self.discard(session_id)

    @work(exit_on_error=False, group="sessions-discard", description="discard a session")
    async def discard(self, session_id: str) -> None:
        """Discard ``session_id``: it stays in the list as discarded."""
        app = host_of(self.app)
        try:
            await app.workbench.kernel.discard_session(session_id)
        except BrioError as exc:
            self.notify(exc.message, title=exc.title, severity="error")
            return
        self.notify(f"Session {session_id} is discarded (kept in history).", title="Discarded")
        self.load()

    def action_close(self) -> None:
        """Back."""
        self.dismiss(None)
