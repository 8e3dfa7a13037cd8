"""Small dialogs: a reason for a rejection, an instruction for a revision, an agent's
question to the user, confirming a quit, confirming an action (a commit that leaves
hunks undecided, a rollback), and the offer made on start for interrupted tasks."""

from __future__ import annotations

import time
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from briotui.kernel.text import sanitize


class RejectReason(ModalScreen[str | None]):
    """Asks why a hunk (or file) is rejected; the reason goes back to the agent.

    Dismisses with the reason ("" for none), or None when the user cancels.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape", "cancel", "Cancel", id="reason-cancel", tooltip="Keep the hunk undecided"
        ),
    ]

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical(id="reason-dialog", classes="dialog"):
            yield Static(f"Reject {self.what}", classes="dialog-title")
            yield Static("Why? (optional; the agent gets this as feedback)", classes="dim")
            yield Input(placeholder="e.g. keep the old name, it is public API", id="reason")
            yield Static("Enter rejects · Escape cancels", classes="dim")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        """Close without rejecting."""
        self.dismiss(None)


class ReviseInstruction(ModalScreen[str | None]):
    """Asks for an optional extra instruction before the Coder revises a session.

    Dismisses with the instruction ("" for none), or None when the user cancels.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="revise-cancel", tooltip="Do not revise"),
    ]

    def __init__(self, rejected: int) -> None:
        super().__init__()
        self.rejected = rejected

    def compose(self) -> ComposeResult:
        with Vertical(id="revise-dialog", classes="dialog"):
            yield Static("Revise with the Coder", classes="dialog-title")
            yield Static(
                f"The Coder gets the {self.rejected} rejected hunk(s) with their reasons and "
                "redoes them in this session. Anything else it should know? (optional)",
                classes="dim",
            )
            yield Input(placeholder="e.g. keep the public names", id="instruction")
            yield Static("Enter revises · Escape cancels", classes="dim")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        """Close without revising."""
        self.dismiss(None)


