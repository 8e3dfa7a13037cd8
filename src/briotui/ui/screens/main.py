"""The main screen: request input, live task tree, conversation, status bar."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from briotui.kernel import contract
from briotui.kernel.text import sanitize
from briotui.ui.host import AppHost, host_of
from briotui.ui.messages import BuildUpdated, ModelText, StateUpdated, WorkingTreeChanged
from briotui.ui.widgets.conversation import ConversationPane
from briotui.ui.widgets.status_bar import StatusBar
from briotui.ui.widgets.task_tree import TaskTreeView

PLACEHOLDER = "Ask for a change (Enter runs it; “@coder …” runs one agent)"

FOLLOW_UP_PLACEHOLDER = "Follow-up: continues session {session} (ctrl+f: a new session instead)"
"""The request input's placeholder while requests continue the open session."""

NO_SESSION_PLACEHOLDER = "Follow-up is on, but no session is open to continue (ctrl+f: off)"


class MainScreen(Screen[None]):
    """Where the user asks, watches, and picks a task to review."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+r",
            "app.review",
            "Review",
            id="review",
            tooltip="Review the selected task's session (accept/reject hunks, commit)",
        ),
        Binding(
            "ctrl+o",
            "app.sessions",
            "Sessions",
            id="sessions",
            tooltip="Sessions and history of this project",
        ),
        Binding(
            "ctrl+t",
            "app.cancel_task",
            "Cancel task",
            id="cancel-task",
            tooltip="Stop the selected task and its subtasks",
        ),
        Binding(
            "ctrl+j",
            "focus_next_pane",
            "Next pane",
            show=False,
            id="next-pane",
            tooltip="Move between the request, tasks and conversation",
        ),
        Binding(
            "ctrl+f",
            "app.toggle_follow_up",
            "Follow-up",
            show=False,
            id="follow-up",
            tooltip="Toggle: requests continue the session last reviewed instead of a new "
            "one (“+ request” does it once)",
        ),
        Binding(
            "i",
            "focus_request",
            "Request",
            show=False,
            id="focus-request",
            tooltip="Type a new request",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.selected: str | None = None
        self.tree_changed = 0

    @property
    def brio(self) -> AppHost:
        """The app, through the screens' interface."""
        return host_of(self.app)

    def compose(self) -> ComposeResult:
        yield Static(id="banner", markup=False)  # it quotes errors: "[llm] fallback"
        with Horizontal(id="main-body"):
            yield TaskTreeView(id="tasks")
            yield ConversationPane(id="conversation")
        yield Input(placeholder=PLACEHOLDER, id="request")
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#tasks", TaskTreeView).border_title = "Tasks"
        self.query_one("#conversation", ConversationPane).border_title = "Conversation"
        self.query_one("#request", Input).focus()
        self.refresh_banner()
        self.redraw()

    # -- drawing -----------------------------------------------------------------------

    def redraw(self) -> None:
        """Redraw the tree and the status bar from the mirrored state."""
        tree = self.brio.mirror
        self.query_one("#tasks", TaskTreeView).show_tasks(contract.tasks(tree))
        selected = contract.task(tree, self.selected)
        session = selected["session"] if selected else None
        self.query_one("#status", StatusBar).show_state(
            tree, session=session, tree_changed=self.tree_changed, demo=self.brio.demo
        )
        self._show_follow_up()

    def _show_follow_up(self) -> None:
        """Say in the request input whether requests continue the open session."""
        request = self.query_one("#request", Input)
        if not self.brio.follow_up:
            request.placeholder = PLACEHOLDER
            request.border_title = None
            return
        target = self.brio.continue_target()
        if target is None:
            request.placeholder = NO_SESSION_PLACEHOLDER
            request.border_title = "follow-up: no open session"
        else:
            request.placeholder = FOLLOW_UP_PLACEHOLDER.format(session=target)
            request.border_title = f"follow-up → {target}"

    def refresh_banner(self) -> None:
        """Show what needs the user's attention: build progress, a missing provider."""
        banner = self.query_one("#banner", Static)
        lines = self.brio.banner_lines()
        banner.update("\n".join(lines))
        banner.display = bool(lines)

    def on_state_updated(self, message: StateUpdated) -> None:
        self.redraw()

    def on_build_updated(self, message: BuildUpdated) -> None:
        self.refresh_banner()

    def on_working_tree_changed(self, message: WorkingTreeChanged) -> None:
        self.tree_changed = message.changed
        self.redraw()

    async def on_model_text(self, message: ModelText) -> None:
        pane = self.query_one("#conversation", ConversationPane)
        if message.reset:
            shown = pane.task_id or message.task
            text = "".join(
                t for tid, t in message.kept if tid == shown or tid.startswith(shown + ".")
            )
            await pane.replace(message.task, text)
            return
        await pane.append(message.task, message.text)

    # -- the user's actions ------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        goal = event.value.strip()
        if not goal:
            return
        follow_up = goal.startswith("+")  # "+ also add a test": continue the open session
        if follow_up:
            goal = goal[1:].strip()
        if (follow_up or self.brio.follow_up) and self.brio.continue_target() is None:
            self.brio.notify_no_open_session()  # the request stays in the input
            return
        event.input.clear()
        agent: str | None = None
        if goal.startswith("@"):  # "@coder fix the typo": one agent instead of the pipeline
            name, _, rest = goal[1:].partition(" ")
            if name and rest.strip():
                agent, goal = name, rest.strip()
        self.brio.submit_request(goal, agent, follow_up=follow_up)

    async def on_task_tree_view_task_selected(self, message: TaskTreeView.TaskSelected) -> None:
        if message.task_id != self.selected:
            await self.select_task(message.task_id)

    async def select_task(self, task_id: str) -> None:
        """Show ``task_id``'s conversation."""
        self.selected = task_id
        task = contract.task(self.brio.mirror, task_id) or contract.task(
            {"tasks": self.brio.workbench.state.get("/tasks", {})}, task_id
        )  # the patch may not be delivered yet
        title = sanitize(task["title"] if task else task_id).replace("\n", " ")
        agent = sanitize(task["agent"]) if task else ""
        await self.query_one("#conversation", ConversationPane).show(
            task_id,
            Text.assemble((title, "bold"), (f"  · {agent} · {task_id}", "dim")),
            self.brio.transcript(task_id),
        )
        self.query_one("#tasks", TaskTreeView).select_task(task_id)
        self.redraw()

    def action_focus_request(self) -> None:
        """Focus the request input."""
        self.query_one("#request", Input).focus()

    def action_focus_next_pane(self) -> None:
        """Cycle focus: request → tasks → conversation."""
        self.focus_next()
