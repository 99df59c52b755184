"""Aggregate per-instance results into the numbers a change is judged by, and render them.

Resolved rate; cost in RMB and USD; tokens (input, cached, output), cached share
and Max share of calls; turns; wall time and the agent's own overhead; and
localization: is the fixed file in the summary at k tokens, and at which turn
did the agent first touch it.
"""

from __future__ import annotations

import statistics
from typing import Any

from rich.table import Table


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(results)
    ran = [r for r in results if r.get("usage")]
    resolved = sum(1 for r in results if r.get("resolved"))
    tin = sum(r["usage"].get("input_tokens", 0) for r in ran)
    cached = sum(r["usage"].get("cached_tokens", 0) for r in ran)
    tout = sum(r["usage"].get("output_tokens", 0) for r in ran)
    high = sum((r.get("calls") or {}).get("high", 0) for r in ran)
    mx = sum((r.get("calls") or {}).get("max", 0) for r in ran)
    loc: dict[str, Any] = {}
    with_loc = [r for r in results if r.get("localization")]
    for k in sorted({k for r in with_loc for k in r["localization"]}, key=int):
        hits = sum(1 for r in with_loc if r["localization"].get(k))
        loc[k] = {"hits": hits, "of": len(with_loc), "share": round(hits / len(with_loc), 4)}
    touches = [r["first_touch_turn"] for r in ran if r.get("first_touch_turn") is not None]
    return {
        "instances": n,
        "resolved": resolved,
        "resolved_rate": round(resolved / n, 4) if n else 0.0,
        "errors": sum(1 for r in results if r.get("error")),
        "cost": {"usd": round(sum(r["cost"]["usd"] for r in ran), 6),
                 "rmb": round(sum(r["cost"]["rmb"] for r in ran), 6)},
        "tokens": {"input": tin, "cached": cached, "output": tout},
        "cached_share": round(cached / tin, 4) if tin else 0.0,
        "max_share": round(mx / (high + mx), 4) if high + mx else 0.0,
        "turns": {"median": _median([r.get("turns", 0) for r in ran]), "total": sum(r.get("turns", 0) for r in ran)},
        "wall_seconds": {"median": _median([r["wall_seconds"] for r in results if "wall_seconds" in r]),
                         "total": round(sum(r.get("wall_seconds", 0) for r in results), 1)},
        "agent_wall_seconds": {"median": _median([r["agent_wall_seconds"] for r in ran
                                                  if "agent_wall_seconds" in r])},
        "overhead_seconds": {"median": _median([r["overhead_seconds"] for r in ran if "overhead_seconds" in r])},
        "model_seconds": {"median": _median([r["model_seconds"] for r in ran if "model_seconds" in r])},
        "test_seconds": {"median": _median([r["test_seconds"] for r in ran if "test_seconds" in r])},
        "localization": loc,
        "first_touch_turn": {"median": _median(touches), "touched": len(touches), "of": len(ran)},
    }


def _yes(value: Any) -> str:
    return "-" if value is None else ("yes" if value else "no")


def instance_table(results: list[dict[str, Any]]) -> Table:
    ks = sorted({k for r in results for k in (r.get("localization") or {})}, key=int)
    table = Table(title="instances", show_lines=False)
    for col in ("instance", "resolved", "turns", "in", "cached", "out", "¥", "wall s", "overhead s",
                *(f"loc@{k}" for k in ks), "1st touch"):
        table.add_column(col, justify="left" if col == "instance" else "right")
    for r in sorted(results, key=lambda r: r["instance_id"]):
        usage = r.get("usage") or {}
        loc = r.get("localization") or {}
        table.add_row(
            r["instance_id"], "yes" if r.get("resolved") else ("ERROR" if r.get("error") else "no"),
            str(r.get("turns", "-")), str(usage.get("input_tokens", "-")), str(usage.get("cached_tokens", "-")),
            str(usage.get("output_tokens", "-")), f"{(r.get('cost') or {}).get('rmb', 0):.4f}",
            f"{r.get('wall_seconds', 0):.1f}", f"{r.get('overhead_seconds', 0) or 0:.2f}",
            *(_yes(loc.get(k)) for k in ks), str(r.get("first_touch_turn") or "-"))
    return table


def summary_lines(s: dict[str, Any]) -> list[str]:
    lines = [
        f"resolved {s['resolved']}/{s['instances']} = {s['resolved_rate']:.1%}  (errors {s['errors']})",
        f"cost ¥{s['cost']['rmb']:.4f} / ${s['cost']['usd']:.4f}",
        f"tokens in {s['tokens']['input']} (cached {s['tokens']['cached']}, share {s['cached_share']:.1%}) "
        f"out {s['tokens']['output']} · Max share of calls {s['max_share']:.1%}",
        f"turns median {s['turns']['median']} (total {s['turns']['total']})",
        f"wall per instance median {s['wall_seconds']['median']} s (materialise + agent + grade); "
        f"agent process median {s['agent_wall_seconds']['median']} s",
        f"agent overhead per instance median {s['overhead_seconds']['median']} s "
        f"(agent elapsed minus model {s['model_seconds']['median']} s and tests {s['test_seconds']['median']} s)",
    ]
    for k, v in s["localization"].items():
        lines.append(f"localization: fixed file in the summary at {k} tokens: {v['hits']}/{v['of']} = {v['share']:.0%}")
    ft = s["first_touch_turn"]
    lines.append(f"localization: first turn touching the fixed file: median {ft['median']} "
                 f"({ft['touched']}/{ft['of']} runs touched it)")
    return lines
