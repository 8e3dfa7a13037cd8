"""Neutralizing text from agents and models before a terminal shows it.

A model's reply or an agent's log line may carry escape sequences that would move the
cursor, change the window title, write to the clipboard (OSC 52) or hide text. Every
front end passes such text through :func:`sanitize`: escape sequences are removed and
other control characters (C0 and C1, DEL) are shown as visible symbols; newlines and
tabs stay.
"""

from __future__ import annotations

import re

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


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # the Unicode "control picture", e.g. ␛
    return "\ufffd"


def sanitize(text: str) -> str:
    """``text`` safe to print: no escape sequences, no raw control characters."""
    return _CONTROLS.sub(_visible, _ESCAPES.sub("", text))
