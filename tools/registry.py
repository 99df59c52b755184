"""The tool sets the loop offers, in a fixed order (the order is part of the byte-stable prompt prefix)."""

from __future__ import annotations

from tools.base import Tool
from tools.comment import Comment
from tools.create import Create
from tools.edit import Edit
from tools.finish import Finish
from tools.outline import Outline
from tools.reproduce import Reproduce
from tools.run import Run
from tools.run_tests import RunTests
from tools.search import Search
from tools.view import View


def fix_tools(shell: bool = False, reproduce: bool = False) -> list[Tool]:
    """`shell`: offer `run`, for a sandbox that isolates (no network, the worktree the only writable place);
    `reproduce`: offer `reproduce`, for a task that names no failing test (its reproduction phase)."""
    return [Search(), View(), Outline(), Edit(), Create(), RunTests(), *([Run()] if shell else []),
            *([Reproduce()] if reproduce else []), Finish()]


def review_tools(run_tests: bool = False) -> list[Tool]:
    """Read-only by construction: no tool that writes may appear here.

    `run_tests` (and `run`) are offered only when the caller has a sandbox that mounts the tree
    read-only, which is what makes a sandboxed tool read-only.
    """
    runners: list[Tool] = [RunTests(), Run()] if run_tests else []
    tools: list[Tool] = [Search(), View(), Outline(), *runners, Comment(), Finish()]
    assert not any(tool.writes and not (tool.sandboxed and run_tests) for tool in tools), \
        "review mode must not offer a writing tool"
    return tools


def by_name(tools: list[Tool]) -> dict[str, Tool]:
    """The mapping `tools.base.dispatch` takes."""
    return {tool.name: tool for tool in tools}
