"""The one unified-diff parser (on `unidiff`), shared by review, the GitHub client and the evals.

`unidiff` reads the structure; what it leaves as git wrote it is fixed here: C-quoted names
(`"caf\\303\\251.py"`, `"tab\\tname.py"`) are unquoted and the `a/` `b/` prefixes dropped, so a
finding on such a file attaches to the path the index and GitHub use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from unidiff import LINE_TYPE_ADDED, LINE_TYPE_CONTEXT, LINE_TYPE_REMOVED, PatchSet, UnidiffParseError

_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


class DiffError(ValueError):
    """Text that is not a unified diff; the message is one line."""


@dataclass
class Hunk:
    old_start: int
    new_start: int
    header: str
    lines: list[str] = field(default_factory=list)  # each starts with ' ', '-' or '+', no newline


@dataclass
class FileDiff:
    path: str  # the head-side path (the old one for a deletion)
    status: str  # added | modified | deleted | renamed | binary
    old_path: str | None = None  # set for a rename
    added: set[int] = field(default_factory=set)  # head-side numbers of added lines (review's anchors)
    visible: set[int] = field(default_factory=set)  # head-side numbers of added and context lines
    hunks: list[Hunk] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # the hunks rendered with head-side line numbers


def unquote(name: str) -> str:
    """A path as git prints it (C-quoted when it holds a tab, a quote or a non-ASCII byte) to the path."""
    if len(name) < 2 or name[0] != '"' or name[-1] != '"':
        return name
    body, out, i = name[1:-1], bytearray(), 0
    while i < len(body):
        char = body[i]
        if char != "\\" or i + 1 == len(body):
            out += char.encode()
            i += 1
        elif body[i + 1] in _ESCAPES:
            out.append(_ESCAPES[body[i + 1]])
            i += 2
        else:
            digits = body[i + 1:i + 4]
            try:
                out.append(int(digits, 8) & 0xFF)
                i += 4
            except ValueError:
                out += body[i + 1].encode()
                i += 2
    return os.fsdecode(bytes(out))


def _strip(name: str, prefix: str) -> str | None:
    name = unquote(name)
    if name == "/dev/null":
        return None
    return name[len(prefix):] if name.startswith(prefix) else name


def parse_diff(text: str) -> list[FileDiff]:
    """Every file of a unified diff (git's `diff`, GitHub's `.diff`), with clean paths and line numbers."""
    try:
        patch = PatchSet(text)
    except UnidiffParseError as exc:
        raise DiffError(f"not a unified diff: {str(exc).splitlines()[0] if str(exc) else 'parse error'}") from None
    files: list[FileDiff] = []
    for item in patch:
        old, new = _strip(item.source_file, "a/"), _strip(item.target_file, "b/")
        path = new or old
        if not path:
            continue
        status = ("binary" if item.is_binary_file else "added" if item.is_added_file
                  else "deleted" if item.is_removed_file else "renamed" if item.is_rename else "modified")
        diff = FileDiff(path=path, status=status, old_path=old if item.is_rename else None)
        for hunk in item:
            header = f"@@ -{hunk.source_start},{hunk.source_length} +{hunk.target_start},{hunk.target_length} @@"
            header += f" {hunk.section_header}" if hunk.section_header else ""
            block = Hunk(hunk.source_start, hunk.target_start, header)
            diff.hunks.append(block)
            diff.lines.append(header)
            for line in hunk:
                value = line.value.removesuffix("\n").removesuffix("\r")
                if line.line_type == LINE_TYPE_ADDED:
                    diff.added.add(line.target_line_no)
                    diff.visible.add(line.target_line_no)
                    diff.lines.append(f"{line.target_line_no:>5} +{value}")
                elif line.line_type == LINE_TYPE_REMOVED:
                    diff.lines.append(f"{'':>5} -{value}")
                elif line.line_type == LINE_TYPE_CONTEXT:
                    diff.visible.add(line.target_line_no)
                    diff.lines.append(f"{line.target_line_no:>5}  {value}")
                else:
                    continue  # "\ No newline at end of file"
                block.lines.append(("+" if line.line_type == LINE_TYPE_ADDED else
                                    "-" if line.line_type == LINE_TYPE_REMOVED else " ") + value)
        files.append(diff)
    return files


def patch_lines(patch: str) -> set[int]:
    """Head-side lines of one file's `patch` (GitHub's per-file hunks, no headers): + and context lines."""
    if not patch.strip():
        return set()
    try:
        files = parse_diff(f"--- a/file\n+++ b/file\n{patch if patch.endswith(chr(10)) else patch + chr(10)}")
    except DiffError:
        return set()  # an anchor we cannot prove is no anchor: the finding goes in the body
    return files[0].visible if files else set()
