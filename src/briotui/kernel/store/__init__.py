"""The project's SQLite store (``.brio/state.db``): WAL, versioned migrations."""

from __future__ import annotations

from briotui.kernel.store.db import Store, migrate, open_async, schema_version
from briotui.kernel.store.migrations import MIGRATIONS, latest_version

__all__ = ["MIGRATIONS", "Store", "latest_version", "migrate", "open_async", "schema_version"]
