"""The ``briotui`` command reports a native crash with every thread's Python stack."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import faulthandler, sys
from briotui.cli.main import main
sys.argv = ["briotui", "--version"]
try:
    main()
except SystemExit:
    pass
print(faulthandler.is_enabled())
"""


def test_the_command_enables_the_fault_handler() -> None:
    # A segfault in a native library (seen once in a bench run) left only "Segmentation
    # fault"; the command now prints where each thread was.
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().endswith("True")
