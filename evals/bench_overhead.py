"""Agent overhead per turn: a 20-turn scripted task against the fake GLM server.

Overhead = the loop's wall time minus time inside model round trips and test
runs, divided by turns: what the agent itself costs (prompt assembly, tool
execution, trajectory writes, budget and policy checks). Goal: under 25 ms.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path


def scripted_turns(n: int = 20) -> list[dict]:
    from evals.sample_repo import fixing_script

    looks = [
        {"tool_calls": [{"name": "search", "arguments": {"pattern": "def "}}]},
        {"tool_calls": [{"name": "view", "arguments": {"path": "shop/cart.py"}}]},
        {"tool_calls": [{"name": "outline", "arguments": {"path": "shop/cart.py"}}]},
        {"tool_calls": [{"name": "view", "arguments": {"path": "tests/test_cart.py", "start": 1, "end": 10}}]},
    ]
    script = fixing_script()
    tail = [script[2], script[4]]  # edit, then finish (the harness verifies)
    return [looks[i % len(looks)] for i in range(n - len(tail))] + tail


def measure(run_dir: Path) -> dict[str, float]:
    events = [json.loads(line) for line in (run_dir / "trajectory.jsonl").read_text().splitlines()]
    model = tests = 0.0
    pending: dict[str, float] = {}
    first = last = None
    for event in events:
        kind = event["event"]
        if kind == "request":
            first = event["t"] if first is None else first
            pending["request"] = event["t"]
        elif kind == "response":
            model += event["t"] - pending.pop("request")
        elif kind == "tool_call":
            pending[event["id"]] = event["t"]
        elif kind == "tool_result":
            if event["name"] == "run_tests":
                tests += event["t"] - pending[event["id"]]
        elif kind == "test_run" and event.get("purpose") == "verify":
            tests += sum(run.get("duration", 0.0) for run in event.get("runs", []))
        if kind in ("response", "tool_result", "test_run") and first is not None:
            last = event["t"]
    turns = sum(1 for e in events if e["event"] == "response")
    wall = (last or 0.0) - (first or 0.0)
    return {"turns": turns, "wall": wall, "model": model, "tests": tests,
            "overhead_per_turn_ms": (wall - model - tests) / max(turns, 1) * 1000}


def main(repeats: int = 3) -> None:
    from agent.fix import FixOptions, run_fix
    from evals.fake_glm import FakeGLM
    from evals.sample_repo import TARGET, make_sample_repo

    results = []
    for _ in range(repeats):
        tmp = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
        os.environ["AGENT_HOME"] = str(tmp / "home")
        os.environ["XDG_CACHE_HOME"] = str(tmp / "cache")
        repo = make_sample_repo(tmp / "shop")
        with FakeGLM(turns=scripted_turns(), api_key="bench-key") as server:
            report, code = run_fix(FixOptions(task=TARGET, repo=repo, api_key="bench-key", overrides={
                "model.base_url": server.base_url, "sandbox.kind": "local", "budget.max_turns": 25}),
                progress=lambda line: None)
        assert report["status"] == "resolved", report["stop_reason"]
        results.append(measure(Path(report["run_dir"])))
    per_turn = statistics.median(r["overhead_per_turn_ms"] for r in results)
    r = results[-1]
    print(f"turns per task: {r['turns']}  (last run: wall {r['wall']:.2f}s, model {r['model']:.2f}s, "
          f"tests {r['tests']:.2f}s)")
    print(f"agent overhead per turn: {per_turn:.1f} ms (median of {repeats}; goal < 25 ms)")


if __name__ == "__main__":
    main()
