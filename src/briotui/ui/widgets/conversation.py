"""The conversation of the selected task: streamed model text as Markdown, events inline.

Model text is not written for a Markdown renderer: ``calc/__init__.py`` would lose its
underscores to emphasis, and the Council's plan and the Reviewer's review arrive as
JSON. :func:`to_markdown` turns the raw text into what is shown: a known JSON reply (a
plan, a review, a command) becomes a list, and underscores outside code are escaped.
The pane keeps the raw text and streams the difference of the shown Markdown (or
redraws when an earlier part changed, e.g. a plan's JSON just closed), and stays
anchored to the end of the text while the user has not scrolled up.
"""

from __future__ import annotations

import json
import re
from typing import Any

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

WAITING = "_Waiting for the first words from the model…_"

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(?:.+?)\1")
_BARE_UNDERSCORE = re.compile(r"(?<!\\)_")
_OBJECT_START = re.compile(r"\{\s*\"")
_DECODER = json.JSONDecoder()


def _code(text: Any) -> str:
    """``text`` as an inline code span (backticks inside it made harmless)."""
    return "`" + " ".join(str(text).replace("`", "'").split()) + "`"


def _line(text: Any) -> str:
    """``text`` on one line."""
    return " ".join(str(text).split())


def _plan(data: dict[str, Any]) -> str | None:
    subtasks = data.get("subtasks")
    if not isinstance(subtasks, list):
        return None
    items = [s for s in subtasks if isinstance(s, dict)]
    if not items:
        question = data.get("question")
        return f"**Question:** {_line(question)}" if question else "**Plan:** no subtasks."
    lines = [f"**Plan** — {len(items)} subtask(s)", ""]
    for n, item in enumerate(items, 1):
        title = _line(item.get("title") or item.get("goal") or "")
        goal = _line(item.get("goal") or "")
        lines.append(f"{n}. **{title}**" + (f" — {goal}" if goal and goal != title else ""))
        files = [f for f in item.get("files") or () if isinstance(f, str)]
        if files:
            lines.append("   - files: " + ", ".join(_code(f) for f in files))
        for check in item.get("acceptance") or ():
            lines.append(f"   - done when: {_line(check)}")
    return "\n".join(lines)


def _review(data: dict[str, Any]) -> str | None:
    findings = data.get("findings")
    if "verdict" not in data or not isinstance(findings, list):
        return None
    items = [f for f in findings if isinstance(f, dict)]
    lines = [f"**Review: {_line(data['verdict'])}** — {len(items)} finding(s)"]
    if items:
        lines.append("")
    for finding in items:
        hunk = finding.get("hunk_id") or finding.get("hunk") or ""
        where = _code(hunk if str(hunk).startswith("h-") else f"h-{hunk}") if hunk else "overall"
        text = f"- **{_line(finding.get('severity') or 'info')}** {where}: "
        text += _line(finding.get("message") or "")
        if finding.get("suggestion"):
            text += f" — suggestion: {_line(finding['suggestion'])}"
        lines.append(text)
    return "\n".join(lines)


def _command(data: dict[str, Any]) -> str | None:
    argv = data.get("argv")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        return None
    why = f" — {_line(data['why'])}" if data.get("why") else ""
    return f"**Command:** {_code(' '.join(argv))}{why}"


def render_reply(data: Any) -> str | None:
    """A known JSON reply as Markdown: a plan, a review or a command (None: unknown)."""
    if not isinstance(data, dict):
        return None
    for render in (_plan, _review, _command):
        if (shown := render(data)) is not None:
            return shown
    return None


def _closes(line: str, fence: str) -> bool:
    """Whether ``line`` closes a code block opened by ``fence``."""
    marker = _FENCE.match(line)
    if marker is None or line[marker.end() :].strip():
        return False
    found = marker.group(1)
    return found[0] == fence[0] and len(found) >= len(fence)


def _blocks(text: str) -> list[tuple[bool, str]]:
    """``text`` cut into (is a fenced block, text) pieces, in order; an unclosed fence
    (a reply still streaming) runs to the end."""
    pieces: list[tuple[bool, str]] = []
    plain: list[str] = []
    block: list[str] = []
    fence: str | None = None
    for line in text.splitlines(keepends=True):
        marker = _FENCE.match(line)
        if fence is None:
            if marker:
                fence = marker.group(1)
                pieces.append((False, "".join(plain)))
                plain, block = [], [line]
            else:
                plain.append(line)
            continue
        block.append(line)
        if _closes(line, fence):
            pieces.append((True, "".join(block)))
            block, fence = [], None
    if fence is not None:
        pieces.append((True, "".join(block)))
    pieces.append((False, "".join(plain)))
    return [p for p in pieces if p[1]]


