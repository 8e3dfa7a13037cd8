"""The test output screen and the unverified-commit question.

The review screen shows whether the tests passed and which failed; :class:`TestOutput`
shows the whole stored tail of the output (``t`` in the review), so a failure says why.
:class:`ConfirmUnverified` asks before committing what did not pass the tests (the
session's, or the run on exactly the accepted hunks).
"""

from __future__ import annotations

import shlex
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from briotui.kernel.text import sanitize
from briotui.ui.screens.dialogs import Confirm


def run_heading(run: dict[str, Any]) -> str:
    """One line: the command, whether it passed, its exit code and duration."""
    verdict = "passed" if run["exit_code"] == 0 else "failed"
    return (
        f"{sanitize(shlex.join(run['argv']))} {verdict} "
        f"(exit {run['exit_code']}, {run['duration_ms'] / 1000:.1f} s)"
    )


class TestOutput(ModalScreen[None]):
    """The stored output of a session's latest test run (as ``briotui sessions show``).

    Args:
        run: The run as the kernel stores it (``Kernel.test_run``).
    """

    __test__ = False  # not a pytest test class

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,t,q", "close", "Close", id="test-output-close", tooltip="Back"),
    ]

    def __init__(self, run: dict[str, Any]) -> None:
        super().__init__()
        self.run = run

    def compose(self) -> ComposeResult:
        with Vertical(id="test-output-dialog", classes="dialog"):
            yield Static(run_heading(self.run), classes="dialog-title", id="test-output-title")
            failed = "\n".join(f"failed: {sanitize(n)}" for n in self.run["failed"])
            if failed:
                yield Static(failed, id="test-output-failed")
            if self.run["truncated"]:
                yield Static("(the beginning of the output was cut)", classes="dim")
            with VerticalScroll(id="test-output-body"):
                yield Static(Text(sanitize(self.run["output"])), id="test-output-text")
            yield Static("Escape closes", classes="dim")

    def on_mount(self) -> None:
        self.query_one("#test-output-body", VerticalScroll).scroll_end(animate=False)

    def action_close(self) -> None:
        """Back to the review."""
        self.dismiss(None)


class ConfirmUnverified(Confirm):
    """Asks before committing what the tests did not pass; dismisses with the answer.

    Args:
        message: Why it is not verified (the kernel's words: failing tests, no run).
    """

    def __init__(self, message: str) -> None:
        super().__init__("Commit without passing tests?", sanitize(message), "commit anyway")
        self.message = message
