"""Model and agent text is neutralized before a terminal shows it."""

from __future__ import annotations

import pytest

from briotui.kernel.text import reveal, reveal_segments, sanitize


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain\n\ttext", "plain\n\ttext"),
        ("red \x1b[31mX\x1b[0m", "red X"),
        ("title \x1b]0;pwned\x07after", "title after"),
        ("clipboard \x1b]52;c;ZXZpbA==\x1b\\x", "clipboard x"),
        ("link \x1b]8;;http://evil\x1b\\text\x1b]8;;\x1b\\", "link text"),
        ("8-bit \x9b2J", "8-bit "),
        ("nul\x00bell\x07", "nul\u2400bell\u2407"),
        ("cr\roverwrite", "cr\u240doverwrite"),
        ("dcs \x1bPq#0;2;0;0;0\x1b\\done", "dcs done"),
    ],
)
def test_escapes_are_removed_and_controls_made_visible(raw: str, shown: str) -> None:
    assert sanitize(raw) == shown


def test_nothing_escapes_from_arbitrary_bytes() -> None:
    raw = "".join(chr(i) for i in range(0x00, 0xA0)) * 3
    out = sanitize(raw)
    assert not any(ord(c) < 0x20 and c not in "\n\t" for c in out)
    assert not any(0x7F <= ord(c) <= 0x9F for c in out)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("user \u202e nimda", "user <U+202E> nimda"),
        ("iso \u2066x\u2069", "iso <U+2066>x<U+2069>"),
        ("zero\u200bwidth\ufeff", "zero<U+200B>width<U+FEFF>"),
        ("tag \U000e0041", "tag <U+E0041>"),
    ],
)
def test_prose_shows_invisible_and_bidi_characters_as_marks(raw: str, shown: str) -> None:
    assert sanitize(raw) == shown


def test_reveal_marks_every_control_but_tab_and_drops_nothing() -> None:
    raw = "a\tb\x1b[2J\x9b1m\r\n\u202e\u200d"
    assert reveal(raw) == "a\tb<U+001B>[2J<U+009B>1m<U+000D><U+000A><U+202E><U+200D>"
    pieces = list(reveal_segments(raw))
    assert "".join(p for p, _ in pieces) == reveal(raw)
    assert [p for p, is_mark in pieces if is_mark] == [
        "<U+001B>",
        "<U+009B>",
        "<U+000D>",
        "<U+000A>",
        "<U+202E>",
        "<U+200D>",
    ]


def test_revealed_and_sanitized_text_hold_nothing_invisible() -> None:
    raw = "".join(chr(i) for i in [*range(0x00, 0xA0), *range(0x2000, 0x2070), 0xFEFF])
    for out in (sanitize(raw), reveal(raw)):
        assert not any(ord(c) < 0x20 and c not in "\n\t" for c in out)
        assert not any(0x7F <= ord(c) <= 0x9F for c in out)
        assert not any(0x200B <= ord(c) <= 0x200F or 0x202A <= ord(c) <= 0x202E for c in out)
        assert not any(0x2066 <= ord(c) <= 0x2069 or ord(c) == 0xFEFF for c in out)
