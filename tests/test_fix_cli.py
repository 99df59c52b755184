"""`agent fix` end to end: the CLI in a subprocess, the fake GLM over real HTTP, real git and pytest."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from evals.fake_glm import FakeGLM
from evals.sample_repo import BUGGY_LINE, FIXED_LINE, TARGET, fixing_script, git
from tests.conftest import TEST_KEY, run_cli


def fix_args(repo: Path, server: FakeGLM, *extra: str, task: str = TARGET) -> list[str]:
    return ["fix", task, "--repo", str(repo), "--base-url", server.base_url, "--sandbox", "local", "--json",
            *extra]


def tool_results(report: dict) -> list[dict]:
    path = Path(report["run_dir"]) / "trajectory.jsonl"
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["event"] == "tool_result"]


def snapshot(root: Path) -> dict[str, str]:
    """Every file of the user's checkout (outside .git) with its content hash."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".git" not in p.relative_to(root).parts}


def test_resolves_on_a_branch_and_leaves_the_checkout_alone(sample_repo, agent_env):
    (sample_repo / "shop" / "money.py").write_text("# uncommitted user work\n")
    (sample_repo / "notes.txt").write_text("untracked user file\n")
    before = snapshot(sample_repo)
    status_before = git(sample_repo, "status", "--porcelain")
    head_before = git(sample_repo, "rev-parse", "HEAD")
    with FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as server:
        result = run_cli(fix_args(sample_repo, server), agent_env)
    assert result.code == 0, result.stderr
    report = result.report
    assert report["status"] == "resolved"
    assert report["tests"]["after"]["targets"] == {TARGET: "passed"}
    assert report["tests"]["before"]["targets"] == {TARGET: "failed"}
    assert FIXED_LINE.strip() in report["patch"] and "uncommitted user work" not in report["patch"]
    assert any("uncommitted" in note for note in report["notes"])
    # the branch carries one commit naming the task; the user's checkout is byte-for-byte unchanged
    log = git(sample_repo, "log", "--format=%s", f"{report['branch']}")
    assert log.splitlines()[0].startswith("agent: fix tests/test_cart.py::test_discount")
    assert report["branch"].startswith("agent/")
    assert snapshot(sample_repo) == before
    assert git(sample_repo, "status", "--porcelain") == status_before
    assert git(sample_repo, "rev-parse", "HEAD") == head_before
    # the worktree is released, so the branch can be checked out by the user
    assert git(sample_repo, "worktree", "list").count("\n") == 1
    assert (sample_repo / "shop" / "cart.py").read_text().count(BUGGY_LINE) == 1
    run_dir = Path(report["run_dir"])
    for name in ("report.json", "trajectory.jsonl", "patch.diff"):
        assert (run_dir / name).is_file()
    events = [json.loads(line)["event"] for line in (run_dir / "trajectory.jsonl").read_text().splitlines()]
    assert events[0] == "start" and events[-1] == "stop"
    assert {"request", "response", "tool_call", "tool_result", "test_run"} <= set(events)
    assert report["usage"]["input_tokens"] > 0 and report["cost"]["usd"] > 0
    assert report["calls"] == {"high": 4, "max": 0}  # a green run_tests ends it: no finish needed
    # progress lines on stderr, one per turn
    assert result.stderr.count("turn ") >= 4


def test_key_never_written_or_printed(sample_repo, agent_env):
    with FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as server:
        result = run_cli(fix_args(sample_repo, server), agent_env)
    assert result.code == 0
    assert TEST_KEY not in result.stdout + result.stderr
    home = Path(agent_env["AGENT_HOME"])
    for path in home.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            assert TEST_KEY.encode() not in path.read_bytes(), path


