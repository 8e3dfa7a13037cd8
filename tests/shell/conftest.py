"""Fixtures for the shell tool tests: corpora, a scratch directory, a bwrap marker."""

from __future__ import annotations

from pathlib import Path

import pytest

from briotui.kernel.shelltool import shell_sandbox_status

CORPORA = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"
"""The repo's sibling ``shared/corpora`` (adversarial payloads, one a line)."""

SANDBOX_OK, SANDBOX_DETAIL = shell_sandbox_status()

needs_bwrap = pytest.mark.skipif(
    not SANDBOX_OK,
    reason=f"bubblewrap sandbox unavailable here: {SANDBOX_DETAIL}",
)


def corpus_lines(name: str) -> list[str]:
    """Every non-empty line of one corpus file; skips the test if the corpora are absent."""
    path = CORPORA / name
    if not path.is_file():
        pytest.skip(f"corpus {path} not found (expected the repo's sibling shared/corpora)")
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line]
