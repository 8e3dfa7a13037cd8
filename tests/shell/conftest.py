"""Fixtures for the shell tool tests: corpora, a scratch directory, a bwrap marker."""

from __future__ import annotations

import pytest
from tests.conftest import CORPORA

from briotui.kernel.shell.runner import ShellSettings, sandbox_status

_STATUS = sandbox_status(ShellSettings())
SANDBOX_OK, SANDBOX_DETAIL = _STATUS.sandboxed, _STATUS.detail

needs_bwrap = pytest.mark.skipif(
    not SANDBOX_OK,
    reason=f"bubblewrap sandbox unavailable here: {SANDBOX_DETAIL}",
)


def corpus_lines(name: str) -> list[str]:
    """Every non-empty line of one corpus file; skips the test if the corpora are absent."""
    path = CORPORA / name
    assert path.is_file(), f"corpus {path} is missing from the repository"
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line]
