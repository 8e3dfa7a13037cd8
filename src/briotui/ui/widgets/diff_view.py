"""Hunks rendered for review: syntax-highlighted lines, decision, author, Reviewer findings.

The code an agent wrote is shown exactly: control characters (but tab), invisible and
bidi characters are not hidden or obeyed but shown as ``<U+XXXX>`` marks in a style of
their own (:func:`~briotui.kernel.text.reveal_segments`), as code review sites do, so a
right-to-left override or a zero-width space in a hunk is seen before it is accepted.
"""

from __future__ import annotations

from rich.style import Style
from rich.syntax import Syntax
from rich.text import Span, Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from briotui.kernel import contract
from briotui.kernel.text import reveal_segments, sanitize
from briotui.kernel.vfs import Hunk
from briotui.ui.widgets.task_tree import themed

LINE_WIDTH = 200
"""Rows are padded this far so a +/- tint spans the pane (the pane crops the rest)."""

SEVERITY_ICON = {"error": "✘", "warning": "▲", "info": "●", "nit": "·"}

MARK_STYLE = "bold reverse $warning"
"""How a ``<U+XXXX>`` mark for a hidden character stands out from the code around it."""


def _foreground_only(line: Text) -> Text:
    """``line`` with every background colour removed (colours and emphasis kept)."""
    spans = []
    for span in line.spans:
        style = Style.parse(span.style) if isinstance(span.style, str) else span.style
        bare = Style(color=style.color, bold=style.bold, italic=style.italic)
        spans.append(Span(span.start, span.end, bare))
    return Text(line.plain, spans=spans, no_wrap=True)


def reveal_line(body: str) -> tuple[str, list[tuple[int, int]]]:
    """One line of code with hidden characters as marks, and the marks' offsets."""
    pieces: list[str] = []
    marks: list[tuple[int, int]] = []
    at = 0
    for piece, is_mark in reveal_segments(body):
        if is_mark:
            marks.append((at, at + len(piece)))
        pieces.append(piece)
        at += len(piece)
    return "".join(pieces), marks


def highlight_hunk(hunk: Hunk, *, dark: bool, variables: dict[str, str]) -> Text:
    """The hunk's ``@@`` header and body, code highlighted by the file's language.

    Control, invisible and bidi characters in the code are shown as ``<U+XXXX>`` marks
    styled with :data:`MARK_STYLE`.
    """
    signs = [line[:1] for line in hunk.lines]
    revealed = [reveal_line(line[1:].removesuffix("\n")) for line in hunk.lines]
    code = "".join(text + "\n" for text, _ in revealed)
    lexer = Syntax.guess_lexer(hunk.path, code)
    syntax = Syntax("", lexer, theme="monokai" if dark else "friendly", background_color="default")
    highlighted = syntax.highlight(code).split("\n", allow_blank=True)
    out = Text(no_wrap=True, overflow="crop")
    out.append(hunk.header().rsplit(" #h-", 1)[0], style=themed("bold $primary", variables))
    out.append(f"  #h-{hunk.id}\n", style="dim")
    add = themed("$success", variables)
    remove = themed("$error", variables)
    add_bg = "on #1d3324" if dark else "on #dafbe1"
    remove_bg = "on #3b1f24" if dark else "on #ffebe9"
    mark_style = themed(MARK_STYLE, variables)
    for sign, line, (_, marks) in zip(signs, highlighted, revealed, strict=False):
        line = _foreground_only(line)  # the pane's background, not the Syntax theme's
        line.pad_right(max(0, LINE_WIDTH - len(line)))  # tint the whole row
        if sign == "+":
            row = Text("+", style=f"bold {add}")
            row.append_text(line)
            row.stylize(add_bg)
        elif sign == "-":
            row = Text("-", style=f"bold {remove}")
            row.append_text(line)
            row.stylize(remove_bg)
        else:
            row = Text(" ")
            row.append_text(line)
            row.stylize("dim")
        for start, end in marks:
            row.stylize(mark_style, 1 + start, 1 + end)
        out.append_text(row)
        out.append("\n")
    if not hunk.lines:
        out.append(f"({hunk.kind} change)\n", style="italic dim")
    out.rstrip()
    return out


