"""The help screen: every key of the app and the screen below, with binding ids for keymaps."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Static


class HelpScreen(ModalScreen[None]):
    """Lists the active keys; ``[ui.keymap]`` in the config rebinds them by id."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape,q,f1,question_mark", "close", "Close", id="help-close", tooltip="Close help"
        ),
    ]

    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog", classes="dialog"):
            yield Static("Keys", classes="dialog-title")
            yield DataTable(id="help-keys", cursor_type="row", zebra_stripes=True)
            yield Static(
                'Rebind any key by id in ~/.config/briotui/config.toml: [ui.keymap] review = "f2". '
                "ctrl+p opens the command palette.",
                classes="dim",
            )

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("key", "action", "id")
        for row in self.rows:
            table.add_row(*row)

    def action_close(self) -> None:
        """Close help."""
        self.dismiss(None)


def key_rows(screen: Screen[object]) -> list[tuple[str, str, str]]:
    """(key, what it does, binding id) for every binding active on ``screen``."""
    rows: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for key, active in screen.active_bindings.items():
        binding = active.binding
        ident = binding.id or binding.action
        if not binding.description or ident in seen:
            continue
        seen.add(ident)
        display = screen.app.get_key_display(binding) or key
        rows.append((display, binding.tooltip or binding.description, binding.id or ""))
    return rows
