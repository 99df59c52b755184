"""`search`: ripgrep over the repo, results as `path:line: text`, capped and cut, streamed.

ripgrep (the binary from its wheel, read as a stream) respects .gitignore,
so build output and virtualenvs stay out of the model's view. Output is sorted by
path so the same search gives the same observation (replays stay faithful).
"""

from __future__ import annotations

import os
import selectors
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel, Field

from prompts import tool_text
from tools.base import Observation, Tool, ToolContext, ToolRefused, in_scope, relative, resolve_path
from tools.textutil import cut_line, displayable, plural


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


# A line longer than this is not read at all (ripgrep prints a marker instead): a minified
# file or a 12 MB one-line dump costs a few bytes, not its size in memory.
MAX_COLUMNS = 65536
MAX_RECORD = MAX_COLUMNS + 8192  # one output line: path, numbers and at most MAX_COLUMNS of text
# Past the shown matches, keep counting this many more (for the "N more" note), then stop ripgrep.
COUNT_BEYOND = 1000
SEARCH_TIMEOUT = 20.0  # seconds; a search that takes longer is stopped and says so


class Search(Tool):
    name = "search"
    description = tool_text("search")
    Args = SearchArgs

    def run(self, args: SearchArgs, ctx: ToolContext) -> Observation:
        target = resolve_path(ctx, args.path)
        mode = target.stat().st_mode
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):  # ripgrep would wait on a FIFO forever
            raise ToolRefused(f"{args.path} is not a regular file or directory; it cannot be searched")
        # A pattern starting with "-" would be read as a flag; a group keeps its meaning.
        pattern = f"(?:{args.pattern})" if args.pattern.startswith("-") else args.pattern
        command = [rg_binary(), "--with-filename", "--no-heading", "--null", "--line-number", "--column",
                   "--color", "never", "--max-columns", str(MAX_COLUMNS), "--hidden", "--glob", "!.git",
                   "--sort", "path"]
        if args.glob:
            command += ["--glob", args.glob]
        command += ["--regexp", pattern, "--", str(target)]
        found = _Collector(ctx, args.max_results)
        failure = _stream_rg(command, found)
        if failure is not None:
            return Observation(f"search failed: {failure}", ok=False)
        hits = found.inside + found.outside
        if not hits:
            where = f" in {args.path}" if args.path not in (".", "") else ""
            where += f" (glob {args.glob})" if args.glob else ""
            note = f" [search stopped after {SEARCH_TIMEOUT:g}s]" if found.timed_out else ""
            return Observation(f"no matches for {args.pattern!r}{where}{note}", data={"matches": 0})
        shown = hits[: args.max_results]
        cut = 0
        lines = []
        for rel, number, short, was_cut in shown:
            cut += was_cut
            lines.append(f"{displayable(rel)}:{number}: {short}")
        notes = []
        more = found.total - len(shown)
        if more > 0 or found.stopped:
            count = f"{more} more match{'es' if more != 1 else ''}" if not found.stopped \
                else f"over {more} more matches"
            notes.append(f"[{count} not shown; narrow the search with path=, glob= or a more specific pattern]")
        if found.timed_out:
            notes.append(f"[search stopped after {SEARCH_TIMEOUT:g}s; narrow it with path= or glob=]")
        if cut:
            notes.append(f"[{plural(cut, 'long line')} cut around the match; use view to read them]")
        return Observation("\n".join(lines + notes), data={"matches": found.total, "shown": len(shown)})


class _Collector:
    """Keeps the first `limit` hits (in-scope ones first under a fence) and counts the rest up to a cap."""

    def __init__(self, ctx: ToolContext, limit: int) -> None:
        self.ctx, self.limit = ctx, limit
        self.inside: list[Hit] = []
        self.outside: list[Hit] = []
        self.total = 0
        self.stopped = False  # True when ripgrep was stopped before it finished: the count is a floor
        self.timed_out = False

    def add(self, record: bytes) -> bool:
        """Take one output record; False once enough is known and ripgrep can be stopped."""
        hit = _parse(record, self.ctx)
        if hit is None:
            return True
        self.total += 1
        fenced = bool(self.ctx.scope_fence) and not in_scope(self.ctx, hit[0])
        keep = self.outside if fenced else self.inside
        if len(keep) < self.limit:
            keep.append(hit)
        return len(self.inside) < self.limit or self.total < self.limit + COUNT_BEYOND


Hit = tuple[str, int, str, bool]  # path, line number, the line (cut around the match), whether it was cut


def _parse(record: bytes, ctx: ToolContext) -> Hit | None:
    """`path\\0line:column:text` (ripgrep's --null output) -> a hit, its line already cut to size."""
    path, sep, rest = record.partition(b"\0")
    if not sep:
        return None
    number, _, rest = rest.partition(b":")
    column, _, raw = rest.partition(b":")
    try:
        rel = relative(ctx, Path(os.fsdecode(path)))
        line, byte_col = int(number), int(column)
    except ValueError:
        return None  # a symlink whose target leaves the repo, or not a match line
    text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
    if text.startswith("[Omitted long line with "):
        return rel, line, f"[a line over {MAX_COLUMNS} bytes; the match is at byte {byte_col}: use view]", True
    col = len(raw[: byte_col - 1].decode("utf-8", errors="replace"))
    short = cut_line(text, ctx.limits.search_line_chars, center=col)
    return rel, line, short, short != text


def _stream_rg(command: list[str], found: _Collector) -> str | None:
    """Run ripgrep, feeding each output line to `found` until it has enough or time is up.

    Output is read in chunks with a bounded line buffer, so neither a huge file nor a
    pattern matching everything can hold more than a few megabytes or run past the timeout.
    Returns ripgrep's error text when it failed, else None.
    """
    deadline = time.monotonic() + SEARCH_TIMEOUT
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise ToolRefused(f"ripgrep could not be started: {exc}") from exc
        assert proc.stdout is not None
        buffer = b""
        wanted = True
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            while wanted:
                left = deadline - time.monotonic()
                if left <= 0:
                    found.timed_out = found.stopped = True
                    break
                if not selector.select(timeout=left):
                    continue
                chunk = os.read(proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    break
                buffer += chunk
                *records, buffer = buffer.split(b"\n")
                if len(buffer) > MAX_RECORD:
                    buffer = buffer[:MAX_RECORD]  # --max-columns bounds lines; this bounds paths too
                for record in records:
                    if not found.add(record):
                        found.stopped, wanted = True, False
                        break
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        code = proc.wait()
        errors.seek(0)
        message = errors.read(4096).decode("utf-8", errors="replace").strip()
    if code == 2 and not found.total and message:
        return message
    return None