def _fenced_reply(block: str) -> str | None:
    """A closed ```json (or bare ```) block holding one known reply, rendered."""
    lines = block.splitlines()
    if len(lines) < 2 or lines[0].strip().strip("`~").strip() not in ("", "json"):
        return None
    body = "\n".join(lines[1:-1]).strip()
    if not body.startswith("{") or not _FENCE.match(lines[-1]):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return render_reply(data)


def _bare_replies(text: str) -> str:
    """Plain ``text`` with each known reply object in it rendered."""
    out: list[str] = []
    pos = 0
    for match in _OBJECT_START.finditer(text):
        start = match.start()
        if start < pos:
            continue
        try:
            data, end = _DECODER.raw_decode(text, start)
        except ValueError:
            continue
        shown = render_reply(data)
        if shown is None:
            continue
        out += [text[pos:start], "\n\n", shown, "\n\n"]  # a Markdown block of its own
        pos = end
    out.append(text[pos:])
    return "".join(out)


def render_json_replies(text: str) -> str:
    """``text`` with each plan, review or command JSON object (fenced or bare) rendered;
    code in other fenced blocks is left as it is."""
    out: list[str] = []
    for fenced, piece in _blocks(text):
        shown = _fenced_reply(piece) if fenced else None
        if fenced and shown is None:
            out.append(piece)
            continue
        out.append(f"\n{shown}\n\n" if shown is not None else _bare_replies(piece))
    return "".join(out)


def escape_underscores(text: str) -> str:
    """``text`` with every ``_`` outside code escaped, so Markdown shows it as written."""
    out: list[str] = []
    fence: str | None = None
    for line in text.splitlines(keepends=True):
        marker = _FENCE.match(line)
        if fence is not None:
            if _closes(line, fence):
                fence = None
            out.append(line)
            continue
        if marker:
            fence = marker.group(1)
            out.append(line)
            continue
        pos = 0
        for span in _CODE_SPAN.finditer(line):
            out.append(_BARE_UNDERSCORE.sub(r"\\_", line[pos : span.start()]))
            out.append(span.group(0))
            pos = span.end()
        out.append(_BARE_UNDERSCORE.sub(r"\\_", line[pos:]))
    return "".join(out)


def to_markdown(text: str) -> str:
    """What the pane shows for the raw conversation ``text``."""
    return escape_underscores(render_json_replies(text))


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
        self._raw = ""
        """The shown task's text as it arrived."""
        self._shown = ""
        """The Markdown made of it so far (written to the widget)."""

    def compose(self) -> ComposeResult:
        yield Static("", id="conv-title")
        yield Markdown(EMPTY, id="conv-body")

    @property
    def body(self) -> Markdown:
        """The Markdown widget holding the text."""
        return self.query_one("#conv-body", Markdown)

    async def _stop_stream(self) -> None:
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None

    async def _redraw(self, text: str) -> None:
        """Show ``text`` (raw) from the start, following its end."""
        await self._stop_stream()
        self._raw = text
        self._shown = to_markdown(text)
        await self.body.update(self._shown or WAITING)
        self.anchor()

    async def show(self, task_id: str, title: Text | str, text: str) -> None:
        """Show ``task_id``'s conversation (``text`` so far); later text streams in."""
        self.task_id = task_id
        self.query_one("#conv-title", Static).update(title)
        await self._redraw(text)

    def _shows(self, task_id: str) -> bool:
        shown = self.task_id
        return shown is not None and (task_id == shown or task_id.startswith(shown + "."))

    async def append(self, task_id: str, text: str) -> None:
        """Add streamed ``text`` if ``task_id`` is the one shown (or one of its subtasks)."""
        if not text or not self._shows(task_id):
            return
        self._raw += text
        markdown = to_markdown(self._raw)
        if not self._shown or not markdown.startswith(self._shown):
            await self._redraw(self._raw)  # an earlier part changed (or the placeholder)
            return
        if self._stream is None:
            self._stream = Markdown.get_stream(self.body)
        delta, self._shown = markdown[len(self._shown) :], markdown
        await self._stream.write(delta)

    async def replace(self, task_id: str, text: str) -> None:
        """Redraw with ``text`` if ``task_id`` is shown (a reply in progress was dropped)."""
        if self._shows(task_id):
            await self._redraw(text)

    async def on_unmount(self) -> None:
        await self._stop_stream()
