"""Text shaping shared by every tool: cutting long text so observations stay bounded.

One place decides how text is shortened, so the model always sees the same kind
of note ("[... N chars cut ...]") and learns to narrow its request.
"""

from __future__ import annotations


def cut_line(line: str, width: int, *, center: int | None = None) -> str:
    """Shorten one long line to about `width` chars, keeping the part around `center` (a match)."""
    if width <= 0 or len(line) <= width:
        return line
    if center is None or center < width:
        return line[:width] + f" [... {len(line) - width} chars cut]"
    start = max(0, min(center - width // 3, len(line) - width))
    end = start + width
    before = f"[{start} chars cut ...] " if start else ""
    after = f" [... {len(line) - end} chars cut]" if end < len(line) else ""
    return before + line[start:end] + after


def number_lines(lines: list[str], first: int, *, width: int = 0) -> str:
    """Render lines with right-aligned 1-based numbers, the format `view`, `edit` and `outline` share."""
    last = first + len(lines) - 1
    pad = max(width, len(str(last)))
    return "\n".join(f"{n:>{pad}}\t{text}" for n, text in enumerate(lines, start=first))


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def displayable(text: str) -> str:
    """Text safe to show and to send as UTF-8: a file name's undecodable bytes become U+FFFD.

    File names are decoded with surrogateescape (os.fsdecode), so any byte sequence round-trips
    on disk; those surrogates cannot be encoded as UTF-8 in a prompt, a trajectory or a terminal.
    """
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
