"""No import cycles between briotui's modules (imports under TYPE_CHECKING do not count).

The cycles issue 11 named (kernel <-> supervisor, vfs session <-> commit <-> materialize,
app <-> screens) are broken by narrow interfaces (``supervisor.SupervisorHost``,
the session manager, ``ui.host.AppHost``); import-linter keeps those three named, and
this test keeps every other cycle out too. Function-level imports count: a lazy import
is still a cycle.
"""

from __future__ import annotations

import grimp

ALLOWED: frozenset[frozenset[str]] = frozenset()
"""Cycles allowed on purpose (none)."""


def import_cycles(graph: grimp.ImportGraph) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph.find_modules_directly_imported_by(module):
            if not target.startswith("briotui"):
                continue
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.add(top)
                if top == module:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for module in sorted(m for m in graph.modules if m.startswith("briotui")):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles() -> None:
    graph = grimp.build_graph("briotui", exclude_type_checking_imports=True)
    cycles = [c for c in import_cycles(graph) if c not in ALLOWED]
    assert not cycles, [sorted(c) for c in cycles]


def test_the_checker_sees_a_lazy_import_cycle() -> None:
    graph = grimp.ImportGraph()
    for name in ("briotui", "briotui.a", "briotui.b", "briotui.c"):
        graph.add_module(name)
    graph.add_import(importer="briotui.a", imported="briotui.b", line_number=1, line_contents="")
    graph.add_import(importer="briotui.b", imported="briotui.a", line_number=9, line_contents="")
    assert import_cycles(graph) == [frozenset({"briotui.a", "briotui.b"})]
