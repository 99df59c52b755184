"""The run's report: the public contract's fields, written as report.json beside the trajectory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.budget import Budget
from agent.errors import EXIT_ENVIRONMENT, EXIT_RESOLVED, EXIT_UNRESOLVED
from agent.gitops import Worktree
from agent.loop import LoopOutcome
from agent.runs import write_private
from agent.task import Task
from sandbox.pytest_runs import TestRun


def _tests(run: TestRun | None, targets: list[str]) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "counts": run.counts(),
        "targets": {t: ("passed" if run.passed(t) else "failed") for t in targets},
        "failing": run.failed_ids()[:50],
    }


def spend(budget: Budget, outcome: LoopOutcome) -> dict[str, Any]:
    """The report fields every run kind shares: turns, usage, cost and calls per mode."""
    usage = budget.usage
    return {
        "turns": budget.turns,
        "usage": {
            "input_tokens": usage.prompt_tokens,
            "cached_tokens": usage.cached_tokens,
            "output_tokens": usage.completion_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "cached_share": round(usage.cached_share, 4),
        },
        "cost": {"usd": round(budget.cost_usd, 6), "rmb": round(budget.cost_rmb, 6)},
        "calls": {"high": outcome.calls.get("high", 0), "max": outcome.calls.get("max", 0)},
    }


def build_report(*, task: Task, outcome: LoopOutcome, worktree: Worktree, commit: str | None, patch: str,
                 budget: Budget, baseline: TestRun | None, final: TestRun | None, run_dir: Path,
                 sandbox_kind: str, notes: list[str], elapsed: float,
                 sandbox_isolation: str | None = None, targets: list[str] | None = None,
                 verdict: dict[str, Any] | None = None) -> dict[str, Any]:
    """`targets`: what the verdict judged, when not the task's own (an accepted reproduction); `verdict`:
    its kind (`given`, `reproduction`, `none`) and, for a reproduction, its tests and outputs."""
    targets = task.targets if targets is None else targets
    return {
        "status": outcome.status,
        "stop_reason": outcome.stop_reason,
        "task": task.text,
        "branch": worktree.branch,
        "base_commit": worktree.base_commit,
        "commit": commit,
        "patch": patch,
        **spend(budget, outcome),
        "max_reasoning_cost": {k: round(v, 6) for k, v in outcome.max_reasoning_cost.items()},
        "compactions": outcome.compactions,
        "compaction_cache_loss_tokens": outcome.compaction_cache_loss,
        "tests": {"target": targets, "before": _tests(baseline, targets),
                  "after": _tests(final, targets)},
        "verdict": verdict or {"kind": "given" if targets else "none", "tests": targets},
        "sandbox": sandbox_kind,
        "sandbox_isolation": sandbox_isolation or sandbox_kind,
        "elapsed_seconds": round(elapsed, 2),
        "notes": notes,
        "run_dir": str(run_dir),
    }


def write_report(run_dir: Path, report: dict[str, Any]) -> None:
    write_private(run_dir / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")


def exit_code_for(status: str) -> int:
    codes = {"resolved": EXIT_RESOLVED, "reviewed": EXIT_RESOLVED, "error": EXIT_ENVIRONMENT}
    return codes.get(status, EXIT_UNRESOLVED)
