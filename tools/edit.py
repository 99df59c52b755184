"""`edit`: replace one exact, unique occurrence of `old` with `new` in a file.

Exactness keeps edits reviewable and safe; when `old` is not found the observation
shows the nearest snippets of the file (with line numbers) so the model can copy
the real text instead of guessing again, and when it occurs several times it
says where, so the model can add context.
"""

from __future__ import annotations

import difflib
import heapq
import re
from collections import Counter

from pydantic import BaseModel, Field

from prompts import tool_text
from tools.base import Observation, Tool, ToolContext, ToolRefused, check_writable, relative, resolve_path
from tools.textutil import number_lines, plural
from tools.view import read_text

SHORTLIST = 24  # windows compared character by character, picked by a cheap token score
_WORD = re.compile(r"\w+")


class EditArgs(BaseModel):
    path: str = Field(description="File to edit, relative to the repo root.")
    old: str = Field(
        min_length=1,
        description="Exact text to replace, copied from the file (whitespace and indentation included, "
        "without line numbers). It must occur exactly once: add surrounding lines to make it unique.",
    )
    new: str = Field(description="Replacement text (may be empty to delete `old`).")


def occurrences(text: str, old: str) -> list[int]:
    """Start offsets of every occurrence of `old`, overlapping ones included."""
    found, at = [], text.find(old)
    while at != -1:
        found.append(at)
        at = text.find(old, at + 1)
    return found


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def nearest(lines: list[str], old: str, count: int) -> list[tuple[float, int]]:
    """(similarity, first line index) of the line windows most like `old`, best first, not overlapping.

    A cheap pass scores every window by the rare words it shares with `old`; only a
    shortlist is then compared with difflib, so a miss costs milliseconds on big files.
    """
    old_lines = [line.strip() for line in old.splitlines()] or [""]
    size = len(old_lines)
    target = "\n".join(old_lines)
    words = set(_WORD.findall(old))
    line_words = [words.intersection(_WORD.findall(line)) for line in lines]
    df = Counter(w for found in line_words for w in found)
    line_score = [sum(1.0 / df[w] for w in found) for found in line_words]
    windows = max(len(lines) - size + 1, 1)
    window_score = [0.0] * windows
    running = sum(line_score[:size])
    for i in range(windows):
        window_score[i] = running
        if i + size < len(lines):
            running += line_score[i + size] - line_score[i]
    shortlist = {i for i in heapq.nlargest(SHORTLIST, range(windows), key=window_score.__getitem__)
                 if window_score[i] > 0}
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(target)
    scored = []
    near = {j for k in shortlist for j in (k - 1, k + 1) if 0 <= j < windows}  # off-by-one alignments
    for i in sorted(shortlist | near):
        matcher.set_seq1("\n".join(line.strip() for line in lines[i:i + size]))
        scored.append((matcher.ratio(), i))
    scored.sort(key=lambda s: (-s[0], s[1]))
    picked: list[tuple[float, int]] = []
    for score, i in scored:
        if score < 0.4 or len(picked) == count:
            break
        if all(abs(i - j) >= size for _, j in picked):
            picked.append((score, i))
    return picked


def snippet(lines: list[str], first: int, last: int, context: int) -> str:
    """Numbered lines first..last (0-based, inclusive) with `context` lines around."""
    lo, hi = max(first - context, 0), min(last + context, len(lines) - 1)
    return number_lines(lines[lo:hi + 1], lo + 1)


class Edit(Tool):
    name = "edit"
    description = tool_text("edit")
    Args = EditArgs
    writes = True

    def run(self, args: EditArgs, ctx: ToolContext) -> Observation:
        full = resolve_path(ctx, args.path)
        if full.is_dir():
            raise ToolRefused(f"{args.path} is a directory")
        rel = relative(ctx, full)
        check_writable(ctx, rel)
        ctx.touched.add(rel)
        text, clean = read_text(full)
        if text is None or not clean:
            raise ToolRefused(f"{rel} is binary or not UTF-8 text; it cannot be edited safely")
        old, new = args.old, args.new
        if "\r\n" in text and "\r" not in old:  # the model writes \n; the file uses CRLF
            old, new = old.replace("\n", "\r\n"), new.replace("\r\n", "\n").replace("\n", "\r\n")
        if old == new:
            return Observation("error: old and new are identical; nothing to change", ok=False)
        found = occurrences(text, old)
        if not found:
            return self._miss(rel, text, args.old, ctx)
        if len(found) > 1:
            lines = sorted({line_of(text, at) for at in found})
            return Observation(
                f"error: old occurs {len(found)} times in {rel} (starting at lines "
                f"{', '.join(map(str, lines[:20]))}{', ...' if len(lines) > 20 else ''}); "
                "include more surrounding lines in old so it matches exactly one place",
                ok=False, paths=(rel,), data={"path": rel, "occurrences": len(found)},
            )
        at = found[0]
        updated = text[:at] + new + text[at + len(old):]
        check_writable(ctx, rel, updated)
        full.write_bytes(updated.encode("utf-8"))
        first = line_of(updated, at) - 1
        last = first + max(new.count("\n") - (1 if new.endswith("\n") else 0), 0)
        shown = snippet(updated.splitlines(), first, last, ctx.limits.snippet_context)
        return Observation(f"edited {rel}:\n{shown}", paths=(rel,), data={"path": rel, "edited": True})

    @staticmethod
    def _miss(rel: str, text: str, old: str, ctx: ToolContext) -> Observation:
        lines = text.splitlines()
        picks = nearest(lines, old, ctx.limits.edit_candidates)
        size = max(len(old.splitlines()), 1)
        if not picks:
            return Observation(
                f"error: old was not found in {rel}, and nothing in the file is close to it; "
                "view the file to copy the exact text",
                ok=False, paths=(rel,), data={"path": rel, "occurrences": 0},
            )
        parts = [f"error: old was not found in {rel}. The closest {plural(len(picks), 'snippet')} "
                 "in the file (copy the exact text, without line numbers):"]
        for score, i in picks:
            parts.append(f"--- lines {i + 1}-{min(i + size, len(lines))} ({score:.0%} similar)")
            parts.append(snippet(lines, i, min(i + size, len(lines)) - 1, 0))
        stripped = "\n".join(line.strip() for line in old.splitlines())
        if any("\n".join(line.strip() for line in lines[i:i + size]) == stripped for _, i in picks):
            parts.append("[the text matches apart from indentation/whitespace: copy the exact indentation]")
        return Observation("\n".join(parts), ok=False, paths=(rel,), data={"path": rel, "occurrences": 0})
