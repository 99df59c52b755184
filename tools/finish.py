"""`finish`: the model says it is done; the loop, not the model, decides whether that is true."""

from __future__ import annotations

from pydantic import BaseModel, Field

from prompts import tool_text
from tools.base import Observation, Tool, ToolContext


class FinishArgs(BaseModel):
    summary: str = Field(min_length=1, description="What you changed and why, in a few sentences.")


class Finish(Tool):
    name = "finish"
    description = tool_text("finish")
    Args = FinishArgs

    def run(self, args: FinishArgs, ctx: ToolContext) -> Observation:
        ctx.finished = args.summary.strip()
        if ctx.sandbox is None:  # review mode: nothing to verify
            return Observation("Noted; finishing.", verify=True, data={"finished": True})
        return Observation("Noted. The loop will now verify the target tests itself; the result decides "
                           "whether the task is done.", verify=True, data={"finished": True})
