"""Property-style checks of the state tree: replaying published patches always converges.

Many random operation sequences (seeded, so a failure names its seed) are run against a
:class:`StateTree`; every subscriber, early or late, must rebuild the exact tree from
its snapshot and the patches it received, with contiguous sequence numbers.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import jsonpatch
import pytest

from briotui.kernel.errors import StateError
from briotui.kernel.state import StatePatch, StateTree, Subscription, pointer


class Recorder:
    """A subscriber that keeps its snapshot and the patches it received."""

    def __init__(self, state: StateTree) -> None:
        self.patches: list[StatePatch] = []
        self.sub: Subscription = state.subscribe(self.patches.append)

    def rebuild(self) -> Any:
        doc = self.sub.snapshot.tree
        for patch in self.patches:
            doc = jsonpatch.apply_patch(doc, patch.ops)
        return doc

    def assert_contiguous(self) -> None:
        seqs = [p.seq for p in self.patches]
        start = self.sub.snapshot.seq
        assert seqs == list(range(start + 1, start + 1 + len(seqs)))


def containers(node: Any, path: list[str | int]) -> list[list[str | int]]:
    found: list[list[str | int]] = []
    if isinstance(node, dict):
        found.append(path)
        for key, value in node.items():
            found += containers(value, [*path, key])
    elif isinstance(node, list):
        found.append(path)
        for i, value in enumerate(node):
            found += containers(value, [*path, i])
    return found


def random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 2 or roll < 0.5:
        return rng.choice([rng.randint(-5, 99), rng.random(), "s" + str(rng.randint(0, 9)),
                           True, None, "a/b~c"])  # fmt: skip
    if roll < 0.75:
        return {
            rng.choice("abcdef/~"): random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))
        }
    return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]


def random_op(state: StateTree, rng: random.Random) -> None:
    tree = state.get("")
    places = containers(tree, [])
    where = rng.choice(places)
    node = state.get(where)
    roll = rng.random()
    key: str | int
    if isinstance(node, dict):
        key = rng.choice([*node, "k" + str(rng.randint(0, 5)), "x/y", "t~1"])
    else:
        key = rng.randint(0, len(node))  # len -> append
    path = [*where, key]
    try:
        if roll < 0.3:
            state.set(path, random_value(rng))
        elif roll < 0.45:
            state.set(path, random_value(rng), coalesce=True)
        elif roll < 0.6:
            if where:  # never empty the root
                state.remove(path if not isinstance(node, list) or node else where)
        elif roll < 0.7 and isinstance(node, list):
            state.add_to_list(where, random_value(rng), index=rng.randint(0, len(node)))
        elif roll < 0.78 and isinstance(node, dict):
            state.merge(where, {"m" + str(i): random_value(rng) for i in range(rng.randint(1, 3))})
        elif roll < 0.84:
            state.add_number(["counters", "n" + str(rng.randint(0, 2))], rng.randint(1, 5),
                             coalesce=rng.random() < 0.5, parents=True)  # fmt: skip
        elif roll < 0.9:
            with state.batch():
                for _ in range(rng.randint(1, 4)):
                    random_op(state, rng)
        elif roll < 0.95:
            state.flush()
        else:
            state.set([*where, "deep", "er"], random_value(rng), parents=True)
    except StateError:
        pass  # a random path that does not fit: refused, and nothing published


@pytest.mark.parametrize("seed", range(60))
def test_patches_replay_to_the_current_tree(seed: int) -> None:
    rng = random.Random(seed)
    state = StateTree({"agents": {}, "tasks": {"t": {"l": [1, 2]}}})
    first = Recorder(state)
    late: list[Recorder] = []
    for step in range(rng.randint(50, 250)):
        random_op(state, rng)
        if rng.random() < 0.03:
            late.append(Recorder(state))
        if step % 37 == 0:
            # Mid-stream, pending coalesced sets may not be out yet; after a flush
            # every subscriber must match the tree exactly.
            state.flush()
            assert first.rebuild() == state.get(""), f"seed {seed} step {step}"
    state.flush()
    current = state.get("")
    for recorder in [first, *late]:
        recorder.assert_contiguous()
        assert recorder.rebuild() == current, f"seed {seed}"
    assert state.snapshot().tree == current
    assert state.snapshot().seq == state.seq


def test_a_failing_block_still_publishes_what_it_changed() -> None:
    state = StateTree({"a": {}})
    rec = Recorder(state)

    def fail_midway() -> None:
        with state.batch():
            state.set("/a/x", 1)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_midway()
    assert rec.rebuild() == state.get("") == {"a": {"x": 1}}


def test_refused_mutations_publish_nothing() -> None:
    state = StateTree({"a": {"s": 5, "l": [1]}})
    rec = Recorder(state)
    for bad in (
        lambda: state.set("/a/s/x", 1),  # into a number
        lambda: state.set("/a/l/x", 1),  # a key into a list
        lambda: state.set("/a/l/5", 1),  # past the end
        lambda: state.set("/nope/x", 1),  # no parent
        lambda: state.set("/a/x", {1: 2}),  # not JSON
        lambda: state.set("/a/x", object()),
        lambda: state.remove("/a/zz"),
        lambda: state.add_to_list("/a/s", 1),
        lambda: state.set("a", 1),  # not a pointer
        lambda: state.remove(""),
    ):
        with pytest.raises(StateError):
            bad()
    assert rec.patches == []
    assert state.get("") == {"a": {"s": 5, "l": [1]}}


@pytest.mark.parametrize("seed", range(4))
def test_concurrent_mutation_from_threads_converges(seed: int) -> None:
    state = StateTree({"w": {}, "shared": {"n": 0}, "log": []})
    rec = Recorder(state)
    late: list[Recorder] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        rng = random.Random(seed * 100 + n)
        state.set(["w", str(n)], {"progress": 0, "items": []})
        for i in range(300):
            roll = rng.random()
            if roll < 0.3:
                state.set(["w", str(n), "progress"], i, coalesce=True)
            elif roll < 0.5:
                state.add_number("/shared/n", 1, coalesce=rng.random() < 0.5)
            elif roll < 0.65:
                state.add_to_list(["w", str(n), "items"], i)
            elif roll < 0.75:
                state.add_to_list("/log", [n, i])
            elif roll < 0.85:
                with state.batch():
                    state.set(["w", str(n), "b"], i)
                    state.add_number("/shared/n", 1)
            elif roll < 0.9:
                items = state.get(["w", str(n), "items"])
                if items:
                    state.remove(["w", str(n), "items", 0])
            elif roll < 0.93:
                with lock:
                    late.append(Recorder(state))
            else:
                state.flush()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    state.flush()
    current = state.get("")
    for recorder in [rec, *late]:
        recorder.assert_contiguous()
        assert recorder.rebuild() == current
    n_adds = current["shared"]["n"]
    assert n_adds > 0


def test_pointer_escapes() -> None:
    assert pointer(["a/b", "c~d", 3]) == "/a~1b/c~0d/3"
    state = StateTree({})
    rec = Recorder(state)
    state.set(["a/b"], {"c~d": 1})
    state.set("/a~1b/c~0d", 2)
    assert state.get(["a/b", "c~d"]) == 2
    assert rec.rebuild() == {"a/b": {"c~d": 2}}
