"""The oracle model: replays an instance's gold patch through the agent's own tools.

It answers on the GLM wire (a callable turn of the fake GLM server), so the
whole pipeline (worktree, sandbox, summary, loop, tools, verification, report)
runs on real repositories without a real model: search for the function, view
it, one `edit` per hunk (the hunk's removed lines, widened with context until
they are unique in the file as it is then), run_tests, finish. What is left to
measure is the agent's own overhead and the harness, not the model.

For a description-only task (no test ids: the agent starts in its reproduction phase) the oracle
first replays the instance's reproduction (its test files created, its test functions inserted)
and asks the harness to accept it with `reproduce`, then replays the gold patch.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from agent.diffs import FileDiff, Hunk, parse_diff
from evals.fake_glm import FakeGLM

ORACLE_MODEL_NAME = "oracle"
ORACLE_KEY = "oracle-key-not-secret"


def parse_patch(patch: str) -> list[FileDiff]:
    """The files and hunks of a unified diff (git's format), read by the agent's one diff parser."""
    return parse_diff(patch)


def _side(lines: list[str], keep: str) -> list[str]:
    return [line[1:] for line in lines if line[:1] in (" ", keep)]


def edit_for(hunk: Hunk, text: str, at: int | None = None) -> tuple[str, str]:
    """(old, new) for one hunk: the changed region plus the fewest context lines that make `old` unique;
    `at`, the hunk's first line (0-based) in `text`, lets the file's lines beyond the hunk's context help."""
    changed = [i for i, line in enumerate(hunk.lines) if line[:1] in "-+"]
    first, last = changed[0], changed[-1] + 1
    for extra in range(len(hunk.lines) + 1):
        for before in range(extra + 1):
            lo, hi = first - before, last + extra - before
            if lo < 0 or hi > len(hunk.lines):
                continue
            region = hunk.lines[lo:hi]
            old, new = "\n".join(_side(region, "-")), "\n".join(_side(region, "+"))
            if old.strip() and text.count(old) == 1:
                return old, new
    old, new = _side(hunk.lines, "-"), _side(hunk.lines, "+")
    if at is not None:  # not unique even whole (two functions with the same lines): the file's own lines
        lines = text.split("\n")  # around the hunk's place widen it until it is
        for grow in range(1, len(lines)):
            lo, hi = max(0, at - grow), min(len(lines), at + len(old) + grow)
            before, after = lines[lo:at], lines[at + len(old):hi]
            wide = "\n".join(before + old + after)
            if lines[at:at + len(old)] == old and text.count(wide) == 1:
                return wide, "\n".join(before + new + after)
    return "\n".join(old), "\n".join(new)


def enclosing_function(source: str, line: int) -> str | None:
    """Name of the innermost def/class around a 1-based line, for a search a model would run."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    best: tuple[int, str] | None = None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.lineno <= line <= (node.end_lineno or node.lineno) and (best is None or node.lineno > best[0]):
                best = (node.lineno, node.name)
    return best[1] if best else None


def _added_text(diff: FileDiff) -> str:
    """The whole content of a file a diff adds."""
    return "".join(line[1:] + "\n" for hunk in diff.hunks for line in hunk.lines if line[:1] == "+")


def plan_reproduction(patch: str, tests: list[str], root: Path) -> list[dict[str, Any]]:
    """The tool calls that write the reproduction `patch` (new test files, test functions added to existing
    ones) on the repository at `root`, then ask the harness to check `tests`."""
    files = parse_patch(patch) if patch.strip() else []
    if not files or not tests:
        raise ValueError("a description-only task needs a reproduction: no reproduction_patch or test_patch "
                         "with test ids to replay")
    turns: list[dict[str, Any]] = []
    for fp in files:
        path = root / fp.path
        if fp.status == "added" or not path.is_file():
            turns.append({"reasoning": f"Reproduce the issue in a new test file {fp.path}.", "tool_calls": [
                {"name": "create", "arguments": {"path": fp.path, "content": _added_text(fp)}}]})
            continue
        text = path.read_text(encoding="utf-8")
        for hunk in fp.hunks:
            old, new = edit_for(hunk, text)
            text = text.replace(old, new, 1)
            turns.append({"reasoning": f"Add a test that reproduces the issue to {fp.path}.", "tool_calls": [
                {"name": "edit", "arguments": {"path": fp.path, "old": old, "new": new}}]})
    turns.append({"reasoning": "Have the harness check that the new tests fail on the unchanged code.",
                  "tool_calls": [{"name": "reproduce", "arguments": {"tests": list(tests)}}]})
    return turns


def plan_turns(patch: str, root: Path, summary: str = "Applied the fix.",
               reproduction: tuple[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """The tool calls that replay `patch` on the repository at `root`, one call per turn; with a
    `reproduction` (patch, test ids), that reproduction first (a description-only task)."""
    turns: list[dict[str, Any]] = plan_reproduction(*reproduction, root) if reproduction else []
    files = parse_patch(patch)
    if not files:
        raise ValueError("the gold patch has no hunks")
    first = files[0]
    source = (root / first.path).read_text(encoding="utf-8") if (root / first.path).is_file() else ""
    line = first.hunks[0].old_start if first.hunks else 1
    name = enclosing_function(source, line + 3)
    pattern = rf"def {name}\b" if name and not name[:1].isupper() else (rf"class {name}\b" if name else None)
    turns.append({"reasoning": "Find the code the failing tests exercise.",
                  "tool_calls": [{"name": "search", "arguments": {"pattern": pattern or re.escape(first.path)}}]})
    for fp in files:
        path = root / fp.path
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        if fp.hunks:
            start = max(1, fp.hunks[0].old_start - 10)
            end = fp.hunks[-1].old_start + len(fp.hunks[-1].lines) + 10
            turns.append({"reasoning": f"Read {fp.path} around the suspect lines.",
                          "tool_calls": [{"name": "view", "arguments": {"path": fp.path, "start": start,
                                                                        "end": end}}]})
        shift = 0  # lines the hunks replayed so far added to this file
        for hunk in fp.hunks:
            old, new = edit_for(hunk, text, hunk.old_start - 1 + shift)
            if not old:
                raise ValueError(f"{fp.path}: a hunk without context cannot be replayed as an edit")
            text = text.replace(old, new, 1)
            shift += len(_side(hunk.lines, "+")) - len(_side(hunk.lines, "-"))
            turns.append({"reasoning": "Fix it.", "tool_calls": [
                {"name": "edit", "arguments": {"path": fp.path, "old": old, "new": new}}]})
    turns.append({"reasoning": "Check the tests.", "tool_calls": [{"name": "run_tests", "arguments": {}}]})
    turns.append({"content": "Done.", "tool_calls": [{"name": "finish", "arguments": {"summary": summary}}]})
    return turns


class OracleResponder:
    """A callable turn for FakeGLM: the next planned call, by how many assistant turns the request holds.

    Reading the position from the request (not a counter) keeps it right across the client's retries.
    After the plan, it finishes; a refused edit is reported in the finish summary.
    """

    def __init__(self, turns: list[dict[str, Any]]) -> None:
        self.turns = turns

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages") or []
        step = sum(1 for m in messages if m.get("role") == "assistant")
        if step < len(self.turns):
            return self.turns[step]
        return {"content": "Done.", "tool_calls": [{"name": "finish", "arguments": {
            "summary": "The oracle has no more steps."}}]}


def oracle_server(patch: str, root: Path, api_key: str = ORACLE_KEY,
                  reproduction: tuple[str, list[str]] | None = None) -> FakeGLM:
    """A FakeGLM (not started) that plays the oracle for this patch on this repository (reproducing first
    when given a reproduction)."""
    return FakeGLM(turns=OracleResponder(plan_turns(patch, root, reproduction=reproduction)), api_key=api_key)
