"""Capabilities: what each agent may do, the grants that say so, prompts, and the audit log.

Three layers must agree before a host call does anything: the agent's WIT world (what
it can even import, checked at link time), its grants (profile defaults, the project's
config, answers the user gave, grants delegated from a parent task), and the check at
every call (:class:`~briotui.kernel.caps.checker.Capabilities`), which asks the user —
or applies the ``--approve`` policy — when a call is outside the grants, and writes
every decision to the append-only audit log.
"""
