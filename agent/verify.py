"""The harness's own judgement of success; the model's word is never taken for it.

Resolved means: every target passes in two consecutive runs (a flaky pass is
not a fix) and no test that passed in the baseline run now fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox.base import Sandbox
from sandbox.pytest_runs import TestRun, run_pytest


@dataclass
class Verification:
    resolved: bool
    detail: str
    targets_failing: list[str] = field(default_factory=list)
    newly_failing: list[str] = field(default_factory=list)
    runs: list[TestRun] = field(default_factory=list)


def regressions(baseline: TestRun, after: TestRun) -> list[str]:
    return sorted(
        node for node, outcome in baseline.outcomes.items()
        if outcome == "passed" and after.outcomes.get(node, "missing") not in ("passed", "xfailed", "skipped")
    )


def verify(sandbox: Sandbox, *, targets: list[str], selection: list[str], baseline: TestRun,
           test_command: list[str], timeout: float, repeats: int = 2,
           time_left: Callable[[], float] | None = None) -> Verification:
    """`time_left` (the run's time budget) caps each run's timeout, so verifying cannot outlast it."""
    runs: list[TestRun] = []
    for _ in range(repeats):
        limit = min(timeout, time_left()) if time_left is not None else timeout
        if limit <= 0:
            return Verification(False, "not verified: the time limit is spent", list(targets), [], runs)
        run = run_pytest(sandbox, selection, test_command, limit)
        runs.append(run)
        failing = [t for t in targets if not run.passed(t)]
        lost = regressions(baseline, run)
        if run.timed_out:
            return Verification(False, "the test run timed out", failing, lost, runs)
        if failing or lost:
            parts = []
            if failing:
                parts.append("target tests still failing: " + ", ".join(failing))
            if lost:
                parts.append("tests that passed before now fail: " + ", ".join(lost[:20]))
            if len(runs) > 1:
                parts.append("(passed once, then failed: flaky)")
            return Verification(False, "; ".join(parts), failing, lost, runs)
    detail = f"targets pass in {repeats} consecutive runs, no regressions ({runs[-1].short_summary()})"
    return Verification(True, detail, [], [], runs)