class AskUser(ModalScreen[str | None]):
    """An agent's clarifying question (the Council's ``ask-user``).

    Dismisses with the typed answer, or None (Escape) when the user gives none: the
    agent then decides itself and says what it assumed.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape",
            "no_answer",
            "No answer",
            id="ask-no-answer",
            tooltip="Let the agent decide itself",
        ),
    ]

    def __init__(self, agent: str, question: str) -> None:
        super().__init__()
        self.agent = agent
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="ask-dialog", classes="dialog"):
            yield Static(f"The {sanitize(self.agent)} asks", classes="dialog-title")
            yield Static(sanitize(self.question), id="ask-question")
            yield Input(placeholder="your answer", id="answer")
            yield Static("Enter answers · Escape: no answer (it decides itself)", classes="dim")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_no_answer(self) -> None:
        """Give no answer."""
        self.dismiss(None)


class ConfirmQuit(ModalScreen[bool]):
    """Asks before quitting while tasks are running."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "quit_now", "Quit", id="quit-yes", tooltip="Stop the running tasks and quit"),
        Binding("n,escape", "stay", "Stay", id="quit-no", tooltip="Keep working"),
    ]

    def __init__(self, running: int) -> None:
        super().__init__()
        self.running = running

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-dialog", classes="dialog"):
            yield Static("Quit briotui?", classes="dialog-title")
            yield Static(
                f"{self.running} task(s) are still running. Quitting stops them; their "
                "sessions and everything done so far are kept and shown on the next start."
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("[u]Y[/u]es, quit", id="yes", variant="error", compact=True)
                yield Button("[u]N[/u]o", id="no", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_quit_now(self) -> None:
        """Quit."""
        self.dismiss(True)

    def action_stay(self) -> None:
        """Stay."""
        self.dismiss(False)


class Confirm(ModalScreen[bool]):
    """Asks before an action that cannot be taken back lightly; ``y`` does it.

    Dismisses with True to go ahead, False (``n``, Escape, the cancel button) to stop.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "yes", "Yes", id="confirm-yes", tooltip="Go ahead"),
        Binding("n,escape", "no", "Cancel", id="confirm-no", tooltip="Do nothing"),
    ]

    def __init__(self, title: str, text: str, yes: str) -> None:
        super().__init__()
        self.title_text = title
        self.text = text
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog", classes="dialog"):
            yield Static(self.title_text, classes="dialog-title")
            yield Static(self.text, id="confirm-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"[u]Y[/u]es, {self.yes}", id="yes", variant="warning", compact=True)
                yield Button("[u]N[/u]o, cancel", id="no", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_yes(self) -> None:
        """Go ahead."""
        self.dismiss(True)

    def action_no(self) -> None:
        """Do nothing."""
        self.dismiss(False)


class InterruptedOffer(ModalScreen[str]):
    """On start: the tasks a quit or a crash interrupted; resume them, discard them, or
    decide later (they stay offered, f5/f8 on a selected task).

    Dismisses with ``"resume"``, ``"discard"`` or ``"later"``.

    It opens as the TUI starts, when the user may already be typing a request: Resume
    and Discard chosen within :attr:`GUARD_S` of it opening are ignored (a typed "d"
    must not discard a session, an "r" must not spend tokens), and "Later" (which
    changes nothing, as does Escape) has the focus.
    """

    GUARD_S: ClassVar[float] = 1.0
    """How long after opening the dialog ignores choices (keys typed for something else)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "r",
            "choose('resume')",
            "Resume",
            id="interrupted-resume",
            tooltip="Resume them: what they had done is replayed, no model request again",
        ),
        Binding(
            "d",
            "choose('discard')",
            "Discard",
            id="interrupted-discard",
            tooltip="Roll their sessions back",
        ),
        Binding(
            "l,escape",
            "choose('later')",
            "Later",
            id="interrupted-later",
            tooltip="Decide later (f5 resumes, f8 discards the selected task)",
        ),
    ]

    def __init__(self, tasks: list[tuple[str, str]]) -> None:
        super().__init__()
        self.tasks = tasks
        self._opened = float("inf")  # set when it is shown

    def compose(self) -> ComposeResult:
        lines = [
            f"  {sanitize(tid)}  {sanitize(goal).replace(chr(10), ' ')[:60]}"
            for tid, goal in self.tasks[:8]
        ]
        if len(self.tasks) > 8:
            lines.append(f"  … and {len(self.tasks) - 8} more")
        with Vertical(id="interrupted-dialog", classes="dialog"):
            yield Static("Interrupted tasks", classes="dialog-title")
            yield Static(
                f"{len(self.tasks)} task(s) were interrupted when briotui last stopped:\n"
                + "\n".join(lines)
                + "\n\nResume goes on from where they stopped: the steps they had done are "
                "replayed from their journals (no model request again). Discard rolls "
                "their sessions back.",
                id="interrupted-text",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("[u]R[/u]esume", id="resume", variant="success", compact=True)
                yield Button("[u]D[/u]iscard", id="discard", variant="error", compact=True)
                yield Button("[u]L[/u]ater", id="later", variant="primary", compact=True)

    def on_mount(self) -> None:
        self._opened = time.monotonic()
        self.query_one("#later", Button).focus()  # the choice that changes nothing

    def _too_soon(self, choice: str) -> bool:
        """Whether ``choice`` (resume or discard: "later" changes nothing) came too soon
        after the dialog opened to be meant for it."""
        if choice != "later" and time.monotonic() - self._opened < self.GUARD_S:
            self.app.bell()
            return True
        return False

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if not self._too_soon(str(event.button.id)):
            self.dismiss(str(event.button.id))

    def action_choose(self, choice: str) -> None:
        """Dismiss with ``choice`` (unless it came too soon: see :attr:`GUARD_S`)."""
        if not self._too_soon(choice):
            self.dismiss(choice)
