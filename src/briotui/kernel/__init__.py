"""The agent kernel: runtime, sessions, capabilities, models and state, without a UI.

Nothing under ``briotui.kernel`` imports Textual or Rich (an import-linter contract
and a fresh-interpreter test enforce it). The TUI, the CLI and tests drive the kernel
through its async command API in :mod:`briotui.kernel.kernel`.
"""
