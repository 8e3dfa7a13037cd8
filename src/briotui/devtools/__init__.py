"""Tools for working on briotui itself: the benchmark suite and fake model servers.

Nothing here is part of the kernel: ``briotui bench`` and ``briotui dev fake-llm`` (and
the tests) use it, and an import-linter contract keeps the kernel from importing it.
Modules here may import the kernel, never the UI or the CLI.
"""
