"""The reasoning policy through the CLI: High by default, Max for critical modules, forced modes, failures."""

from __future__ import annotations

import json
from pathlib import Path

from evals.fake_glm import FakeGLM
from evals.sample_repo import TARGET, fixing_script, git
from tests.conftest import TEST_KEY, run_cli, write_user_config


def _run(repo: Path, env: dict, turns: list, *extra: str) -> tuple[dict, list[dict], list[dict]]:
    with FakeGLM(turns=turns, api_key=TEST_KEY) as server:
        result = run_cli(["fix", TARGET, "--repo", str(repo), "--base-url", server.base_url, "--sandbox", "local",
                          "--json", *extra], env)
        bodies = list(server.requests)
    assert result.code in (0, 1), result.stderr
    report = result.report
    events = [json.loads(line) for line in (Path(report["run_dir"]) / "trajectory.jsonl").read_text().splitlines()]
    return report, bodies, [e for e in events if e["event"] == "request"]


def _configure(repo: Path, text: str) -> None:
    (repo / ".agent.toml").write_text(text)
    git(repo, "add", ".agent.toml")
    git(repo, "commit", "-q", "-m", "agent config")


def test_no_critical_file_no_max_and_every_request_states_its_effort(sample_repo, agent_env):
    _configure(sample_repo, '[policy]\ncritical = ["shop/payments/**"]\n')
    report, bodies, requests = _run(sample_repo, agent_env, fixing_script())
    assert report["status"] == "resolved"
    assert report["calls"] == {"high": 4, "max": 0}
    assert [b["reasoning_effort"] for b in bodies] == ["high"] * 4
    assert all(b["thinking"] == {"type": "enabled", "clear_thinking": False} for b in bodies)
    assert {r["reason"] for r in requests} == {"default"}


def test_max_from_the_turn_a_critical_file_enters_the_working_set(sample_repo, agent_env):
    _configure(sample_repo, '[policy]\ncritical = ["shop/money.py"]\n')
    peek = {"tool_calls": [{"name": "view", "arguments": {"path": "shop/money.py"}}]}
    turns = [fixing_script()[0], peek] + fixing_script()[1:]
    report, bodies, requests = _run(sample_repo, agent_env, turns)
    assert report["status"] == "resolved"
    assert [b["reasoning_effort"] for b in bodies] == ["high", "high", "max", "max", "max"]
    assert report["calls"] == {"high": 2, "max": 3}
    assert "shop/money.py" in requests[2]["reason"] and "critical" in requests[2]["reason"]
    assert report["max_reasoning_cost"]["rmb"] >= 0


def test_seed_file_on_the_critical_list_means_max_from_the_first_call(sample_repo, agent_env):
    _configure(sample_repo, '[policy]\ncritical = ["shop/cart.py"]\n')
    report, bodies, _ = _run(sample_repo, agent_env, fixing_script())
    assert [b["reasoning_effort"] for b in bodies] == ["max"] * 4


def test_forced_mode_and_max_after_failures(sample_repo, agent_env):
    report, bodies, requests = _run(sample_repo, agent_env, fixing_script(), "--mode", "max")
    assert {b["reasoning_effort"] for b in bodies} == {"max"}
    assert requests[0]["reason"] == "forced by --mode max"

    write_user_config(agent_env, "[policy]\nmax_after_failures = 1\n")  # spending is the user's to choose
    run_tests = {"tool_calls": [{"name": "run_tests", "arguments": {}}]}
    turns = [run_tests, fixing_script()[2], run_tests]
    report, bodies, requests = _run(sample_repo, agent_env, turns)
    assert report["status"] == "resolved"
    assert [b["reasoning_effort"] for b in bodies] == ["high", "max", "max"]
    assert "failed test runs" in requests[1]["reason"]
