"""The file tools on hostile worktrees: special files, huge lines, floods of matches."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import tracemalloc
from pathlib import Path

import pytest

import tools.search as search_module
from sandbox.pytest_runs import is_test_file
from tools.base import ToolContext, dispatch
from tools.registry import by_name, fix_tools


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "src" / "cart.py").write_text("def total(items):\n    return sum(items)\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


@pytest.fixture
def ctx(repo: Path) -> ToolContext:
    return ToolContext(root=repo, protected_paths=is_test_file)


def call(ctx: ToolContext, name: str, **args):
    return dispatch(by_name(fix_tools()), name, json.dumps(args), ctx)


# A guard against hanging (a blocked open, a walk that never stops), not a speed check: speed is what
# the benchmarks measure, and a loaded runner must not fail these.
HANG = 30.0


def _timed(ctx: ToolContext, name: str, **args):
    started = time.monotonic()
    obs = call(ctx, name, **args)
    return obs, time.monotonic() - started


@pytest.mark.parametrize("tool,args", [
    ("view", {}), ("outline", {}), ("edit", {"old": "a", "new": "b"}), ("search", {"pattern": "x"}),
    ("create", {"content": "x"}),
])
def test_a_fifo_is_refused_without_blocking(ctx, repo, tool, args):
    os.mkfifo(repo / "src" / "pipe.py")  # opening it for reading would wait for a writer forever
    obs, took = _timed(ctx, tool, path="src/pipe.py", **args)
    assert not obs.ok and obs.text.startswith("refused:"), obs.text
    assert took < HANG, took
    assert "regular file" in obs.text or "already exists" in obs.text


@pytest.mark.parametrize("tool", ["view", "outline", "edit"])
def test_a_socket_and_a_device_are_refused(ctx, repo, tool, tmp_path):
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(repo / "src" / "live.sock"))
    try:
        args = {"old": "a", "new": "b"} if tool == "edit" else {}
        obs = call(ctx, tool, path="src/live.sock", **args)
        assert not obs.ok and "a socket, not a regular file" in obs.text
    finally:
        sock.close()
    (repo / "src" / "zero").symlink_to("/dev/zero")  # escapes the repo: refused before any read
    assert not call(ctx, "view", path="src/zero").ok


def test_search_over_a_12_mb_line_is_fast_and_bounded(ctx, repo):
    (repo / "src" / "dump.txt").write_text("x" * 12_000_000 + " needle " + "y" * 100 + "\n")
    tracemalloc.start()
    try:
        obs, took = _timed(ctx, "search", pattern="needle", max_results=5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert obs.ok and obs.text.startswith("src/dump.txt:1: [a line over 65536 bytes; the match is at byte")
    assert took < HANG, took
    assert peak < 8_000_000, peak  # the old reader held the whole JSON line, several times over


def test_search_stops_ripgrep_after_enough_matches(ctx, repo):
    (repo / "src" / "many.txt").write_text("hit\n" * 2_000_000)  # 2 million matching lines
    tracemalloc.start()
    try:
        obs, took = _timed(ctx, "search", pattern="hit", max_results=5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    lines = obs.text.splitlines()
    assert lines[:5] == [f"src/many.txt:{n}: hit" for n in range(1, 6)]
    assert lines[5].startswith(f"[over {search_module.COUNT_BEYOND} more matches not shown")
    assert obs.data == {"matches": 5 + search_module.COUNT_BEYOND, "shown": 5}
    assert took < HANG, took
    assert peak < 8_000_000, peak


def test_search_has_a_timeout(ctx, repo, monkeypatch):
    monkeypatch.setattr(search_module, "SEARCH_TIMEOUT", 0.3)
    os.mkfifo(repo / "src" / "stuck")  # ripgrep skips it when walking; the huge tree below is the slow part
    for n in range(40):
        (repo / "src" / f"big{n}.txt").write_text(("a" * 200 + "\n") * 50_000)
    obs, took = _timed(ctx, "search", pattern="a{150}b", path="src")
    assert took < HANG, took
    assert "search stopped after 0.3s" in obs.text


def test_a_matching_line_count_is_exact_when_small(ctx, repo):
    (repo / "src" / "few.py").write_text("".join(f"value_{i} = {i}\n" for i in range(30)))
    obs = call(ctx, "search", pattern="value_", max_results=5)
    assert "[25 more matches not shown" in obs.text and obs.data == {"matches": 30, "shown": 5}
