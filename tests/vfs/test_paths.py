"""The path validator: unit cases and the adversarial traversal corpus."""

from __future__ import annotations

import os
import unicodedata
import urllib.parse
from pathlib import Path

import pytest
from tests.conftest import CORPORA

from briotui.kernel.errors import PathDenied, PathRefused
from briotui.kernel.vfs.paths import DEFAULT_POLICY, PathPolicy


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("a/b.txt", "a/b.txt"), ("./a//b/./c", "a/b/c"), ("a/", "a"), ("…/x", "…/x")],
)
def test_normalize_accepts(raw: str, expected: str) -> None:
    assert DEFAULT_POLICY.normalize(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        ".",
        "../x",
        "a/../../x",
        "/etc/passwd",
        "C:/x",
        "a\\b",
        "a\x00b",
        "a\nb",
        "．．/x",
        "a/‥/b",
        "x" * 5000,
        "\udcff",
    ],
)
def test_normalize_refuses(raw: str) -> None:
    with pytest.raises(PathRefused):
        DEFAULT_POLICY.normalize(raw)


@pytest.mark.parametrize(
    "raw", [".git/config", "sub/.git/HEAD", ".brio/state.db", ".GIT/x", ".git./x", ".git"]
)
def test_protected_denied(raw: str) -> None:
    with pytest.raises(PathDenied) as info:
        DEFAULT_POLICY.normalize(raw)
    assert info.value.wit_kind == "denied"


def test_protected_set_is_configurable() -> None:
    policy = PathPolicy(protected=frozenset({".git", "secrets"}))
    assert policy.normalize(".brio/x") == ".brio/x"
    with pytest.raises(PathDenied):
        policy.normalize("a/Secrets/key")


def test_root_allowed_only_when_asked() -> None:
    assert DEFAULT_POLICY.normalize("", allow_root=True) == ""
    assert DEFAULT_POLICY.normalize("./", allow_root=True) == ""


def test_resolve_refuses_symlink_outside_and_hardlinks(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    (root / "out").symlink_to(outside)
    (root / "inside.txt").write_text("i")
    (root / "link_in").symlink_to(root / "inside.txt")
    os.link(outside / "secret", root / "hard")
    with pytest.raises(PathDenied):
        DEFAULT_POLICY.resolve(root, "out/secret")
    with pytest.raises(PathDenied):
        DEFAULT_POLICY.resolve(root, "hard")
    assert DEFAULT_POLICY.resolve(root, "link_in") == root.resolve() / "link_in"
    sibling = tmp_path / "proj2"
    sibling.mkdir()
    (root / "sib").symlink_to(sibling)
    with pytest.raises(PathDenied):
        DEFAULT_POLICY.resolve(root, "sib/x")


def _variants(line: str) -> set[str]:
    out = {line}
    once = urllib.parse.unquote(line)
    twice = urllib.parse.unquote(once)
    out |= {once, twice}
    out |= {v.replace("\\", "/") for v in list(out)}
    out |= {unicodedata.normalize("NFKC", v) for v in list(out)}
    return out


def test_traversal_corpus_never_escapes(tmp_path: Path) -> None:
    files = sorted(CORPORA.glob("pat_*traversal*.txt"))
    assert files, f"no pat_*traversal*.txt in {CORPORA}"
    root = tmp_path / "proj"
    root.mkdir()
    (tmp_path / "proj2").mkdir()  # a sibling: startswith(root) would accept it
    (root / "etc").symlink_to("/etc")  # a link out, reached by accepted paths
    real_root = os.path.realpath(root)
    tried = accepted = refused = escapes = 0
    for corpus in files:
        for line in corpus.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
            for payload in _variants(line.replace("{FILE}", "etc/passwd")):
                tried += 1
                try:
                    rel = DEFAULT_POLICY.normalize(payload)
                    path = DEFAULT_POLICY.resolve(root, rel)
                except PathRefused:
                    refused += 1
                    continue
                accepted += 1
                real = os.path.realpath(path)
                if os.path.commonpath([real, real_root]) != real_root:
                    escapes += 1
    print(f"\n{tried} payloads tried, {escapes} escapes ({accepted} accepted, {refused} refused)")
    assert tried > 1500
    assert refused > 900
    assert escapes == 0
