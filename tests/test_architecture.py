"""The kernel is reachable without the TUI: checked by import-linter and a fresh interpreter.

import-linter forbids the kernel from importing textual, rich, the UI or the developer
tools directly; the fresh interpreter proves textual and ``briotui.devtools`` never load
with the kernel (rich may, indirectly, through a provider SDK), and that the developer
tools load without textual.
"""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import briotui.devtools
import briotui.kernel

REPO = Path(__file__).resolve().parent.parent


def kernel_modules() -> list[str]:
    return sorted(
        m.name for m in pkgutil.walk_packages(briotui.kernel.__path__, prefix="briotui.kernel.")
    )


def devtools_modules() -> list[str]:
    return sorted(
        m.name for m in pkgutil.walk_packages(briotui.devtools.__path__, prefix="briotui.devtools.")
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
        "assert 'briotui.devtools' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_benchmarks_and_fake_servers_live_outside_the_kernel() -> None:
    assert not [m for m in kernel_modules() if "bench" in m or "loopback" in m]
    modules = devtools_modules()
    assert "briotui.devtools.loopback" in modules
    assert "briotui.devtools.bench.measure" in modules
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
