"""Tree-sitter tag extraction: one file's bytes -> its definitions and referenced names.

Runs in worker processes, so it imports tree-sitter lazily and keeps compiled queries per
process. The result is plain tuples/dicts so it can be marshalled into the cache.
"""

from __future__ import annotations

import re
from typing import Any

from agent.summary.languages import query_text

# A definition: (name, kind, line, end_line, depth, signature); lines are 1-based.
Def = tuple[str, str, int, int, int, str]
# Cached per-file result: (defs, refs {name: count}, parse_error)
FileTags = tuple[list[Def], dict[str, int], bool]

CONTAINERS = frozenset({"class", "interface", "enum", "module", "impl", "type"})
FUNCTIONS = frozenset({"function", "method", "macro"})
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,63}\Z")
_SIG_MAX = 200
_VALUE_MAX = 100

_compiled: dict[str, Any] = {}


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


def _query(lang: str) -> tuple[Any, Any, Any, Any]:
    """(parser, definitions query, references query, references without predicates), compiled once.

    Definitions need matches (to pair a name with its node); references only need captures,
    which is the faster call, so the query file is split. Text predicates (#match?) decode the
    source as UTF-8 inside py-tree-sitter and crash on other bytes, so non-UTF-8 files get the
    predicate-free reference query.
    """
    got = _compiled.get(lang)
    if got is None:
        from tree_sitter import Query
        from tree_sitter_language_pack import get_language, get_parser

        language = get_language(lang)
        pats = split_patterns(query_text(lang))
        defs = "\n".join(p for p in pats if "@name.definition." in p)
        refs = [p for p in pats if "@name.definition." not in p]
        safe = [p for p in refs if "(#" not in p]
        got = (get_parser(lang), Query(language, defs), Query(language, "\n".join(refs)),
               Query(language, "\n".join(safe)))
        _compiled[lang] = got
    return got


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
    text = " ".join(data[start:end].decode("utf-8", "replace").split())
    text = text.rstrip("{").rstrip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def extract(lang: str, data: bytes, utf8: bool | None = None) -> FileTags:
    """Parse `data` with the grammar `lang` and return its tags (never raises on bad source)."""
    from tree_sitter import QueryCursor

    if utf8 is None:
        try:
            data.decode("utf-8")
            utf8 = True
        except UnicodeDecodeError:
            utf8 = False
    parser, def_query, ref_query, safe_query = _query(lang)
    if not utf8:
        ref_query = safe_query
    tree = parser.parse(data)
    root = tree.root_node
    raw: dict[int, tuple[str, str, Any]] = {}
    for _, caps in QueryCursor(def_query).matches(root):
        for cap, nodes in caps.items():
            if cap.startswith("name.definition."):
                name_node = nodes[0]
                def_nodes = caps.get("definition." + cap[16:])
                key = name_node.start_byte
                if key not in raw:
                    raw[key] = (name_node.text.decode("utf-8", "replace"), cap[16:],
                                def_nodes[0] if def_nodes else name_node)
    refs: dict[str, int] = {}
    for cap, nodes in QueryCursor(ref_query).captures(root).items():
        if not cap.startswith("name.reference."):
            continue
        string = cap == "name.reference.string"
        for node in nodes:
            name = node.text.decode("utf-8", "replace")
            if string and not _IDENT.match(name):
                continue
            refs[name] = refs.get(name, 0) + 1
    return _nest(data, raw), refs, bool(root.has_error)


def _nest(data: bytes, raw: dict[int, tuple[str, str, Any]]) -> list[Def]:
    """Order definitions, drop ones local to a function, and mark functions in classes as methods."""
    items = sorted(((node.start_byte, -node.end_byte, key) for key, (_, _, node) in raw.items()))
    stack: list[tuple[int, str]] = []  # (end_byte, kind) of enclosing definitions
    out: list[Def] = []
    for start, neg_end, key in items:
        name, kind, node = raw[key]
        while stack and stack[-1][0] <= start:
            stack.pop()
        if any(k in FUNCTIONS for _, k in stack):
            continue
        if kind == "function" and stack and stack[-1][1] in CONTAINERS:
            kind = "method"
        out.append((name, kind, node.start_point[0] + 1, node.end_point[0] + 1, len(stack),
                    _signature(data, node, kind)))
        if kind in CONTAINERS or kind in FUNCTIONS:
            stack.append((-neg_end, kind))
    return out

