"""`view`: numbered lines of a file in a bounded window, or a directory listing.

The window is bounded so one call cannot flood the context; the observation says
exactly which call shows the next part.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pydantic import BaseModel, Field

from prompts import tool_text
from tools.base import Observation, Tool, ToolContext, ToolRefused, relative, resolve_path
from tools.textutil import cut_line, displayable, number_lines

BINARY_SNIFF = 8192
MAX_FILE_BYTES = 20_000_000  # larger files are refused: search them instead


class ViewArgs(BaseModel):
    path: str = Field(description="File or directory, relative to the repo root.")
    start: int | None = Field(default=None, ge=1, description="First line to show (1-based).")
    end: int | None = Field(default=None, ge=1, description="Last line to show (1-based, inclusive).")


def _kind(mode: int) -> str:
    return ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")


def _regular(full: Path, mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise ToolRefused(f"{full.name} is {_kind(mode)}, not a regular file; it cannot be read")


def read_bytes(full: Path) -> bytes:
    """A regular file's bytes; anything else (FIFO, device, socket) is refused without blocking.

    The file is opened non-blocking and checked on the open descriptor, so a FIFO swapped in
    after a check cannot hang the run (opening a FIFO for reading normally waits for a writer).
    """
    _regular(full, os.stat(full).st_mode)  # stat never blocks; the open below is checked again
    try:
        fd = os.open(full, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise ToolRefused(f"{full.name}: cannot be opened ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        _regular(full, info.st_mode)
        if info.st_size > MAX_FILE_BYTES:
            raise ToolRefused(f"{full.name} is {info.st_size} bytes, too large to read whole; use search on it")
        return handle.read(MAX_FILE_BYTES + 1)


def read_text(full: Path) -> tuple[str | None, bool]:
    """File text (undecodable bytes replaced) and whether it was clean UTF-8; None for a binary file."""
    data = read_bytes(full)
    if b"\x00" in data[:BINARY_SNIFF]:
        return None, False
    try:
        return data.decode("utf-8"), True
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace"), False


def _entry(p: Path, root: Path) -> str:
    name = displayable(p.name) + ("/" if p.is_dir() else "")
    if p.is_symlink():
        target = p.resolve()
        if target != root and root not in target.parents:
            return name + " (symlink out of the repository)"
    return name


def listing(full: Path, rel: str, limit: int, root: Path) -> str:
    entries = sorted(
        (p for p in full.iterdir() if p.name != ".git"), key=lambda p: (not p.is_dir(), p.name)
    )
    lines = [_entry(p, root) for p in entries[:limit]]
    head = f"{rel}/ ({len(entries)} entries)" if rel != "." else f"repository root ({len(entries)} entries)"
    more = [f"[... {len(entries) - limit} more entries not shown]"] if len(entries) > limit else []
    return "\n".join([head, *lines, *more])


class View(Tool):
    name = "view"
    description = tool_text("view")
    Args = ViewArgs

    def run(self, args: ViewArgs, ctx: ToolContext) -> Observation:
        full = resolve_path(ctx, args.path)
        rel = relative(ctx, full)
        if full.is_dir():
            text = listing(full, rel, ctx.limits.listing_entries, ctx.root.resolve())
            return Observation(text, paths=(rel,), data={"path": rel, "dir": True})
        ctx.touched.add(rel)
        text, clean = read_text(full)
        if text is None:
            size = full.stat().st_size
            return Observation(f"{rel}: binary file ({size} bytes); not shown", paths=(rel,), data={"path": rel})
        lines = text.splitlines()
        total = len(lines)
        if total == 0:
            return Observation(f"{rel}: empty file", paths=(rel,), data={"path": rel, "lines": 0})
        window = ctx.limits.view_lines
        start = args.start or 1
        if args.end is not None and args.end < start:
            return Observation(f"error: end ({args.end}) is before start ({start})", ok=False)
        if start > total:
            return Observation(f"error: {rel} has only {total} lines; start={start} is past the end",
                               ok=False)
        end = min(args.end or total, total, start + window - 1)
        width = ctx.limits.view_line_chars
        body = number_lines([cut_line(line, width) for line in lines[start - 1:end]], start)
        notes = []
        if not clean:
            notes.append("[the file is not valid UTF-8; undecodable bytes are shown as \ufffd]")
        if start > 1 or end < total:
            notes.append(f"[lines {start}-{end} of {total}]")
        if end < min(args.end or total, total):
            notes.append(f"[at most {window} lines a call; to see more: view path={rel!r} start={end + 1}]")
        elif end < total:
            notes.append(f"[more below: view path={rel!r} start={end + 1}]")
        return Observation("\n".join([body, *notes]), paths=(rel,), data={"path": rel, "start": start, "end": end,
                                                            "lines": total})
