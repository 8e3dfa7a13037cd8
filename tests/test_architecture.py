"""The kernel is reachable without the TUI: checked by import-linter and a fresh interpreter.

import-linter forbids the kernel from importing textual, rich or the UI directly; the
fresh interpreter proves textual never loads with the kernel (rich may, indirectly,
through a provider SDK).
"""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import briotui.kernel

REPO = Path(__file__).resolve().parent.parent


def kernel_modules() -> list[str]:
    return sorted(
        m.name for m in pkgutil.walk_packages(briotui.kernel.__path__, prefix="briotui.kernel.")
    )


def test_kernel_imports_without_textual() -> None:
    modules = kernel_modules()
    assert "briotui.kernel.runtime.instance" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'textual')\n"
        "assert not bad, bad\n"
        "assert 'briotui.ui' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_import_linter_contracts_hold() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint is not None, "import-linter is part of the test extras"
    proc = subprocess.run([lint], cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