def findings_text(
    findings: list[contract.FindingView],
    decision: tuple[str, str] | None,
    author: str,
    variables: dict[str, str],
) -> Text:
    """The side panel: decision, who wrote the hunk, and the Reviewer's findings."""
    out = Text()
    state, reason = decision or ("pending", "")
    colour = {"accepted": "$success", "rejected": "$error"}.get(state, "$warning")
    out.append(f"{state.upper()}\n", style=themed(f"bold {colour}", variables))
    if reason:
        out.append(f"“{sanitize(reason)}”\n", style="italic")
    if author:
        out.append(f"by {sanitize(author)}\n", style="dim")
    if not findings:
        out.append("Reviewer: no findings\n", style="dim")
    for finding in findings:
        severity = finding["severity"]
        style = {"error": "$error", "warning": "$warning"}.get(severity, "$secondary")
        out.append(
            f"{SEVERITY_ICON.get(severity, '●')} {severity}: ",
            style=themed(f"bold {style}", variables),
        )
        out.append(sanitize(finding["message"]) + "\n")
        suggestion = finding.get("suggestion", "")
        if suggestion:
            out.append(f"  → {sanitize(suggestion)}\n", style="italic dim")
    out.rstrip()
    return out


class HunkView(Horizontal):
    """One hunk: the highlighted diff beside its decision and findings."""

    DEFAULT_CSS = """
    HunkView { height: auto; margin: 0 0 1 0; border-left: outer $panel; }
    HunkView.-current { border-left: outer $accent; background: $boost; }
    HunkView.-accepted { border-left: outer $success; }
    HunkView.-rejected { border-left: outer $error; }
    HunkView.-current.-accepted, HunkView.-current.-rejected { border-left: thick $accent; }
    HunkView > .hunk-code { width: 1fr; height: auto; }
    HunkView > .hunk-findings { width: 36; height: auto; padding: 0 1; }
    """

    def __init__(self, hunk: Hunk) -> None:
        super().__init__(id=f"hunk-{hunk.id}")
        self.hunk = hunk

    def compose(self) -> ComposeResult:
        yield Static(classes="hunk-code")
        yield Static(classes="hunk-findings")

    def show(
        self,
        *,
        findings: list[contract.FindingView],
        decision: tuple[str, str] | None,
        author: str,
    ) -> None:
        """Draw the hunk with its current decision and findings."""
        variables = self.app.theme_variables
        dark = self.app.current_theme.dark
        self.query_one(".hunk-code", Static).update(
            highlight_hunk(self.hunk, dark=dark, variables=variables)
        )
        self.query_one(".hunk-findings", Static).update(
            findings_text(findings, decision, author, variables)
        )
        state = (decision or ("pending", ""))[0]
        self.set_class(state == "accepted", "-accepted")
        self.set_class(state == "rejected", "-rejected")


class ConflictView(Static):
    """A file a branch could not merge cleanly into the session: for each region the base,
    this session's side and the branch's, and whether (and how) it is resolved.

    Drawn from the published state (:meth:`show`); the region the review's keys act on
    is marked.
    """

    DEFAULT_CSS = """
    ConflictView { height: auto; border: round $error; padding: 0 1; margin: 0 0 1 0; }
    ConflictView.-resolved { border: round $success; }
    """

    def __init__(self, conflict: contract.ConflictView) -> None:
        super().__init__()
        self.conflict = conflict
        self.current: int | None = None

    def on_mount(self) -> None:
        self.show(self.conflict, self.current)

    def show(self, conflict: contract.ConflictView, current: int | None) -> None:
        """Draw ``conflict``; ``current`` is the number of the region the keys act on."""
        self.conflict, self.current = conflict, current
        v = self.app.theme_variables
        text = Text()
        branch = sanitize(conflict["session"])
        left = contract.unresolved([conflict])
        text.append(f"Conflict in {sanitize(conflict['path'])}", style="bold")
        text.append(
            f"  {left} of {len(conflict['regions'])} region(s) to resolve\n"
            if left
            else "  resolved\n",
            style=themed("$warning" if left else "$success", v),
        )
        ours, theirs = (
            ("ours: this session", f"theirs: branch {branch} (not merged)")
            if branch  # a subtask's branch that did not merge into the session
            else ("yours (working tree)", "session")
        )
        for region in conflict["regions"]:
            mark = "▶ " if region["index"] == current and not region["resolved"] else "  "
            where = f" at line {region['line'] + 1}" if region["line"] >= 0 else ""
            head = f"{mark}region {region['index']}{where}"
            if region["resolved"]:
                text.append(
                    f"{head}: resolved, took {sanitize(region['resolution'])}\n",
                    style=themed("$success", v),
                )
                continue
            text.append(f"{head}\n", style=themed("bold $accent" if mark.strip() else "bold", v))
            for label, body, colour in (
                ("base", region["base"], "$secondary"),
                (ours, region["ours"], "$warning"),
                (theirs, region["theirs"], "$primary"),
            ):
                text.append(f"── {label}\n", style=themed(f"bold {colour}", v))
                text.append(sanitize(body).rstrip("\n") + "\n")
        text.append(
            "1 take ours · 2 take theirs · 3 keep both · n next region; nothing was overwritten."
            if left
            else "All its regions are resolved.",
            style="italic dim",
        )
        self.set_class(not left, "-resolved")
        self.update(text)
