"""The scripted demo: clearly labelled canned model replies, for trying briotui without a key.

The Coder gets a reply that creates ``BRIOTUI_DEMO.md`` in its session; nothing reaches
the project unless the user accepts the hunk and commits, like any other change.
"""

from __future__ import annotations

from typing import Final

from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply

DEMO_FILE: Final = "BRIOTUI_DEMO.md"

DEMO_REPLY: Final = f"""{DEMO_FILE}
```
<<<<<<< SEARCH
=======
# briotui demo

This file was proposed by the **scripted demo** provider, not by a real model.
Review it with ctrl+r: accept (a) or reject (r) the hunk, then commit (c) or roll
back (ctrl+z). Nothing reaches your working tree until you commit.
>>>>>>> REPLACE
```
"""


def demo_provider(replies: int = 50) -> ScriptedProvider:
    """A scripted provider that answers every request with the demo reply."""
    return ScriptedProvider(
        [ScriptedReply(text=DEMO_REPLY, model="demo")] * replies, source="the built-in demo"
    )
