"""briotui: a terminal workstation for supervised AI coding."""

from __future__ import annotations

__version__ = "0.1.0"
