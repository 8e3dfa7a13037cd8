"""The conversation of the selected task: streamed model text as Markdown, events inline."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Markdown, Static
from textual.widgets._markdown import MarkdownStream

EMPTY = (
    "Type a request below and press **Enter**. The agents plan, code and review in a "
    "session; nothing reaches your files until you approve hunks in the review "
    "(**ctrl+r**)."
)


class ConversationPane(VerticalScroll):
    """Model output for one task, streamed in batches (``Markdown.get_stream``)."""

    DEFAULT_CSS = """
    ConversationPane { padding: 0 1; }
    ConversationPane > #conv-title { text-style: bold; color: $primary; padding: 0 0 1 0; }
    ConversationPane > Markdown { margin: 0; padding: 0; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.task_id: str | None = None
        self._stream: MarkdownStream | None = None
        self._fresh = False
        """Whether the placeholder is shown (the first streamed text replaces it)."""

    def compose(self) -> ComposeResult:
        yield Static("", id="conv-title")
        yield Markdown(EMPTY, id="conv-body")

    @property
    def body(self) -> Markdown:
        """The Markdown widget holding the text."""
        return self.query_one("#conv-body", Markdown)

    async def show(self, task_id: str, title: Text | str, text: str) -> None:
        """Show ``task_id``'s conversation (``text`` so far); later text streams in."""
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        self.task_id = task_id
        self.query_one("#conv-title", Static).update(title)
        await self.body.update(text or "_Waiting for the first words from the model…_")
        self._fresh = not text
        self.scroll_end(animate=False)

    async def append(self, task_id: str, text: str) -> None:
        """Add streamed ``text`` if ``task_id`` is the one shown (or one of its subtasks)."""
        shown = self.task_id
        if shown is None or not text or not (task_id == shown or task_id.startswith(shown + ".")):
            return
        if self._fresh:
            self._fresh = False
            await self.body.update("")
        if self._stream is None:
            self._stream = Markdown.get_stream(self.body)
        await self._stream.write(text)
        self.scroll_end(animate=False)

    async def replace(self, task_id: str, text: str) -> None:
        """Redraw with ``text`` if ``task_id`` is shown (a reply in progress was dropped)."""
        shown = self.task_id
        if shown is None or not (task_id == shown or task_id.startswith(shown + ".")):
            return
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        self._fresh = not text
        await self.body.update(text or "_Waiting for the first words from the model…_")
        self.scroll_end(animate=False)

    async def on_unmount(self) -> None:
        if self._stream is not None:
            await self._stream.stop()
