"""`outline`: the definitions of one file with their line ranges.

The structural-summary index (`ctx.index.outline(relpath)`) answers first when the
loop passes one in; otherwise Python is parsed with tree-sitter and other files
get a line-oriented regex pass. Line ranges let the model `view` exactly one def.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field

from prompts import tool_text
from tools.base import Observation, Tool, ToolContext, ToolRefused, relative, resolve_path
from tools.view import read_text

SIGNATURE_CHARS = 160
MAX_ENTRIES = 400

_MODIFIERS = (r"(?:(?:export|default|pub(?:\([^)]*\))?|public|private|protected|internal|static|abstract|"
              r"final|async|unsafe|extern|inline|virtual|override|sealed|data|open)\s+)*")
_GENERIC_DEF = re.compile(
    rf"^\s*{_MODIFIERS}(?:function\*?|class|interface|enum|type|struct|trait|impl|fn|func|def|module|"
    r"namespace|record|object|mod)\b\s*[\w$<(*]"
    r"|^\s*(?:export\s+)?(?:const|let|var)\s+[\w$]+\s*=\s*(?:async\s+)?(?:function\b|\([^)]*\)\s*=>|\w+\s*=>)"
)
_MARKDOWN_HEADING = re.compile(r"^#{1,6}\s+\S")


class OutlineArgs(BaseModel):
    path: str = Field(description="A file, relative to the repo root.")


@lru_cache(maxsize=1)
def _python_parser() -> Any:
    try:
        from tree_sitter_language_pack import get_parser
    except ImportError:  # pragma: no cover - a declared dependency; regex still works without it
        return None
    return get_parser("python")


def _signature(node: Any, source: bytes) -> str:
    body = node.child_by_field_name("body")
    end = body.start_byte if body is not None else node.end_byte
    text = source[node.start_byte:end].decode("utf-8", errors="replace").rstrip().rstrip(":")
    text = " ".join(text.split())
    return text if len(text) <= SIGNATURE_CHARS else text[: SIGNATURE_CHARS - 3] + "..."


def _python_defs(node: Any, source: bytes, depth: int = 0) -> Iterator[tuple[int, int, int, str]]:
    """(depth, first line, last line, signature) for classes, functions and methods; not nested helpers."""
    for child in node.named_children:
        target = child
        if child.type == "decorated_definition":
            target = child.child_by_field_name("definition") or child
        if target.type not in ("class_definition", "function_definition"):
            continue
        yield depth, target.start_point[0] + 1, child.end_point[0] + 1, _signature(target, source)
        if target.type == "class_definition":
            body = target.child_by_field_name("body")
            if body is not None:
                yield from _python_defs(body, source, depth + 1)


def python_outline(text: str) -> list[tuple[int, int, int, str]] | None:
    parser = _python_parser()
    if parser is None:
        return None
    source = text.encode("utf-8")
    return list(_python_defs(parser.parse(source).root_node, source))


def regex_outline(text: str, markdown: bool = False) -> list[tuple[int, int, int, str]]:
    pattern = _MARKDOWN_HEADING if markdown else _GENERIC_DEF
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            indent = len(line) - len(line.lstrip())
            sig = " ".join(line.split()).rstrip("{").rstrip()
            sig = sig if len(sig) <= SIGNATURE_CHARS else sig[: SIGNATURE_CHARS - 3] + "..."
            entries.append((min(indent // 2, 4) if not markdown else 0, number, number, sig))
    return entries


def render(rel: str, entries: list[tuple[int, int, int, str]], *, ranges: bool) -> str:
    if not entries:
        return f"{rel}: no definitions found"
    shown = entries[:MAX_ENTRIES]
    width = len(str(max(e[2] for e in shown)))
    lines = [f"{rel}:"]
    for depth, first, last, sig in shown:
        where = f"{first}-{last}" if ranges and last != first else str(first)
        lines.append(f"{where:>{2 * width + 1 if ranges else width}}  {'    ' * depth}{sig}")
    if len(entries) > len(shown):
        lines.append(f"[... {len(entries) - len(shown)} more definitions not shown]")
    return "\n".join(lines)


class Outline(Tool):
    name = "outline"
    description = tool_text("outline")
    Args = OutlineArgs

    def run(self, args: OutlineArgs, ctx: ToolContext) -> Observation:
        full = resolve_path(ctx, args.path)
        if full.is_dir():
            raise ToolRefused(f"{args.path} is a directory; outline takes a file (view lists a directory)")
        rel = relative(ctx, full)
        ctx.touched.add(rel)
        index_outline = getattr(ctx.index, "outline", None)
        if callable(index_outline):
            text = index_outline(rel)
            if text is not None:
                return Observation(text, paths=(rel,), data={"path": rel, "source": "index"})
        text, _ = read_text(full)
        if text is None:
            return Observation(f"{rel}: binary file; no outline", paths=(rel,), data={"path": rel})
        entries = python_outline(text) if full.suffix in (".py", ".pyi") else None
        if entries is not None:
            return Observation(render(rel, entries, ranges=True), paths=(rel,),
                               data={"path": rel, "source": "tree-sitter"})
        markdown = full.suffix.lower() in (".md", ".markdown")
        return Observation(render(rel, regex_outline(text, markdown), ranges=False),
                           paths=(rel,), data={"path": rel, "source": "regex"})
