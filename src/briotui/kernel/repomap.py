"""The repository map: what is defined where, ranked by relevance to a request.

A model cannot be shown a whole project, and a file list alone does not say where the
code it must change lives. The map lists, file by file, the classes and functions
(with their signatures and line numbers) most relevant to the request, within a token
budget, so the Council can plan against real names and the Coder knows which lines to
read. Symbols come from tree-sitter parsers (the ``tree-sitter`` package and one
grammar package per language); files in a language without an installed grammar are
listed by name. Parsing is cached by file content hash, and the kernel computes the
map off the event loop (:func:`build_repo_map` is blocking).
"""

from __future__ import annotations

import hashlib
import importlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from briotui.kernel.errors import BrioError
from briotui.kernel.workspace import WorkspaceView

DEFAULT_BUDGET_TOKENS = 2048
"""The map's default size, in tokens (about four characters each)."""

CHARS_PER_TOKEN = 4
"""How the budget is counted: a token is taken as four characters."""

MAX_PARSE_BYTES = 2_000_000
"""Files larger than this are listed by name, not parsed."""

MAX_FILES = 5000
"""At most this many files are considered."""

_GRAMMARS: dict[str, tuple[str, str]] = {
    ".py": ("tree_sitter_python", "language"),
    ".pyi": ("tree_sitter_python", "language"),
    ".js": ("tree_sitter_javascript", "language"),
    ".jsx": ("tree_sitter_javascript", "language"),
    ".mjs": ("tree_sitter_javascript", "language"),
    ".ts": ("tree_sitter_typescript", "language_typescript"),
    ".tsx": ("tree_sitter_typescript", "language_tsx"),
    ".go": ("tree_sitter_go", "language"),
    ".rs": ("tree_sitter_rust", "language"),
}
"""File suffix → (grammar module, function returning its language)."""

_DEFINITIONS = frozenset(
    {
        # python
        "class_definition",
        "function_definition",
        # javascript / typescript
        "class_declaration",
        "function_declaration",
        "method_definition",
        "interface_declaration",
        "type_alias_declaration",
        # go
        "method_declaration",
        "type_spec",
        # rust
        "function_item",
        "struct_item",
        "enum_item",
        "trait_item",
        "impl_item",
    }
)
"""Node types that define a symbol, across the supported grammars."""

_CONTAINERS = frozenset(
    {
        "module",
        "program",
        "source_file",
        "block",
        "class_body",
        "declaration_list",
        "decorated_definition",
        "export_statement",
        "type_declaration",
        "statement_block",
    }
)
"""Node types searched for nested definitions (class bodies, impl blocks, exports)."""

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Symbol:
    """One definition in a file.

    Attributes:
        name: The defined name (``parse_header``).
        line: 1-based line of the definition.
        signature: Its first line(s) up to the body, whitespace collapsed.
        depth: 0 for top-level, 1 for a method in a class, and so on.
    """

    name: str
    line: int
    signature: str
    depth: int


