"""Tree-sitter tag extraction: one file's bytes -> its definitions and referenced names.

Runs in worker processes, so it imports tree-sitter lazily and keeps compiled queries per
process. The result is plain tuples/dicts so it can be marshalled into the cache.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from agent.summary.languages import query_text

# A definition: (name, kind, line, end_line, depth, signature); lines are 1-based.
Def = tuple[str, str, int, int, int, str]
# Cached per-file result: (defs, refs {name: count}, parse_error)
FileTags = tuple[list[Def], dict[str, int], bool]

HIDDEN = frozenset({"key"})  # kinds that link files but are not shown in outlines
CONTAINERS = frozenset({"class", "interface", "enum", "module", "impl", "type"})
FUNCTIONS = frozenset({"function", "method", "macro"})
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,63}\Z")
_SIG_MAX = 200
_VALUE_MAX = 100

_compiled: dict[str, Any] = {}
_TEXT = attrgetter("text")


def split_patterns(text: str) -> list[str]:
    """Top-level patterns of a query file (comments dropped), so defs and refs can run separately."""
    patterns: list[str] = []
    cur: list[str] = []
    depth = 0
    in_str = False
    i = 0
    while i < len(text):
        ch = text[i]
        if in_str:
            cur.append(ch)
            if ch == "\\" and i + 1 < len(text):
                cur.append(text[i + 1])
                i += 1
            elif ch == '"':
                in_str = False
        elif ch == ";":
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        else:
            if ch in "([" and depth == 0 and "".join(cur).strip():
                patterns.append("".join(cur).strip())
                cur = []
            if ch in "([":
                depth += 1
            elif ch in ")]":
                depth -= 1
            elif ch == '"':
                in_str = True
            cur.append(ch)
        i += 1
    if "".join(cur).strip():
        patterns.append("".join(cur).strip())
    return patterns


_MATCH = re.compile(r'\(#match\?\s+@([\w.]+)\s+"([^"\\]*)"\s*\)')  # (#match? @capture "regex"), no escapes
_CAPTURE = re.compile(r"@([\w.]+)")


@dataclass(frozen=True)
class _Compiled:
    parser: Any
    query: Any                                   # for UTF-8 sources, `#match?` lifted into `filters`
    filters: dict[str, re.Pattern[str]]          # capture name -> regex its text must match
    language: Any
    safe_text: str                               # the patterns without predicates, for non-UTF-8 sources
    safe: list[Any] = field(default_factory=list)  # its compiled query, made on first use


def _lift_predicates(patterns: list[str]) -> tuple[str, dict[str, re.Pattern[str]]]:
    """Query text with `#match?` predicates taken out where Python can apply them per capture.

    py-tree-sitter evaluates a predicate by calling back into Python for every candidate node
    (every string literal, docstrings included); filtering the captured names afterwards costs
    less and gives the same result when the predicate tests the pattern's only capture and every
    pattern producing that capture name has the same predicate. Anything else stays in the query.
    """
    lift: list[tuple[str, str] | None] = []  # per pattern: (capture, regex) Python can apply
    producers: dict[str, set[str | None]] = {}  # capture name -> regexes of the patterns producing it
    for pattern in patterns:
        preds = _MATCH.findall(pattern)
        rest = _MATCH.sub("", pattern)
        caps = set(_CAPTURE.findall(rest))
        item = preds[0] if len(preds) == 1 and caps == {preds[0][0]} and "(#" not in rest else None
        lift.append(item)
        for cap in caps:
            producers.setdefault(cap, set()).add(item[1] if item else None)
    filters = {cap: re.compile(next(iter(regexes))) for cap, regexes in producers.items()
               if len(regexes) == 1 and None not in regexes}
    text = "\n".join(_MATCH.sub("", p) if item and item[0] in filters else p
                     for p, item in zip(patterns, lift, strict=True))
    return text, filters


def _query(lang: str) -> _Compiled:
    """Parser and queries for a grammar, compiled once per process.

    Text predicates (#match?) decode the source as UTF-8 inside py-tree-sitter and crash on other
    bytes, so non-UTF-8 files get a predicate-free variant.
    """
    got = _compiled.get(lang)
    if got is None:
        from tree_sitter import Query
        from tree_sitter_language_pack import get_language, get_parser

        language = get_language(lang)
        patterns = split_patterns(query_text(lang))
        text, filters = _lift_predicates(patterns)
        safe = "\n".join(p for p in patterns if "(#" not in p)
        got = _Compiled(get_parser(lang), Query(language, text), filters, language, safe)
        _compiled[lang] = got
    return got


def _safe_query(compiled: _Compiled) -> Any:
    if not compiled.safe:
        from tree_sitter import Query

        compiled.safe.append(Query(compiled.language, compiled.safe_text))
    return compiled.safe[0]


def extract(lang: str, data: bytes, utf8: bool | None = None) -> FileTags:
    """Parse `data` with the grammar `lang` and return its tags (never raises on bad source).

    One captures() pass serves definitions and references (cheaper than matches(), which would
    pair names with their definition nodes for us); names find their definition node by walking
    up a few parents. References are counted as bytes in C (Counter over the nodes' text) and
    each distinct name is decoded once.
    """
    from tree_sitter import QueryCursor

    if utf8 is None:
        try:
            data.decode("utf-8")
            utf8 = True
        except UnicodeDecodeError:
            utf8 = False
    compiled = _query(lang)
    filters = compiled.filters if utf8 else {}
    root = compiled.parser.parse(data).root_node
    caps = QueryCursor(compiled.query if utf8 else _safe_query(compiled)).captures(root)
    raw: dict[int, tuple[str, str, Any]] = {}
    counts: Counter[bytes] = Counter()  # unfiltered reference names, counted as bytes
    checked: list[tuple[Counter[bytes], re.Pattern[str] | None, bool]] = []
    for cap in sorted(caps):
        nodes = caps[cap]
        keep = filters.get(cap)
        if cap.startswith("name.definition."):
            kind = cap[16:]
            owners = set(caps.get("definition." + kind, ()))
            for node in nodes:
                key = node.start_byte
                if key not in raw:
                    name = node.text.decode("utf-8", "replace")
                    if keep is None or keep.search(name):
                        raw[key] = (name, kind, _owner(node, owners))
        elif cap.startswith("name.reference."):
            string = cap == "name.reference.string"
            if keep is None and not string:
                counts.update(map(_TEXT, nodes))
            else:
                checked.append((Counter(map(_TEXT, nodes)), keep, string))
    refs: dict[str, int] = {}
    for text, count in counts.items():
        name = text.decode("utf-8", "replace")
        refs[name] = refs.get(name, 0) + count
    for got, keep, string in checked:
        for text, count in got.items():
            name = text.decode("utf-8", "replace")
            if (keep is not None and not keep.search(name)) or (string and not _IDENT.match(name)):
                continue
            refs[name] = refs.get(name, 0) + count
    return _nest(data, raw), refs, bool(root.has_error)


def _owner(node: Any, owners: set[Any]) -> Any:
    """The captured definition node enclosing a name node (the name itself if none is near)."""
    cur = node.parent
    for _ in range(6):
        if cur is None:
            break
        if cur in owners:
            return cur
        cur = cur.parent
    return node


def _signature(data: bytes, node: Any, kind: str) -> str:
    start = node.start_byte
    body = node.child_by_field_name("body") if kind not in ("constant", "field") else None
    end = body.start_byte if body is not None and body.start_byte > start else node.end_byte
    line_end = data.find(b"\n", start, end)
    if kind in ("constant", "field") or body is None:
        end = line_end if line_end >= 0 else end
        limit = _VALUE_MAX
    else:
        limit = _SIG_MAX
    raw = data[start:end].decode("utf-8", "replace")
    if "#" in raw or "//" in raw:
        raw = " ".join(_strip_comment(line) if "#" in line or "//" in line else line for line in raw.splitlines())
    text = " ".join(raw.split())
    text = text.rstrip("{").rstrip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _strip_comment(line: str) -> str:
    """Drop a trailing `# ...` or `// ...` comment (outside quotes) from one header line."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif (ch == "#" or line.startswith("//", i)) and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def _nest(data: bytes, raw: dict[int, tuple[str, str, Any]]) -> list[Def]:
    """Order definitions, drop ones local to a function, and mark functions in classes as methods."""
    items = sorted(((node.start_byte, -node.end_byte, key) for key, (_, _, node) in raw.items()))
    stack: list[tuple[int, str]] = []  # (end_byte, kind) of enclosing definitions
    out: list[Def] = []
    for start, neg_end, key in items:
        name, kind, node = raw[key]
        while stack and stack[-1][0] <= start:
            stack.pop()
        if stack and stack[-1][1] in FUNCTIONS:  # nothing is pushed inside a function: it can only be on top
            continue
        if kind == "function" and stack and stack[-1][1] in CONTAINERS:
            kind = "method"
        out.append((name, kind, node.start_point[0] + 1, node.end_point[0] + 1, len(stack),
                    _signature(data, node, kind)))
        if kind in CONTAINERS or kind in FUNCTIONS:
            stack.append((-neg_end, kind))
    return out

