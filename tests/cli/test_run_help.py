"""`briotui run --help` documents the exit code of each outcome."""

from __future__ import annotations

import pytest

from briotui.cli.cmd_run import EXIT_CODES
from briotui.cli.main import main


def test_run_help_lists_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    assert "exit codes" in text
    for outcome, code in EXIT_CODES.items():
        assert outcome in text
        assert f"  {code}  " in text
    assert len({EXIT_CODES[o] for o in ("done", "tests-failed", "partial", "error")}) == 4
