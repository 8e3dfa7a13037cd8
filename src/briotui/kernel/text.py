"""Neutralizing text from agents and models before a terminal shows it.

A model's reply, an agent's log line or a file an agent wrote may carry escape
sequences that would move the cursor, clear the screen, change the window title, write
to the clipboard (OSC 52) or hide text, and invisible or bidirectional characters that
make text read differently from what it is ("Trojan Source": a right-to-left override
in a file name or a comment). Every front end passes such text through one of two
functions:

* :func:`sanitize`, for prose (summaries, messages, titles): escape sequences are
  removed, other control characters (C0 and C1, DEL) are shown as visible symbols,
  newlines and tabs stay, and invisible or bidi characters are shown as ``<U+XXXX>``.
* :func:`reveal`, for what must be reviewed exactly (diff lines, file names): nothing is
  removed; every control character but tab (newline included) and every invisible or
  bidi character is shown as ``<U+XXXX>``, as code review sites do.
  :func:`reveal_segments` gives the same text in pieces, so a renderer can style the
  marks.

The result of either holds no C0/C1 control (but tab, and newline for
:func:`sanitize`), no DEL, and no invisible or bidi character.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_ESCAPES = re.compile(
    r"""
    \x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?     # OSC ... BEL or ST (title, clipboard, links)
    | \x1b[P^_X][^\x1b]*(?:\x1b\\)?         # DCS, PM, APC, SOS ... ST
    | \x1b\[[0-?]*[ -/]*[@-~]               # CSI (cursor, colours, erase)
    | \x9b[0-?]*[ -/]*[@-~]                 # 8-bit CSI
    | \x1b[@-Z\\-_]                         # other two-byte escapes
    """,
    re.VERBOSE,
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

INVISIBLE = (
    "\u00ad"  # soft hyphen
    "\u034f"  # combining grapheme joiner
    "\u061c"  # Arabic letter mark (bidi)
    "\u115f\u1160\u3164\uffa0"  # Hangul fillers
    "\u17b4\u17b5"  # Khmer inherent vowels
    "\u180b-\u180f"  # Mongolian variation selectors and vowel separator
    "\u200b-\u200f"  # zero width space, non-joiner, joiner; LRM, RLM
    "\u2028\u2029"  # line and paragraph separators
    "\u202a-\u202e"  # bidi embeddings and overrides
    "\u2060-\u2064"  # word joiner, invisible operators
    "\u2066-\u2069"  # bidi isolates
    "\u206a-\u206f"  # deprecated format characters
    "\ufeff"  # zero width no-break space (BOM)
    "\ufff9-\ufffb"  # interlinear annotation
    "\U0001d173-\U0001d17a"  # musical formatting
    "\U000e0000-\U000e007f"  # tag characters (invisible ASCII)
)
"""A character class body: characters that show nothing or reorder what is around them."""

_INVISIBLE = re.compile(f"[{INVISIBLE}]")
_REVEALED = re.compile(f"[\x00-\x08\x0a-\x1f\x7f-\x9f{INVISIBLE}]")


def mark(char: str) -> str:
    """The visible stand-in for one character: ``<U+202E>``."""
    return f"<U+{ord(char):04X}>"


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # the Unicode "control picture", e.g. ␛
    return "\ufffd"


def sanitize(text: str) -> str:
    """``text`` safe to print as prose.

    Escape sequences are removed, other controls become visible symbols (newlines and
    tabs stay), invisible and bidi characters become ``<U+XXXX>``.
    """
    shown = _CONTROLS.sub(_visible, _ESCAPES.sub("", text))
    return _INVISIBLE.sub(lambda m: mark(m.group()), shown)


def reveal_segments(text: str) -> Iterator[tuple[str, bool]]:
    """``text`` in pieces ``(piece, is_mark)``: plain runs and ``<U+XXXX>`` marks.

    Every control character but tab (newline included) and every invisible or bidi
    character is a mark; nothing is dropped. Joined, the pieces are :func:`reveal`.
    """
    pos = 0
    for match in _REVEALED.finditer(text):
        if match.start() > pos:
            yield text[pos : match.start()], False
        yield mark(match.group()), True
        pos = match.end()
    if pos < len(text):
        yield text[pos:], False


def reveal(text: str) -> str:
    """``text`` with every control (but tab) and invisible character as ``<U+XXXX>``."""
    return _REVEALED.sub(lambda m: mark(m.group()), text)
