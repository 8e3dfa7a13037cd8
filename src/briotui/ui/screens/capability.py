"""The capability prompt: which agent asks for what, why, and at what risk; one key answers."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from briotui.kernel.caps.model import Answer, CapabilityRequest
from briotui.kernel.text import sanitize

INTERFACE = {
    "read": "workspace (read a file)",
    "write": "workspace (write a file)",
    "shell": "shell (run a command)",
    "sql": "sql (private tables)",
    "mesh": "mesh (message an agent)",
    "mcp": "tools (call an MCP server's tool)",
}
TARGET_LABEL = {
    "read": "path",
    "write": "path",
    "shell": "command",
    "sql": "table",
    "mesh": "agent",
    "mcp": "tool",
}


def describe(request: CapabilityRequest) -> Text:
    """The prompt's body."""
    text = Text()
    text.append(sanitize(request.agent), style="bold")
    text.append(" asks to ")
    text.append(request.capability, style="bold")
    text.append(f" {TARGET_LABEL.get(request.capability, 'target')} ")
    text.append(sanitize(request.target), style="bold reverse")
    text.append("\n\n")
    rows = [
        ("interface", INTERFACE.get(request.capability, request.capability)),
        ("scope", _scope(request)),
        ("why", sanitize(request.reason) or "(the agent gave no reason)"),
        ("risk", request.risk),
    ]
    for label, value in rows:
        text.append(f"{label:>9}  ", style="dim")
        text.append(value + "\n")
    return text


def _scope(request: CapabilityRequest) -> str:
    parts: list[str] = []
    if request.task_id:
        parts.append(f"task {request.task_id}")
    if request.session_id:
        parts.append(f"session {request.session_id}")
    scope = getattr(request, "scope", ())
    if scope:
        parts.append("confined to " + ", ".join(sanitize(s) for s in scope))
    return "; ".join(parts) or "this run"


class CapabilityPrompt(ModalScreen[Answer]):
    """Asks the user to allow or deny one capability request."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer('once')", "Allow once", id="cap-once", tooltip="Allow this one call"),
        Binding(
            "s",
            "answer('session')",
            "This session",
            id="cap-session",
            tooltip="Allow it for the rest of this session",
        ),
        Binding(
            "a",
            "answer('project')",
            "Always",
            id="cap-project",
            tooltip="Always allow it in this project (kept across restarts)",
        ),
        Binding("n", "answer('deny')", "Deny", id="cap-deny", tooltip="Deny the call"),
        Binding("escape", "answer('deny')", "Deny", show=False, id="cap-escape", tooltip="Deny"),
    ]

    def __init__(self, request: CapabilityRequest, *, queued: int = 0) -> None:
        super().__init__()
        self.request = request
        self.queued = queued

    def compose(self) -> ComposeResult:
        with Vertical(id="cap-dialog"):
            yield Static("Capability request", id="cap-title")
            yield Static(describe(self.request), id="cap-body")
            if self.queued:
                yield Static(f"{self.queued} more request(s) waiting", id="cap-queued")
            with Horizontal(id="cap-buttons"):
                yield Button("[u]Y[/u]es, once", id="once", variant="primary", compact=True)
                yield Button("[u]S[/u]ession", id="session", compact=True)
                yield Button("[u]A[/u]lways", id="project", compact=True)
                yield Button("[u]N[/u]o", id="deny", variant="error", compact=True)

    def on_mount(self) -> None:
        self.query_one("#deny", Button).focus()

    def action_answer(self, answer: Answer) -> None:
        """Close with ``answer``."""
        self.dismiss(answer)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        answers: dict[str, Answer] = {
            "once": "once",
            "session": "session",
            "project": "project",
            "deny": "deny",
        }
        self.dismiss(answers.get(event.button.id or "", "deny"))
