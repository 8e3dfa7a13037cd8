"""Model and agent text is neutralized before a terminal shows it."""

from __future__ import annotations

import pytest

from briotui.kernel.text import sanitize


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
