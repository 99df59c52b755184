"""Token economy through the CLI: compaction at the context limit, `agent cost` from the trajectory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.fake_glm import FakeGLM
from evals.sample_repo import TARGET, fixing_script, git
from tests.conftest import TEST_KEY, run_cli, write_user_config


def _fix(repo: Path, env: dict, turns: list) -> dict:
    with FakeGLM(turns=turns, api_key=TEST_KEY) as server:
        result = run_cli(["fix", TARGET, "--repo", str(repo), "--base-url", server.base_url, "--sandbox", "local",
                          "--json"], env)
    assert result.code in (0, 1), result.stderr
    return result.report


def test_compacts_once_near_the_context_limit_instead_of_failing(sample_repo, agent_env):
    big = "".join(f"CONSTANT_{i:03d} = {i} * 1234567  # a line of filler to make the file large\n" for i in range(150))
    (sample_repo / "shop" / "big.py").write_text(big)
    # prompt bounds are worst cases (UTF-8 bytes) for what the API has not counted yet: the second view pushes
    # the bound past 16000, the API's own counts of the compacted history bring it back under
    write_user_config(agent_env, "[model]\ncontext_window = 16000\nmax_tokens = 1024\n")
    git(sample_repo, "add", "-A")
    git(sample_repo, "commit", "-q", "-m", "big file, small window")
    look = {"tool_calls": [{"name": "view", "arguments": {"path": "shop/big.py", "start": 1, "end": 150}}]}
    report = _fix(sample_repo, agent_env, [look, look] + fixing_script()[2:4])
    assert report["status"] == "resolved"
    assert report["compactions"] == 1
    assert report["compaction_cache_loss_tokens"] > 0
    events = [json.loads(line) for line in (Path(report["run_dir"]) / "trajectory.jsonl").read_text().splitlines()]
    compaction = next(e for e in events if e["event"] == "compaction")
    assert compaction["prompt_estimate_after"] + 1024 <= 16000
    # the prefix (system prompt, summary, task) is untouched: the first elided message comes after it
    assert compaction["first_changed_message"] >= 2


def test_context_that_cannot_fit_stops_with_a_clear_reason(sample_repo, agent_env):
    write_user_config(agent_env, "[model]\ncontext_window = 1500\nmax_tokens = 1024\n")
    report = _fix(sample_repo, agent_env, fixing_script())
    assert report["status"] == "budget_exhausted"
    assert report["stop_reason"].startswith("budget_context")
    assert report["turns"] == 0


def test_agent_cost_recomputes_the_report_from_the_trajectory(sample_repo, agent_env):
    report = _fix(sample_repo, agent_env, fixing_script())
    result = run_cli(["cost", report["run_dir"], "--json"], agent_env)
    assert result.code == 0, result.stderr
    recomputed = json.loads(result.stdout)
    assert recomputed["usage"]["prompt_tokens"] == report["usage"]["input_tokens"]
    assert recomputed["usage"]["cached_tokens"] == report["usage"]["cached_tokens"]
    assert recomputed["cost"]["rmb"] == pytest.approx(report["cost"]["rmb"], abs=1e-6)
    assert recomputed["cost"]["usd"] == pytest.approx(report["cost"]["usd"], abs=1e-6)
    assert recomputed["calls"]["high"] == report["calls"]["high"]
    text = run_cli(["cost", report["run_dir"]], agent_env)
    assert "saved by the cache" in text.stdout
    missing = run_cli(["cost", str(Path(report["run_dir"]) / "nope")], agent_env)
    assert missing.code == 2 and "no trajectory.jsonl" in missing.stderr
