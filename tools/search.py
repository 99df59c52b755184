"""`search`: ripgrep over the repo, results as `path:line: text`, capped and cut.

ripgrep (the binary from its wheel, driven through ripgrepy) respects .gitignore,
so build output and virtualenvs stay out of the model's view. Output is sorted by
path so the same search gives the same observation (replays stay faithful).
"""

from __future__ import annotations

import base64
import json
import shutil
import sys
from pathlib import Path

from pydantic import BaseModel, Field
from ripgrepy import RipGrepNotFound, Ripgrepy

from tools.base import Observation, Tool, ToolContext, ToolRefused, in_scope, relative, resolve_path
from tools.textutil import cut_line, plural


class SearchArgs(BaseModel):
    pattern: str = Field(
        min_length=1,
        description="Regular expression (Rust regex syntax, like Python's re without look-around); "
        r"escape literal characters such as ( [ . * with a backslash, e.g. `def total\(`.",
    )
    path: str = Field(default=".", description="File or directory to search, relative to the repo root.")
    glob: str | None = Field(
        default=None, description="Only files whose path matches this glob, e.g. `*.py` or `src/**/*.ts`."
    )
    max_results: int = Field(default=50, ge=1, le=500, description="Most matching lines to show.")


def rg_binary() -> str:
    """The ripgrep binary: the wheel's, installed next to this interpreter, else one on PATH."""
    beside = Path(sys.executable).parent / "rg"
    if beside.is_file():
        return str(beside)
    found = shutil.which("rg")
    if found:
        return found
    raise ToolRefused("ripgrep (rg) is not installed; install the `ripgrep` wheel (pip install ripgrep)")


def _raw(field: dict) -> bytes:
    """ripgrep's JSON gives UTF-8 as `text` and anything else base64-encoded as `bytes`."""
    if "text" in field:
        return field["text"].encode("utf-8", errors="surrogateescape")
    return base64.b64decode(field.get("bytes", ""))


def _text(field: dict) -> str:
    return _raw(field).decode("utf-8", errors="replace")


class Search(Tool):
    name = "search"
    description = (
        "Search file contents with ripgrep (regex). Returns `path:line: text` lines, files sorted by path, "
        "in-scope files first; .gitignore'd files are skipped. Use it to find definitions and usages."
    )
    Args = SearchArgs

    def run(self, args: SearchArgs, ctx: ToolContext) -> Observation:
        target = resolve_path(ctx, args.path)
        # A pattern starting with "-" would be read as a flag; a group keeps its meaning.
        pattern = f"(?:{args.pattern})" if args.pattern.startswith("-") else args.pattern
        try:
            rg = Ripgrepy(pattern, str(target), rg_path=rg_binary())
        except RipGrepNotFound as exc:
            raise ToolRefused(f"ripgrep could not be started: {exc}") from exc
        rg = rg.json().hidden().glob("!.git").sort("path")
        if args.glob:
            rg = rg.glob(args.glob)
        out = rg.run(universal_newlines=False).as_string
        if out.strip() and not out.lstrip().startswith("{"):
            return Observation(f"search failed: {out.strip()}", ok=False)
        hits = self._matches(out, ctx)
        if not hits:
            where = f" in {args.path}" if args.path not in (".", "") else ""
            where += f" (glob {args.glob})" if args.glob else ""
            return Observation(f"no matches for {args.pattern!r}{where}", data={"matches": 0})
        if ctx.scope_fence:
            hits.sort(key=lambda h: not in_scope(ctx, h[0]))  # stable: rg's order within each group
        shown = hits[: args.max_results]
        cut = 0
        lines = []
        for rel, number, text, col in shown:
            short = cut_line(text, ctx.limits.search_line_chars, center=col)
            cut += short != text
            lines.append(f"{rel}:{number}: {short}")
        notes = []
        if len(hits) > len(shown):
            more = len(hits) - len(shown)
            notes.append(f"[{more} more match{'es' if more != 1 else ''} not shown; narrow the search with "
                         "path=, glob= or a more specific pattern]")
        if cut:
            notes.append(f"[{plural(cut, 'long line')} cut around the match; use view to read them]")
        return Observation("\n".join(lines + notes), data={"matches": len(hits), "shown": len(shown)})

    @staticmethod
    def _matches(out: str, ctx: ToolContext) -> list[tuple[str, int, str, int]]:
        hits = []
        for raw in out.splitlines():
            if not raw.startswith("{"):
                continue
            event = json.loads(raw)
            if event.get("type") != "match":
                continue
            data = event["data"]
            full = Path(_text(data["path"]))
            try:
                rel = relative(ctx, full)
            except ValueError:
                continue  # a symlink whose target leaves the repo
            raw = _raw(data["lines"])
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            start = (data.get("submatches") or [{}])[0].get("start", 0)
            col = len(raw[:start].decode("utf-8", errors="replace"))
            hits.append((rel, int(data["line_number"]), text, col))
        return hits
