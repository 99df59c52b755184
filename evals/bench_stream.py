"""CPU cost of assembling a 200-chunk streamed tool call (goal: < 5 ms per assembly).

Pre-recorded SSE bytes (made by the fake server's renderer, variant B2) are
assembled two ways: the SSE parser + assembler alone, and the whole client
path (`GLMClient.complete` over an `httpx.MockTransport`, no network).
Run: python -m evals.bench_stream [--reps N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import httpx

from agent.config import load_settings
from agent.model.client import client_from_settings
from agent.model.sse import assemble_lines
from evals.fake_glm.script import Render, normalize, plan_stream

GOAL_MS = 5.0
CHUNKS = 200


def recorded_stream(chunks: int = CHUNKS) -> bytes:
    """SSE bytes of one tool call whose arguments arrive in `chunks` fragments."""
    fragment = 8
    empty = json.dumps({"path": "src/app.py", "old": "", "new": ""})
    fill = fragment * chunks - len(empty)  # exactly `chunks` fragments of `fragment` characters
    args = json.dumps({"path": "src/app.py", "old": "x" * (fill // 2), "new": "y" * (fill - fill // 2)})
    turn = normalize({"tool_calls": [{"id": "call_bench", "name": "edit", "arguments": args}]})
    render = Render(rid="bench-000001", model="glm-5.2", variant="B2", fragment=fragment,
                    prompt_tokens=1000, cached_tokens=900, created=1793534400)
    return "".join(plan_stream(turn, render).frames).encode("utf-8")


def cpu_median(fn, reps: int) -> float:
    """Median process CPU milliseconds per call."""
    samples = []
    for _ in range(reps):
        start = time.process_time_ns()
        fn()
        samples.append((time.process_time_ns() - start) / 1e6)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=300)
    args = parser.parse_args(argv)
    data = recorded_stream()
    frames = data.count(b"data: ") - 1
    lines = data.decode("utf-8").split("\n")

    def parse_only() -> None:
        result = assemble_lines(lines)
        assert len(result.calls) == 1 and result.finish_reason == "tool_calls"

    transport = httpx.MockTransport(lambda request: httpx.Response(
        200, headers={"content-type": "text/event-stream;charset=UTF-8"}, content=data))
    settings = load_settings(overrides={"model.base_url": "http://bench.invalid/api/paas/v4"}, env={})
    client = client_from_settings(settings, "bench-key", transport=transport)
    tools = [{"type": "function", "function": {"name": "edit", "description": "", "parameters": {}}}]
    messages = [{"role": "user", "content": "bench"}]

    def whole_client() -> None:
        out = client.complete(messages, tools, "high")
        assert out.tool_calls and json.loads(out.tool_calls[0].arguments)["path"] == "src/app.py"

    for fn in (parse_only, whole_client):  # warm up
        for _ in range(10):
            fn()
    parse_ms = cpu_median(parse_only, args.reps)
    client_ms = cpu_median(whole_client, args.reps)
    client.close()
    verdict = "OK" if client_ms < GOAL_MS else "OVER GOAL"
    print(f"stream: {frames} SSE frames, {len(data)} bytes, one tool call (variant B2)")
    print(f"parse+assemble (SSEParser + StreamAssembler): {parse_ms:.3f} ms CPU median over {args.reps} reps")
    print(f"whole client path (httpx MockTransport + complete): {client_ms:.3f} ms CPU median "
          f"over {args.reps} reps")
    print(f"goal: < {GOAL_MS:.1f} ms per assembly -> {verdict}")
    return 0 if client_ms < GOAL_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