def test_selector_matching_no_test_is_bad_input(sample_repo, agent_env):
    with FakeGLM(turns=[], api_key=TEST_KEY) as server:
        result = run_cli(fix_args(sample_repo, server, task="tests/test_cart.py::test_nope"), agent_env)
    assert result.code == 2
    assert "no test matches" in result.stderr and "Traceback" not in result.stderr
    # nothing is left behind: no branch, no worktree, no run directory
    assert "agent/" not in git(sample_repo, "branch", "--list")
    assert git(sample_repo, "worktree", "list").count("\n") == 1
    assert not list(Path(agent_env["AGENT_HOME"]).glob("runs/*"))


@pytest.mark.parametrize("where", ["missing", "not-git"])
def test_bad_repo_is_exit_2(tmp_path, agent_env, where):
    repo = tmp_path / where
    if where == "not-git":
        repo.mkdir()
    result = run_cli(["fix", TARGET, "--repo", str(repo), "--sandbox", "local"], agent_env)
    assert result.code == 2
    assert "Traceback" not in result.stderr
    assert ("no such directory" if where == "missing" else "not a git repository") in result.stderr


def test_unreachable_endpoint_is_exit_3_in_seconds(sample_repo, agent_env):
    started = time.monotonic()
    result = run_cli(["fix", TARGET, "--repo", str(sample_repo), "--sandbox", "local",
                      "--base-url", "http://127.0.0.1:9/api/paas/v4", "--json"], agent_env)
    assert result.code == 3
    assert time.monotonic() - started < 30
    assert "Traceback" not in result.stderr
    assert result.stdout == "" and result.stderr.count("error:") == 1  # the preflight: no run, no report
    assert TEST_KEY not in result.stderr + result.stdout


def test_model_giving_up(sample_repo, agent_env):
    turns = [{"content": "I cannot fix this."}, {"content": "Still no idea."}]
    with FakeGLM(turns=turns, api_key=TEST_KEY) as server:
        result = run_cli(fix_args(sample_repo, server), agent_env)
    assert result.code == 1
    assert result.report["status"] == "unresolved"
    assert result.report["stop_reason"].startswith("model_gave_up")
    assert result.report["commit"] is None


def test_claimed_success_is_checked_not_trusted(sample_repo, agent_env):
    claim = {"tool_calls": [{"name": "finish", "arguments": {"summary": "All fixed!"}}]}
    with FakeGLM(turns=[claim, claim, claim], api_key=TEST_KEY) as server:
        result = run_cli(fix_args(sample_repo, server), agent_env)
        second_prompt = json.dumps(server.requests[1]["messages"])
    assert result.code == 1
    assert result.report["status"] == "unresolved"
    assert "target tests still failing" in second_prompt
    assert result.report["tests"]["after"]["targets"] == {TARGET: "failed"}


@pytest.mark.parametrize(
    ("flag", "value", "kind"),
    [("--max-turns", "2", "turns"), ("--max-tokens", "3000", "tokens"), ("--max-cost-usd", "0.0001", "cost"),
     ("--max-seconds", "2", "time")],
)
def test_each_budget_stops_cleanly_before_crossing(sample_repo, agent_env, flag, value, kind):
    look = {"reasoning": "look around", "tool_calls": [{"name": "view", "arguments": {"path": "shop/cart.py"}}],
            "delay": 1.2 if kind == "time" else 0}
    edit = {"tool_calls": [{"name": "edit", "arguments": {"path": "shop/cart.py", "old": BUGGY_LINE.strip(),
                                                          "new": "    return total * 0.9"}}]}
    with FakeGLM(turns=[edit] + [look] * 10, api_key=TEST_KEY) as server:
        result = run_cli(fix_args(sample_repo, server, flag, value), agent_env)
        calls = len(server.requests)
    assert result.code == 1, result.stderr
    report = result.report
    assert report["status"] == "budget_exhausted"
    assert report["stop_reason"].startswith(f"budget_{kind}")
    if kind == "turns":
        assert calls == 2 and report["turns"] == 2
    if kind == "tokens":
        assert report["usage"]["input_tokens"] + report["usage"]["output_tokens"] <= 3000
    if kind == "cost":
        assert report["cost"]["usd"] <= 0.0001
    # partial work is kept on the branch when there is some
    if calls >= 1:
        assert report["commit"] and "return total * 0.9" in report["patch"]


