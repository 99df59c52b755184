"""`run`: a shell command in the sandbox, for a reproduction script, a look at the environment, a snippet.

It runs where the tests run (no network, the worktree as the only writable place), for at most
the time the task has left, with its output bounded; the model sees the exit code and the output.
What it changes in the worktree is judged like any edit: the verdict is given only when the
tests and the test configuration are still the base commit's. The loop offers it only in a
sandbox that isolates (Docker, or the local sandbox under bubblewrap); in review only with the
tree mounted read-only.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from prompts import tool_text
from sandbox.text import cut_middle
from tools.base import Observation, Tool, ToolContext

DEFAULT_TIMEOUT = 120.0


class RunArgs(BaseModel):
    command: str = Field(min_length=1, description="A bash command, run at the repository root.")
    timeout: float | None = Field(default=None, gt=0, description=(
        f"Seconds before the command is killed (default {DEFAULT_TIMEOUT:g}; never more than the task has left)."))


class Run(Tool):
    name = "run"
    description = tool_text("run")
    Args = RunArgs
    writes = True
    sandboxed = True  # it writes only through the sandbox: read-only there means read-only here

    def run(self, args: RunArgs, ctx: ToolContext) -> Observation:
        if ctx.sandbox is None:
            return Observation("error: no sandbox is available to run commands in", ok=False)
        limit = min(args.timeout or DEFAULT_TIMEOUT, ctx.test_timeout)
        result = ctx.sandbox.exec(["bash", "-c", args.command], limit)
        if result.timed_out:
            head = f"timed out after {limit:g}s; the command was killed"
        elif result.oom_killed:
            head = "killed: out of memory"
        else:
            head = f"exit {result.exit_code} in {result.duration:.1f}s"
        body = cut_middle(result.output.strip(), ctx.limits.test_output_chars)
        return Observation(f"{head}\n{body}" if body else head, ok=result.exit_code == 0 and not result.timed_out,
                           data={"exit_code": result.exit_code, "timed_out": result.timed_out})