class _Parsers:
    """Loaded tree-sitter parsers, one per grammar, shared by every map (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parsers: dict[str, Any] = {}

    def for_suffix(self, suffix: str) -> Any | None:
        spec = _GRAMMARS.get(suffix)
        if spec is None:
            return None
        with self._lock:
            if spec[0] + spec[1] in self._parsers:
                return self._parsers[spec[0] + spec[1]]
            parser: Any | None
            try:
                import tree_sitter

                module = importlib.import_module(spec[0])
                parser = tree_sitter.Parser(tree_sitter.Language(getattr(module, spec[1])()))
            except (ImportError, AttributeError, ValueError):
                parser = None  # no grammar installed: the file is listed by name
            self._parsers[spec[0] + spec[1]] = parser
            return parser


_PARSERS = _Parsers()


class _TagCache:
    """Symbols by content hash (bounded, least recently used dropped first)."""

    def __init__(self, size: int = 4096) -> None:
        self._lock = threading.Lock()
        self._size = size
        self._items: OrderedDict[tuple[str, str], tuple[Symbol, ...]] = OrderedDict()

    def get(self, key: tuple[str, str]) -> tuple[Symbol, ...] | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[str, str], value: tuple[Symbol, ...]) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_CACHE = _TagCache()


def _suffix(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return name[name.rfind(".") :] if "." in name else ""


def _signature(node: Any, data: bytes) -> str:
    body = node.child_by_field_name("body")
    end = body.start_byte if body is not None else node.end_byte
    text = data[node.start_byte : end].decode("utf-8", errors="replace")
    text = " ".join(text.split()).rstrip(" :{")
    text = text.replace("( ", "(").replace(", )", ")").replace(" )", ")")
    return text[:200]


def _name(node: Any) -> str:
    named = node.child_by_field_name("name") or node.child_by_field_name("type")
    if named is None:
        return ""
    return str(named.text.decode("utf-8", errors="replace"))


def parse_symbols(path: str, data: bytes) -> tuple[Symbol, ...] | None:
    """The definitions in one file, or None when no grammar parses its language.

    Cached by the content's hash, so an unchanged file is parsed once.
    """
    parser = _PARSERS.for_suffix(_suffix(path))
    if parser is None or len(data) > MAX_PARSE_BYTES:
        return None
    key = (_suffix(path), hashlib.sha256(data).hexdigest())
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    tree = parser.parse(data)
    found: list[Symbol] = []
    stack: list[tuple[Any, int]] = [(tree.root_node, 0)]
    while stack:
        node, depth = stack.pop()
        for child in reversed(node.children):
            if child.type in _DEFINITIONS:
                name = _name(child)
                if name:
                    found.append(
                        Symbol(name, child.start_point[0] + 1, _signature(child, data), depth)
                    )
                body = child.child_by_field_name("body")
                if body is not None:
                    stack.append((body, depth + 1))
            elif child.type in _CONTAINERS:
                stack.append((child, depth))
    symbols = tuple(sorted(found, key=lambda s: s.line))
    _CACHE.put(key, symbols)
    return symbols


def _score(path: str, symbols: Iterable[Symbol], words: set[str], request: str) -> float:
    base = path.rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0]
    score = 0.0
    if path in request:
        score += 100
    elif base in request:
        score += 60
    elif stem and len(stem) > 2 and stem in words:
        score += 20
    score += sum(8 for part in path.split("/")[:-1] if part in words)
    score += sum(10 for s in symbols if s.name in words)
    return score


def render_repo_map(
    files: Iterable[tuple[str, bytes | None]],
    request: str,
    *,
    scope: Iterable[str] = (),
    budget_tokens: int = DEFAULT_BUDGET_TOKENS,
) -> str:
    """The map of ``files`` (path, content; None for a file not read) for ``request``.

    Files are ranked by how much the request names them (path, name, symbols) and the
    scope; within a file, the symbols the request names come first (in the order it
    names them), then the rest by line. The text
    never exceeds ``budget_tokens`` (four characters a token): what does not fit is
    counted in a last line saying how many files were left out.
    """
    mentioned = _WORD.findall(request)
    words = set(mentioned)
    order = {word: mentioned.index(word) for word in words}
    scoped = set(scope)
    ranked: list[tuple[float, str, tuple[Symbol, ...] | None]] = []
    for path, data in files:
        symbols = parse_symbols(path, data) if data is not None else None
        score = _score(path, symbols or (), words, request) + (200 if path in scoped else 0)
        ranked.append((score, path, symbols))
    ranked.sort(key=lambda item: (-item[0], item[1]))
    budget = budget_tokens * CHARS_PER_TOKEN - 40  # room for the "more files" line
    out: list[str] = []
    used = 0
    unparsed: list[str] = []
    left = 0
    for _score_value, path, symbols in ranked:
        if not symbols:
            unparsed.append(path)
            continue
        named = sorted((s for s in symbols if s.name in words), key=lambda s: order[s.name])
        rest = [s for s in symbols if s.name not in words]
        lines = [f"{path}:"]
        for sym in named + rest:
            lines.append(f"{'  ' * (sym.depth + 1)}{sym.line}: {sym.signature}")
        block = "\n".join(lines) + "\n"
        if used + len(block) > budget:
            # keep the head of a relevant file (its named symbols first) if it fits
            keep: list[str] = []
            size = used
            for line in lines:
                if size + len(line) + 1 > budget:
                    break
                keep.append(line)
                size += len(line) + 1
            if len(keep) > 1 and not out:
                out.append("\n".join(keep) + "\n")
                used = size
            else:
                left += 1
            continue
        out.append(block)
        used += len(block)
    if unparsed:
        note = "Other files: "
        names: list[str] = []
        for path in unparsed:
            if used + len(note) + sum(len(n) + 2 for n in names) + len(path) + 2 > budget - 60:
                left += 1
                continue
            names.append(path)
        if names:
            out.append(note + ", ".join(names) + "\n")
            used += len(out[-1])
    if left:
        tail = f"({left} more file(s) not shown)\n"
        out.append(tail)
    return "".join(out)


def build_repo_map(
    view: WorkspaceView,
    request: str,
    *,
    scope: Iterable[str] = (),
    budget_tokens: int = DEFAULT_BUDGET_TOKENS,
    readable: Callable[[str], bool] | None = None,
) -> str:
    """The repository map of a session (blocking: run it off the event loop).

    Args:
        view: The session (or any workspace) to map.
        request: The user's request or the subtask's goal; what it names ranks first.
        scope: Files the plan put in scope; they rank above everything else.
        budget_tokens: The most the map may take, in tokens.
        readable: Whether the agent the map is for may read a path (its grants,
            checked without asking anyone); a path it may not read is neither listed
            nor parsed. None: every file (the caller vouches for the reader).
    """
    entries = [
        e
        for e in view.list_dir("", True)
        if e.kind == "file" and (readable is None or readable(e.path))
    ][:MAX_FILES]

    def contents() -> Iterable[tuple[str, bytes | None]]:
        for entry in entries:
            if _suffix(entry.path) not in _GRAMMARS or entry.size > MAX_PARSE_BYTES:
                yield entry.path, None
                continue
            try:
                yield entry.path, view.read(entry.path)
            except (OSError, BrioError):  # unreadable or refused: listed by name
                yield entry.path, None

    return render_repo_map(contents(), request, scope=scope, budget_tokens=budget_tokens)
