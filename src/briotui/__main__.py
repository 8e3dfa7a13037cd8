"""Run briotui as ``python -m briotui``."""

from __future__ import annotations

from briotui.cli.main import main

raise SystemExit(main())
