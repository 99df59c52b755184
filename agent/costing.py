"""`agent cost RUN_DIR`: tokens and cost recomputed from the trajectory, not trusted from the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.config import load_settings
from agent.errors import BadInput
from agent.model.pricing import cost_of
from agent.model.types import Usage
from agent.trajectory import read_events


def recompute(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "trajectory.jsonl"
    if not path.is_file():
        raise BadInput(f"no trajectory.jsonl in {run_dir}")
    events = read_events(path)
    start = next((e for e in events if e["event"] == "start"), {})
    settings = load_settings()
    prices = settings.prices(start.get("model"))
    total = Usage()
    cost = {currency: 0.0 for currency in prices}
    calls = {"high": 0, "max": 0, "off": 0}
    max_cost = {currency: 0.0 for currency in prices}
    for event in events:
        if event["event"] not in ("response", "attempt_failed", "probe"):
            continue
        usage = Usage(**event["usage"])
        total = total + usage
        call_cost = cost_of(usage, prices)
        if event["event"] != "response":  # the preflight probe, a retried or resent attempt: spend, not a call
            for currency, value in call_cost.items():
                cost[currency] += value
            continue
        mode = event.get("mode", "high")
        calls[mode] = calls.get(mode, 0) + 1
        for currency, value in call_cost.items():
            cost[currency] += value
            if mode == "max":
                max_cost[currency] += value
    lines = [
        f"model {start.get('model', '?')} · {sum(calls.values())} calls (high {calls['high']}, max {calls['max']})",
        f"input {total.prompt_tokens} tokens, cached {total.cached_tokens} ({total.cached_share:.1%}), "
        f"output {total.completion_tokens} (reasoning {total.reasoning_tokens})",
        "cost " + " · ".join(f"{c.upper()} {v:.6f}" for c, v in sorted(cost.items())),
        "of which Max calls " + " · ".join(f"{c.upper()} {v:.6f}" for c, v in sorted(max_cost.items())),
    ]
    if total.prompt_tokens:
        uncached_equiv = {c: cost[c] + total.cached_tokens * (row.input - row.cached_input) / 1e6
                          for c, row in prices.items()}
        lines.append("saved by the cache " + " · ".join(
            f"{c.upper()} {uncached_equiv[c] - cost[c]:.6f}" for c in sorted(cost)))
    return {"usage": total.to_dict(), "cost": cost, "calls": calls, "max_cost": max_cost, "lines": lines}
