"""The tool sets the loop offers, in a fixed order (the order is part of the byte-stable prompt prefix)."""

from __future__ import annotations

from tools.base import Tool
from tools.comment import Comment
from tools.create import Create
from tools.edit import Edit
from tools.finish import Finish
from tools.outline import Outline
from tools.run_tests import RunTests
from tools.search import Search
from tools.view import View


def fix_tools() -> list[Tool]:
    return [Search(), View(), Outline(), Edit(), Create(), RunTests(), Finish()]


def review_tools(run_tests: bool = False) -> list[Tool]:
    """Read-only by construction: no tool that writes may appear here.

    `run_tests` is offered only when the caller has a sandbox that mounts the tree read-only.
    """
    tools: list[Tool] = [Search(), View(), Outline(), *([RunTests()] if run_tests else []), Comment(), Finish()]
    assert not any(tool.writes for tool in tools), "review mode must not offer a writing tool"
    return tools


def by_name(tools: list[Tool]) -> dict[str, Tool]:
    """The mapping `tools.base.dispatch` takes."""
    return {tool.name: tool for tool in tools}
