"""The review screen shows hidden characters in a hunk as visible, styled marks.

A real session (the app's own kernel) holds a file an agent wrote with terminal escapes,
a right-to-left override and zero-width characters; the review screen is opened on it
with the pilot. The diff view must show each as ``<U+XXXX>`` in the mark style, drop
nothing, and put none of those characters on the screen.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from briotui.kernel.llm.scripted import ScriptedProvider
from briotui.ui.app import make_app
from briotui.ui.screens.review import ReviewScreen
from briotui.ui.widgets.diff_view import HunkView

pytestmark = pytest.mark.slow

CODE = (
    "def is_admin(user):\n"
    "    access = 'user' # \u202e } \u2066if admin\u2069 \u2066 begin admins only\n"
    "    clear = '\x1b[2J\x1b]52;c;ZXZpbA==\x07\x9b1m'\n"
    "    return user == 'ad\u200bmin\ufeff'\n"
)
FORBIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)


def styled_marks(text: Text) -> list[str]:
    """The pieces of ``text`` drawn in reverse video (the mark style)."""
    out = []
    for span in text.spans:
        style = Style.parse(span.style) if isinstance(span.style, str) else span.style
        if style.reverse:
            out.append(text.plain[span.start : span.end])
    return out


async def test_review_marks_escapes_bidi_and_zero_width_characters(
    project: Path, config_dir: Path
) -> None:
    app = make_app(project, provider=ScriptedProvider([]), config_dir=config_dir, build=False)
    async with app.run_test(size=(160, 40)) as pilot:
        session = app.workbench.sessions().create(label="coder", task="admin check")
        session.write("auth.py", CODE.encode(), False)
        await app.push_screen(ReviewScreen(session.id))
        await app.workers.wait_for_complete()
        await pilot.pause(0.1)
        [view] = app.screen.query(HunkView)
        code = view.query_one(".hunk-code", Static).content
        assert isinstance(code, Text)
        plain = code.plain
        assert not FORBIDDEN.search(plain), plain
        for shown in (
            "# <U+202E> } <U+2066>if admin<U+2069> <U+2066> begin",
            "'<U+001B>[2J<U+001B>]52;c;ZXZpbA==<U+0007><U+009B>1m'",
            "'ad<U+200B>min<U+FEFF>'",
        ):
            assert shown in plain
        assert sorted(set(styled_marks(code))) == sorted(
            {"<U+202E>", "<U+2066>", "<U+2069>", "<U+001B>", "<U+0007>", "<U+009B>"}
            | {"<U+200B>", "<U+FEFF>"}
        )
        screen = html.unescape(app.export_screenshot())
        assert not FORBIDDEN.search(screen)
        assert "<U+202E>" in screen
