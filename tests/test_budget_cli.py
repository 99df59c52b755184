"""Every budget holds through the CLI, judged against the fake GLM's own bill (issue 15).

Retries and resends, a resend after a context overflow, CJK/code/base64 prompts, an unpriced
model, profile fragments, a slow test and a runaway stream: the server never bills more than the
limit, and the agent's account is never below the server's bill.
"""

from __future__ import annotations

import base64
import json
import random
import time
from pathlib import Path

import pytest

from agent.config import load_settings
from evals.fake_glm import FakeGLM, canonical_text
from evals.sample_repo import TARGET, fixing_script, git
from tests.conftest import TEST_KEY, run_cli, write_user_config

USD = load_settings(env={}).prices()["usd"]


def fix_args(repo: Path, server: FakeGLM, *extra: str) -> list[str]:
    return ["fix", TARGET, "--repo", str(repo), "--base-url", server.base_url, "--sandbox", "local", "--json",
            *extra]


def configure(env: dict, toml: str) -> None:
    """The user's own config file: model settings, prices and profiles are not a repository's to set."""
    write_user_config(env, toml)


def billed_usd(server: FakeGLM) -> float:
    """What the server bills: every answer it generated, at glm-5.2's USD prices."""
    total = 0.0
    for entry in server.billed:
        usage = entry["usage"] or {}
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
        total += ((usage.get("prompt_tokens", 0) - cached) * USD.input + cached * USD.cached_input
                  + usage.get("completion_tokens", 0) * USD.output) / 1e6
    return total


def events(report: dict, name: str) -> list[dict]:
    path = Path(report["run_dir"]) / "trajectory.jsonl"
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["event"] == name]


def assert_nothing_left(repo: Path, home: str) -> None:
    assert "agent/" not in git(repo, "branch", "--list")
    assert git(repo, "worktree", "list").count("\n") == 1
    assert not list(Path(home).glob("runs/*"))


# ---- 1. retries and resends --------------------------------------------------------------------

FAULTS = {
    "dropped_stream": {"content": "partial answer " * 200, "fault": "drop"},
    "network_error": {"content": "partial answer " * 200, "fault": "network_error"},
    "server_error": {"http_fault": "server"},
    "unparseable_tool_arguments": {"tool_calls": [{"name": "view", "arguments": '{"path": "shop/cart.py"'}]},
}


@pytest.mark.parametrize("fault", FAULTS)
def test_retries_and_resends_are_charged_and_cannot_cross_the_cost_limit(sample_repo, agent_env, fault):
    configure(agent_env, "[model]\nmax_tokens = 4096\nmax_retries = 30\nbackoff_base = 0.01\n"
                           "backoff_cap = 0.02\n")
    limit = 0.05
    with FakeGLM(turns=[FAULTS[fault]] * 60, api_key=TEST_KEY) as server:
        result = run_cli(fix_args(sample_repo, server, "--max-cost-usd", str(limit)), agent_env)
        requests, bill = len(server.requests), billed_usd(server)
    assert result.code == 1, result.stderr
    report = result.report
    assert report["status"] == "budget_exhausted" and report["stop_reason"].startswith("budget_cost")
    assert requests >= 2  # it did retry (or resend), and every attempt was asked of the budget first
    assert bill <= limit and report["cost"]["usd"] <= limit
    assert report["cost"]["usd"] >= bill - 5e-7  # never below the bill (the report rounds to 6 places)
    assert events(report, "attempt_failed")


# ---- 2. a resend after a context overflow ---------------------------------------------------------

def test_a_resend_after_context_overflow_asks_the_budget_again(sample_repo, agent_env):
    configure(agent_env, "[model]\nmax_tokens = 2048\n")
    overflow = {"content": "the context is full now " * 300, "fault": "context_window"}  # billed, then overflow
    limit = 0.02
    with FakeGLM(turns=[overflow] + fixing_script(), api_key=TEST_KEY) as server:
        result = run_cli(fix_args(sample_repo, server, "--max-cost-usd", str(limit)), agent_env)
        requests, bill = len(server.requests), billed_usd(server)
    report = result.report
    assert report["status"] == "budget_exhausted" and report["stop_reason"].startswith("budget_cost"), report
    assert requests == 1  # the compacted resend did not fit what the overflowed attempt left
    assert bill <= limit and report["cost"]["usd"] >= bill - 5e-7  # the report rounds to 6 places


# ---- 3. the prompt estimate is a worst case for every script --------------------------------------

def _content(kind: str) -> str:
    rng = random.Random(15)
    if kind == "cjk":  # common Chinese prose: ~1 token a character in cl100k
        line = "购物车的折扣计算有误：使用优惠券时总价应当减去折扣金额，但目前的实现把折扣乘以了数量。"
        return "".join(f"# {line}\n" for _ in range(150))
    if kind == "base64":
        return "".join(f'BLOB_{i} = "{base64.b64encode(rng.randbytes(60)).decode()}"\n' for i in range(150))
    return "".join(f"def handler_{i}(request, *, retries={i % 5}):\n    return request.get('k{i}', None)\n"
                   for i in range(75))


@pytest.mark.parametrize("kind", ["cjk", "code", "base64"])
def test_prompt_estimate_never_below_the_servers_count(sample_repo, agent_env, kind):
    (sample_repo / "shop" / "data.py").write_text(_content(kind))
    git(sample_repo, "add", "-A")
    git(sample_repo, "commit", "-q", "-m", "data")
    look = {"tool_calls": [{"name": "view", "arguments": {"path": "shop/data.py"}}]}
    limit = 0.15
    with FakeGLM(turns=[look] * 30, api_key=TEST_KEY) as server:
        assert server.tokenizer == "cl100k_base"  # a real BPE vocabulary, not chars / 4
        result = run_cli(fix_args(sample_repo, server, "--max-cost-usd", str(limit)), agent_env)
        real = [server.count_tokens(canonical_text(body)) for body in server.requests]
        bill = billed_usd(server)
    report = result.report
    estimates = [e["prompt_estimate"] for e in events(report, "request")]
    assert len(estimates) == len(real) >= 3
    for estimate, count in zip(estimates, real, strict=True):
        assert estimate >= count, (kind, estimates, real)
    assert report["stop_reason"].startswith("budget_cost") and bill <= limit