def test_bad_arguments_misses_and_escapes_become_observations(sample_repo, agent_env, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("secret outside the repo\n")
    turns = [
        {"tool_calls": [{"name": "view", "arguments": {"start": 3}}]},
        {"tool_calls": [{"name": "edit", "arguments": {"path": "shop/cart.py", "old": "return total - total*percent/10",
                                                       "new": "x"}}]},
        {"tool_calls": [{"name": "view", "arguments": {"path": "../outside.txt"}}]},
        {"tool_calls": [{"name": "view", "arguments": {"path": str(outside)}}]},
        {"tool_calls": [{"name": "edit", "arguments": {"path": "tests/test_cart.py", "old": "== 180.0",
                                                       "new": "== 100.0"}}]},
    ] + fixing_script()[2:]
    with FakeGLM(turns=turns, api_key=TEST_KEY) as server:
        result = run_cli(fix_args(sample_repo, server), agent_env)
    assert result.code == 0, result.stderr
    results = tool_results(result.report)
    texts = [r["content"] for r in results[:5]]
    assert not any(r["ok"] for r in results[:5])
    assert "path" in texts[0] and "invalid arguments" in texts[0]
    assert "return total - total * percent / 10" in texts[1]  # the nearest candidate is shown
    assert "outside" in texts[2] and "secret outside" not in texts[2]
    assert "absolute" in texts[3]
    assert "test file" in texts[4]
    assert "tests/test_cart.py" not in result.report["patch"]


def test_free_text_task_is_judged_by_the_reproduction_it_starts_with(sample_repo, agent_env):
    """Issue 16: a task without targets no longer resolves on "changed something, broke nothing"."""
    finish = {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}
    test = 'from shop.money import fmt\n\n\ndef test_thousands():\n    assert fmt(1234.5) == "1,234.50"\n'
    write = {"tool_calls": [{"name": "create", "arguments": {"path": "tests/test_money_thousands.py",
                                                           "content": test}}]}
    check = {"tool_calls": [{"name": "reproduce", "arguments": {"tests": [
        "tests/test_money_thousands.py::test_thousands"]}}]}
    fmt = {"tool_calls": [{"name": "edit", "arguments": {"path": "shop/money.py", "old": 'return f"{amount:.2f}"',
                                                         "new": 'return f"{amount:,.2f}"'}}]}
    with FakeGLM(turns=[finish, write, check, fmt, finish], api_key=TEST_KEY) as server:
        result = run_cli(fix_args(sample_repo, server, task="format amounts with thousands separators"), agent_env)
        second_prompt = json.dumps(server.requests[1]["messages"])
    assert result.code == 0, result.stderr
    report = result.report
    assert "no accepted reproduction yet" in second_prompt
    assert report["status"] == "resolved"
    assert report["tests"]["target"] == ["tests/test_money_thousands.py::test_thousands"]
    assert report["verdict"]["kind"] == "reproduction"
    assert report["branch"] == "agent/format-amounts-with-thousands-separators"


def test_options_come_from_agent_variables_too(sample_repo, agent_env):
    env = {**agent_env, "AGENT_TEST": TARGET, "AGENT_SANDBOX": "local", "AGENT_MAX_TURNS": "7",
           "AGENT_REPO": str(sample_repo)}
    with FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as server:
        result = run_cli(["fix", "the discount is ten times too large", "--base-url", server.base_url, "--json"],
                         {**env, "AGENT_BASE_URL": "http://127.0.0.1:9/unused"})  # the flag wins over the variable
    assert result.code == 0, result.stderr
    assert result.report["tests"]["target"] == [TARGET] and result.report["sandbox"] == "local"
