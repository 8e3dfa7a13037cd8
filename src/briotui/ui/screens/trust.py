"""The trust dialog: what a project's config asks for, and whether the user trusts it.

Shown on start when the project's ``.brio/config.toml`` (or ``.brio/agents/``) asks for
settings that could send secrets somewhere or widen what agents may do, and from the
palette ("Trust this project"). Until the user picks Trust, those settings are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from briotui.kernel.text import sanitize
from briotui.kernel.trust import TrustRequest

TrustDecision = Literal["trust", "not-now"]
"""What the dialog returns: trust the project with these settings, or keep ignoring them."""


def describe(request: TrustRequest, refused: Mapping[str, str]) -> Text:
    """The list of what is asked, one item a line."""
    text = Text()
    for line in request.lines(refused):
        text.append("• ", style="bold")
        text.append(sanitize(line) + "\n")
    text.rstrip()
    return text


class TrustDialog(ModalScreen[TrustDecision]):
    """Asks whether to trust the project with the settings its config asks for.

    Args:
        project: The project's name, for the title.
        request: What its config asks for.
        refused: Providers whose key is never sent to the URL the project chose, and why.
        changed: Whether the user trusted an earlier version of these settings.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "decide('trust')", "Trust", id="trust-yes", tooltip="Trust these settings"),
        Binding(
            "n,escape",
            "decide('not-now')",
            "Not now",
            id="trust-no",
            tooltip="Keep ignoring them (the palette asks again)",
        ),
    ]

    def __init__(
        self,
        project: str,
        request: TrustRequest,
        refused: Mapping[str, str] | None = None,
        *,
        changed: bool = False,
    ) -> None:
        super().__init__()
        self.project = project
        self.request = request
        self.refused = dict(refused or {})
        self.changed = changed

    def compose(self) -> ComposeResult:
        with Vertical(id="trust-dialog", classes="dialog"):
            yield Static(
                f"Trust the project {sanitize(self.project)!r}?",
                classes="dialog-title",
                markup=False,
            )
            intro = (
                "Its config changed since you trusted it. "
                if self.changed
                else "Its .brio/config.toml or .brio/agents/ came with the repository. "
            )
            yield Static(
                intro + "It asks for settings that can send data to servers or let agents do "
                "more; they are ignored until you trust the project:",
                id="trust-intro",
            )
            with VerticalScroll(id="trust-list"):
                yield Static(describe(self.request, self.refused), id="trust-items")
            if self.refused:
                yield Static(
                    "REFUSED keys are never sent to a URL a project chooses, trusted or not.",
                    classes="dim",
                )
            with Horizontal(classes="dialog-buttons"):
                yield Button("[u]T[/u]rust", id="trust", variant="warning", compact=True)
                yield Button("[u]N[/u]ot now", id="not-now", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#not-now", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss("trust" if event.button.id == "trust" else "not-now")

    def action_decide(self, decision: TrustDecision) -> None:
        """Close with ``decision``."""
        self.dismiss(decision)
