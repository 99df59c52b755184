"""Failure paths through the public CLI: each error said once, early, and nothing left behind."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from evals.fake_glm import FakeGLM
from evals.sample_repo import TARGET, fixing_script, git
from tests.conftest import TEST_KEY, run_cli


def fix_args(repo: Path, server: FakeGLM, *extra: str, task: str = TARGET) -> list[str]:
    return ["fix", task, "--repo", str(repo), "--base-url", server.base_url, "--sandbox", "local", "--json",
            *extra]


def commit_all(repo: Path, message: str) -> None:
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message], cwd=repo,
                   check=True)


# --- robustness -----------------------------------------------------------------------------------

def test_a_committed_file_name_that_is_not_utf8_does_not_stop_fix(sample_repo, agent_env):
    name = os.fsencode(sample_repo / "shop") + b"/caf\xe9.py"  # Latin-1 bytes: not valid UTF-8
    with open(name, "wb") as handle:
        handle.write(b"def apply_discount_legacy(total):\n    return total\n")
    commit_all(sample_repo, "a Latin-1 file name")
    turns = [{"tool_calls": [{"name": "view", "arguments": {"path": "shop"}}]}, *fixing_script()]
    with FakeGLM(turns=turns, api_key=TEST_KEY) as server:
        result = run_cli(fix_args(sample_repo, server), agent_env)
    assert result.code == 0, result.stderr
    trajectory = (Path(result.report["run_dir"]) / "trajectory.jsonl").read_text(encoding="utf-8")
    observations = [json.loads(line) for line in trajectory.splitlines()]
    shown = json.dumps(observations, ensure_ascii=False)
    assert "caf\ufffd.py" in shown  # listed by view and found by search, shown with U+FFFD
    # the summary renders the same name; the summary command prints it without an error
    summary = run_cli(["summary", "--repo", str(sample_repo), "--test", TARGET], agent_env)
    assert summary.code == 0, summary.stderr


def test_summary_of_a_test_that_does_not_exist_is_bad_input(sample_repo, agent_env):
    for selector, why in (("tests/test_nope.py::test_x", "no such test file in the repository: tests/test_nope.py"),
                          ("tests/test_cart.py::test_nope", "no test matches tests/test_cart.py::test_nope")):
        result = run_cli(["summary", "--repo", str(sample_repo), "--test", selector], agent_env)
        assert result.code == 2
        assert result.stderr.startswith(f"error: {why}") and result.stderr.count("\n") == 1, result.stderr
        assert result.stdout == ""


# --- preflight and the one error path -------------------------------------------------------------

def assert_nothing_left(repo: Path, env: dict[str, str]) -> None:
    """No agent branch, no extra worktree, no run directory."""
    assert "agent/" not in git(repo, "branch", "--list")
    assert git(repo, "worktree", "list").count("\n") == 1
    assert not list(Path(env["AGENT_HOME"]).glob("runs/*"))


def assert_one_error_line(stderr: str, expected: str) -> None:
    assert stderr == f"error: {expected}\n", stderr
    assert "error: error:" not in stderr and "Traceback" not in stderr


def test_wrong_key_fails_first_before_any_worktree_or_image(sample_repo, agent_env):
    """Docker sandbox on a repository whose environment image was never built: the key is refused
    before anything slow starts (stderr is the error line alone: no run line, no build progress)."""
    with FakeGLM(turns=fixing_script(), api_key="the-right-key-0000") as server:
        result = run_cli(["fix", TARGET, "--repo", str(sample_repo), "--base-url", server.base_url,
                          "--sandbox", "docker"], agent_env)
        assert len(server.probes) == 1 and server.requests == []  # one one-token probe, no model turn
        probe = server.probes[0]
    assert result.code == 3
    assert_one_error_line(result.stderr, "the API key was refused: check GLM_API_KEY (or ZAI_API_KEY): it must be "
                          "a key of the endpoint's platform — server said: authentication failed HTTP 401 "
                          "code 1000: 身份验证失败。")
    assert probe["max_tokens"] == 1 and probe["thinking"] == {"type": "disabled"} and "tools" not in probe
    assert_nothing_left(sample_repo, agent_env)


def test_unreachable_endpoint_is_one_line(sample_repo, agent_env):
    url = "http://127.0.0.1:9/api/paas/v4"
    result = run_cli(["fix", TARGET, "--repo", str(sample_repo), "--base-url", url, "--sandbox", "local"], agent_env)
    assert result.code == 3
    assert_one_error_line(result.stderr, f"cannot reach the endpoint {url}/chat/completions: check --base-url / "
                          "AGENT_BASE_URL and the network (Connection refused)")
    assert_nothing_left(sample_repo, agent_env)


def test_missing_docker_engine_is_one_line_without_reprs(sample_repo, agent_env, tmp_path):
    env = {**agent_env, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    with FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as server:
        result = run_cli(["fix", TARGET, "--repo", str(sample_repo), "--base-url", server.base_url,
                          "--sandbox", "docker"], env)
    assert result.code == 3
    assert result.stderr.startswith(f"error: no Docker engine reachable (unix://{tmp_path}/no-engine.sock: "
                                    "No such file or directory); fix: start dockerd")
    assert result.stderr.count("\n") == 1 and result.stderr.count("error:") == 1
    assert "Error(" not in result.stderr and "('" not in result.stderr  # no nested Python reprs
    assert_nothing_left(sample_repo, agent_env)


def test_a_model_error_mid_run_is_said_once_and_leaves_no_branch(sample_repo, agent_env):
    with FakeGLM(turns=[{"http_fault": "balance"}], api_key=TEST_KEY) as server:
        result = run_cli(fix_args(sample_repo, server), agent_env)
    assert result.code == 3
    message = "quota exhausted HTTP 429 code 1113: Insufficient balance or no resource package. Please recharge."
    assert result.stderr.count(message) == 1, result.stderr
    assert "error: error:" not in result.stderr and "model:" not in result.stderr
    assert result.report["stop_reason"] == message and result.report["branch"] is None
    assert "agent/" not in git(sample_repo, "branch", "--list")


def test_debug_shows_the_traceback(sample_repo, agent_env):
    url = "http://127.0.0.1:9/api/paas/v4"
    result = run_cli(["--debug", "fix", TARGET, "--repo", str(sample_repo), "--base-url", url, "--sandbox",
                      "local"], agent_env)
    assert result.code == 3
    assert "Traceback (most recent call last)" in result.stderr and "EnvironmentProblem" in result.stderr
    assert result.stderr.count("error: cannot reach the endpoint") == 1


# --- nothing left behind --------------------------------------------------------------------------

def test_a_run_without_a_commit_leaves_no_branch(sample_repo, agent_env):
    with FakeGLM(turns=[{"content": "No idea."}, {"content": "Still none."}], api_key=TEST_KEY) as server:
        result = run_cli(fix_args(sample_repo, server), agent_env)
    assert result.code == 1, result.stderr
    assert result.report["branch"] is None and result.report["commit"] is None
    assert "agent/" not in git(sample_repo, "branch", "--list")
    assert git(sample_repo, "worktree", "list").count("\n") == 1


def test_run_files_are_private(sample_repo, agent_env):
    with FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as server:
        result = run_cli(fix_args(sample_repo, server), agent_env)
    assert result.code == 0, result.stderr
    run_dir = Path(result.report["run_dir"])
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    for name in ("trajectory.jsonl", "report.json", "patch.diff"):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o600, name
    assert result.report["branch"].startswith("agent/")  # a commit was made: the branch stays


def test_demo_leaves_nothing_behind(agent_env, tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {k: v for k, v in agent_env.items() if k not in ("GLM_API_KEY", "ZAI_API_KEY")}
    env["TMPDIR"] = str(scratch)
    result = run_cli(["demo", "--sandbox", "local", "--json"], env)
    assert result.code == 0, result.stderr
    assert result.report["status"] == "resolved"
    assert list(scratch.iterdir()) == []  # sample repository and temporary AGENT_HOME removed
    assert not Path(env["AGENT_HOME"]).exists()  # the user's AGENT_HOME is not touched


# --- help and version -----------------------------------------------------------------------------

def test_fix_help_shows_every_default_and_version(agent_env):
    env = {**agent_env, "COLUMNS": "250"}
    text = run_cli(["fix", "--help"], env).stdout
    for option, default in (("--max-cost-usd", "2.0"), ("--max-turns", "40"), ("--max-tokens", "2000000"),
                            ("--max-seconds", "1800"), ("--model", "glm-5.2"), ("--profile", "zai"),
                            ("--sandbox", "docker"), ("--base-url", "https://api.z.ai/api/paas/v4")):
        line = next(line for line in text.splitlines() if f" {option} " in line)
        assert f"[default: {default}]" in line, line
    assert "<bool>" not in text and "<list[str]>" not in text and "<str>" not in text
    options = [line for line in text.splitlines() if line.startswith("│ --")]
    assert len(options) == 16 and all("[default:" in line for line in options if "--help" not in line)
    summary = run_cli(["summary", "--help"], env).stdout
    assert "[default: 2048]" in summary and "(default:  " not in summary
    version = run_cli(["--version"], env)
    assert version.code == 0 and version.stdout.strip() == "agent 0.1.0"
    eval_help = run_cli(["eval", "--help"], env).stdout
    assert "Usage: agent eval [OPTIONS]" in eval_help and "python -m evals.run" not in eval_help


def test_doctor_checks_the_key_with_the_probe_and_names_no_missing_flag(agent_env):
    with FakeGLM(turns=[], api_key="the-right-key-0000") as server:
        result = run_cli(["doctor"], {**agent_env, "AGENT_BASE_URL": server.base_url})
    line = next(line for line in result.stderr.splitlines() if "endpoint:" in line)
    assert line.startswith("FAIL endpoint: the API key was refused") and "--base-url" not in line
    assert result.code == 3


def test_the_fake_answers_a_probe_with_one_token_and_keeps_its_script():
    import httpx

    with FakeGLM(turns=[{"content": "scripted"}], api_key=TEST_KEY) as server:
        probe = {"model": "glm-5.2", "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1,
                 "stream": False, "thinking": {"type": "disabled"}}
        answer = httpx.post(server.base_url + "/chat/completions", json=probe,
                            headers={"Authorization": f"Bearer {TEST_KEY}"}, timeout=10).json()
        assert answer["choices"][0]["finish_reason"] == "length"
        assert answer["usage"]["completion_tokens"] == 1 and "reasoning_content" not in answer["choices"][0]["message"]
        assert server.script.remaining == 1 and server.requests == [] and len(server.probes) == 1


def test_documented_error_codes_get_english_hints():
    from agent.model.errors import error_from_response
    from agent.preflight import hint_for

    def hint(status: int, code: str, message: str) -> str:
        return hint_for(error_from_response(status, json.dumps({"error": {"code": code, "message": message}})))

    assert hint(401, "1001", "Header中未收到Authentication参数").startswith("the API key was refused")
    assert hint(429, "1113", "余额不足").startswith("the account has no balance")
    assert hint(400, "1211", "模型不存在").startswith("the endpoint does not know this model")
    assert hint(429, "1309", "套餐已到期").startswith("the GLM Coding Plan has expired")
    assert hint(429, "1112", "账户已被锁定").startswith("the account is inactive, locked or missing")


@pytest.mark.parametrize("args, words", [
    (["--sandbox", "bogus"], "--sandbox must be docker or local"),
    (["--max-turns", "0"], "bad setting budget.max_turns"),
    (["--mode", "medium"], "medium"),
])
def test_a_bad_option_is_one_line_and_leaves_nothing(sample_repo, agent_env, args, words):
    with FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as server:
        result = run_cli(["fix", TARGET, "--repo", str(sample_repo), "--base-url", server.base_url, *args],
                         agent_env)
        assert server.requests == [] and server.probes == []
    assert result.code == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and words in errors[0], result.stderr
    assert "error: error:" not in result.stderr and "Traceback" not in result.stderr
    assert_nothing_left(sample_repo, agent_env)
