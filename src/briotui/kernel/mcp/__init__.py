"""MCP tools for agents: configured servers, started lazily, every call capability-checked.

:mod:`.config` reads ``[mcp]``; :mod:`.hub` owns the connections (the official ``mcp``
SDK's client, stdio servers inside the shell commands' sandbox) and serves the agents'
``tools`` WIT interface through :mod:`briotui.kernel.runtime.host`.
"""
