"""`reproduce`: the model hands its reproduction to the harness, which runs it on the base code and decides.

The tool only carries the request: the judgement (collected, failing on the untouched base commit,
not by its own import or collection error) is the harness's, passed in as `ctx.reproduction`, so
the loop never needs to know this tool exists.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from prompts import tool_text
from tools.base import Observation, Tool, ToolContext


class ReproduceArgs(BaseModel):
    tests: list[str] = Field(
        default_factory=list,
        description="Node ids of the new tests that reproduce the issue (`tests/test_x.py::test_y`); "
        "every one must fail on the unchanged code. Leave empty with reopen=true.",
    )
    reopen: bool = Field(
        default=False,
        description="Go back to the reproduction phase: the accepted tests are unfrozen and stop being the "
        "targets until a new set is accepted.",
    )


class Reproduce(Tool):
    name = "reproduce"
    description = tool_text("reproduce")
    Args = ReproduceArgs

    def run(self, args: ReproduceArgs, ctx: ToolContext) -> Observation:
        if ctx.reproduction is None:
            return Observation("error: this task names its failing tests; there is no reproduction to check",
                               ok=False)
        tests = [t.strip() for t in args.tests if t.strip()]
        if not tests and not args.reopen:
            return Observation("error: give the node ids of your new tests (`path::test_name`)", ok=False)
        return ctx.reproduction(tests, args.reopen)
