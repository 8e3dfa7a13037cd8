"""The benchmark suite behind ``briotui bench``: every figure is a :class:`Measure`.

Speed is measured here, never asserted in tests. One module per area: ``runtime``
(agents), ``sessions`` (copy-on-write sessions), ``llm`` (streaming overhead on
loopback servers), ``mesh`` and ``state``.
"""
