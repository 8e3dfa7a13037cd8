"""The repository map: tree-sitter symbols ranked by relevance to the request, within
a token budget, cached by content hash, over a real session."""

from __future__ import annotations

from pathlib import Path

from briotui.kernel import repomap
from briotui.kernel.repomap import CHARS_PER_TOKEN, build_repo_map, parse_symbols, render_repo_map
from briotui.kernel.vfs import SessionManager


def many_modules(n: int = 60) -> dict[str, str]:
    files = {
        f"pkg/mod_{i:02d}.py": "".join(
            f"def func_{i:02d}_{j}(a, b=1):\n    return a\n\n\nclass Thing{i:02d}{j}:\n"
            f"    def method(self, x: int) -> int:\n        return x\n\n\n"
            for j in range(8)
        )
        for i in range(n)
    }
    files["pkg/headers.py"] = (
        "import re\n\n\nclass HeaderError(Exception):\n    pass\n\n\n"
        "def parse_header(line: str) -> tuple[str, str]:\n    return line.split(':', 1)\n"
    )
    files["web/app.js"] = (
        "function renderPage(req) {\n  return req;\n}\nclass View {\n  draw(x) {}\n}\n"
    )
    files["docs/guide.md"] = "# Guide\n"
    files["data.unknownlang"] = "whatever\n"
    return files


def test_named_function_and_file_rank_first_within_the_budget() -> None:
    files = [(p, t.encode()) for p, t in sorted(many_modules().items())]
    text = render_repo_map(
        files, "Make parse_header raise HeaderError on a line without a colon", budget_tokens=300
    )
    assert len(text) <= 300 * CHARS_PER_TOKEN
    lines = text.splitlines()
    assert lines[0] == "pkg/headers.py:"
    assert lines[1].strip() == "8: def parse_header(line: str) -> tuple[str, str]"
    assert lines[2].strip() == "4: class HeaderError(Exception)"
    assert lines[-1].endswith("more file(s) not shown)")


def test_other_languages_and_files_without_a_grammar() -> None:
    files = [(p, t.encode()) for p, t in sorted(many_modules(2).items())]
    text = render_repo_map(files, "Fix renderPage in web/app.js", budget_tokens=2000)
    assert text.startswith("web/app.js:\n  1: function renderPage(req)\n")
    assert "  4: class View" in text
    assert "    5: draw(x)" in text
    other = next(line for line in text.splitlines() if line.startswith("Other files: "))
    assert "docs/guide.md" in other
    assert "data.unknownlang" in other


def test_symbols_are_cached_by_content_hash(monkeypatch: object) -> None:
    source = b"def cached_once(x):\n    return x\n"
    first = parse_symbols("a.py", source)
    assert first is not None
    assert first[0].name == "cached_once"
    calls = 0
    real = repomap._PARSERS.for_suffix

    def counting(suffix: str) -> object:
        nonlocal calls
        calls += 1
        return real(suffix)

    repomap._PARSERS.for_suffix = counting  # type: ignore[method-assign]
    try:
        again = parse_symbols("elsewhere/b.py", source)  # same content, another path
    finally:
        repomap._PARSERS.for_suffix = real  # type: ignore[method-assign]
    assert again is first
    assert parse_symbols("c.txt", source) is None  # no grammar: listed by name


def test_map_of_a_session_sees_the_session_s_changes(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    for rel, text in many_modules(3).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    manager = SessionManager.open(root)
    try:
        session = manager.create()
        session.write("pkg/fresh.py", b"def brand_new_helper(q):\n    return q\n", False)
        text = build_repo_map(session, "use brand_new_helper", budget_tokens=200)
        assert text.startswith("pkg/fresh.py:\n  1: def brand_new_helper(q)\n")
        assert len(text) <= 200 * CHARS_PER_TOKEN
    finally:
        manager.close()
