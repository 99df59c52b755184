"""`run_tests`: run pytest on selectors in the sandbox and report outcomes compactly.

The observation leads with counts and failing ids, then the failure section of
pytest's output (cut head and tail), so the model sees the evidence without the
whole log; the full TestRun goes in `data` for the loop.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from prompts import tool_text
from sandbox.pytest_runs import TestRun, run_pytest, selector_file
from sandbox.text import cut_middle
from tools.base import Observation, Tool, ToolContext, ToolRefused, resolve_path

_FAILURE_SECTION = re.compile(r"^=+ (FAILURES|ERRORS) =+$", re.M)
MAX_IDS = 20


class RunTestsArgs(BaseModel):
    tests: list[str] | None = Field(
        default=None,
        description="pytest selectors (`tests/test_x.py`, `tests/test_x.py::test_y`); "
        "omit to run the task's target tests.",
    )


def describe(run: TestRun, selectors: list[str], limit: int) -> str:
    """The model-facing summary of a run: counts, failing ids, the tail of the failure output."""
    what = " ".join(selectors) if selectors else "the whole suite"
    if run.timed_out:
        return (f"tests timed out after {run.duration:.0f}s ({what}); the run was killed. A test may hang "
                f"(infinite loop, waiting on input or network).\n" + cut_middle(run.output, limit))
    if run.collected_none:
        return (f"no tests matched {what} (pytest exit {run.exit_code}). Check the selector: a path relative "
                "to the repo root, optionally ::test_name.\n" + cut_middle(run.output.strip(), limit // 4))
    counts = ", ".join(f"{n} {outcome}" for outcome, n in run.counts().items()) or "no outcomes parsed"
    head = f"{counts} in {run.duration:.1f}s (pytest exit {run.exit_code})"
    failed = run.failed_ids()
    if not failed and run.exit_code == 0:
        return head
    lines = [head]
    if failed:
        lines.append("failing: " + ", ".join(failed[:MAX_IDS]) + (f" (+{len(failed) - MAX_IDS} more)"
                                                                   if len(failed) > MAX_IDS else ""))
    match = _FAILURE_SECTION.search(run.output)
    detail = run.output[match.start():] if match else run.output
    detail = "\n".join(line for line in detail.splitlines() if not line.startswith("PASSED "))
    lines.append(cut_middle(detail.strip(), limit))
    return "\n".join(lines)


class RunTests(Tool):
    name = "run_tests"
    description = tool_text("run_tests")
    Args = RunTestsArgs

    def run(self, args: RunTestsArgs, ctx: ToolContext) -> Observation:
        if ctx.sandbox is None:
            return Observation("error: no sandbox is available to run tests in", ok=False)
        selectors = list(args.tests) if args.tests else list(ctx.target_tests)
        for selector in selectors:
            if not selector.strip() or selector.lstrip().startswith("-"):
                raise ToolRefused(f"{selector!r} is not a test selector (options cannot be passed)")
            resolve_path(ctx, selector_file(selector))
        run = run_pytest(ctx.sandbox, selectors, ctx.test_command, ctx.test_timeout)
        text = describe(run, selectors, ctx.limits.test_output_chars)
        return Observation(text, ok=not run.timed_out and not run.collected_none, test_run=run,
                           data={"run": run.to_dict(), "selectors": selectors})