# ---- 4. a cost limit needs a price ---------------------------------------------------------------

def test_cost_limit_for_an_unpriced_model_is_bad_input_and_leaves_nothing(sample_repo, agent_env):
    with FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as server:
        result = run_cli(fix_args(sample_repo, server, "--model", "glm-4.7", "--max-cost-usd", "0.01"), agent_env)
        assert server.requests == []
    assert result.code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no price for model 'glm-4.7'" in lines[0], result.stderr
    assert_nothing_left(sample_repo, agent_env["AGENT_HOME"])


def test_configured_prices_make_an_unlisted_model_usable(sample_repo, agent_env):
    configure(agent_env, '[pricing.usd."glm-4.7"]\ninput = 0.6\ncached_input = 0.11\noutput = 2.2\n')
    with FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as server:
        result = run_cli(fix_args(sample_repo, server, "--model", "glm-4.7", "--max-cost-usd", "0.5"), agent_env)
        models = {body["model"] for body in server.requests}
    assert result.code == 0, result.stderr
    assert models == {"glm-4.7"} and 0 < result.report["cost"]["usd"] <= 0.5


# ---- 5. profile fragments cannot raise the allowance or change the model --------------------------

def test_profile_fragment_cannot_change_max_tokens_or_model(sample_repo, agent_env):
    configure(agent_env, "[model]\nmax_tokens = 2048\n\n[profiles.zai.high]\nmax_tokens = 100000\n"
                           'model = "glm-4.5"\nmax_completion_tokens = 100000\n')
    with FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as server:
        result = run_cli(fix_args(sample_repo, server), agent_env)
        bodies = server.requests
    assert result.code == 0, result.stderr
    assert bodies and all(b["model"] == "glm-5.2" for b in bodies)
    assert all(b["max_tokens"] <= 2048 and "max_completion_tokens" not in b for b in bodies)
    assert all(b["reasoning_effort"] == "high" for b in bodies)  # the rest of the fragment still applies


# ---- 6. the time limit bounds test runs and the whole run -----------------------------------------

def test_max_seconds_bounds_a_slow_test_run_and_the_run(sample_repo, agent_env):
    (sample_repo / "tests" / "test_slow.py").write_text("import time\n\n\ndef test_slow():\n    time.sleep(120)\n")
    git(sample_repo, "add", "-A")
    git(sample_repo, "commit", "-q", "-m", "a slow test")
    slow = {"tool_calls": [{"name": "run_tests", "arguments": {"tests": ["tests/test_slow.py"]}}]}
    started = time.monotonic()
    with FakeGLM(turns=[slow] * 5, api_key=TEST_KEY) as server:
        result = run_cli(fix_args(sample_repo, server, "--max-seconds", "10"), agent_env)
    elapsed = time.monotonic() - started
    assert result.code == 1, result.stderr
    assert result.report["status"] == "budget_exhausted"
    assert result.report["stop_reason"].startswith("budget_time")
    assert events(result.report, "stop")[0]["t"] < 10 + 3  # stopped at the limit, not after the 120 s test
    assert elapsed < 60, elapsed  # start-up and the commit included; far below one 120 s test run


def test_max_seconds_cuts_a_model_call_in_flight(sample_repo, agent_env):
    """A slow stream (each frame well within the 300 s idle timeout; 300 s in all) is cut at the run's limit."""
    turn = {"content": "a slow trickle of words " * 400, "frame_delay": 0.25}
    with FakeGLM(turns=[turn], api_key=TEST_KEY) as server:
        result = run_cli(fix_args(sample_repo, server, "--max-seconds", "25"), agent_env)
        billed = server.billed
    assert result.code == 1, result.stderr
    assert result.report["status"] == "budget_exhausted"
    assert result.report["stop_reason"].startswith("budget_time"), result.report["stop_reason"]
    assert "during a model call" in result.report["stop_reason"]
    assert events(result.report, "request")  # the call was in flight when the limit passed
    assert events(result.report, "stop")[0]["t"] < 25 + 3  # cut there, not after the stream's 300 s
    assert billed[-1]["sent"] < billed[-1]["frames"]  # the client hung up mid-stream
    assert result.report["cost"]["usd"] > 0  # the cut attempt is charged as its worst case


# ---- 7. a stream past its max_tokens is cut off ----------------------------------------------------

def test_client_stops_reading_a_stream_past_max_tokens(sample_repo, agent_env):
    configure(agent_env, "[model]\nmax_tokens = 1024\n")
    runaway = {"content": "an answer that ignores max_tokens " * 60000}  # ~2 MB, far past 1024 tokens
    with FakeGLM(turns=[runaway], api_key=TEST_KEY) as server:
        result = run_cli(fix_args(sample_repo, server, "--max-cost-usd", "0.05"), agent_env)
        billed = server.billed
    assert result.code == 3, result.stderr
    report = result.report
    assert report["status"] == "error" and "past max_tokens=1024" in report["stop_reason"]
    assert billed[-1]["sent"] < billed[-1]["frames"]  # the client hung up instead of reading it all (after the probe)
    assert 0 < report["cost"]["usd"] <= 0.05  # charged as the worst case the allowance permitted
