"""`agent review` on base..head: the CLI in a subprocess, a scripted model, real git; read-only checked."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from agent.review import ReadOnlyViolation, ReviewOptions, parse_diff, repo_state, run_review, state_changes
from evals.fake_glm import FakeGLM
from evals.sample_repo import git
from tests.conftest import TEST_KEY, run_cli

NEW_CODE = ('\n\ndef average(prices: list[float]) -> float:\n'
            '    """Mean price."""\n'
            '    return sum(prices) / len(prices)\n')


def add_feature(repo: Path, branch: str = "feature") -> int:
    """Commit a change with a bug on a branch; returns the head-side line of the buggy line."""
    git(repo, "checkout", "-q", "-b", branch)
    cart = repo / "shop" / "cart.py"
    cart.write_text(cart.read_text() + NEW_CODE)
    git(repo, "commit", "-q", "-am", "average price")
    return cart.read_text().splitlines().index("    return sum(prices) / len(prices)") + 1


def state(repo: Path) -> tuple:
    index = hashlib.sha256((repo / ".git" / "index").read_bytes()).hexdigest()
    files = {p.relative_to(repo).as_posix(): p.read_bytes() for p in repo.rglob("*")
             if p.is_file() and ".git" not in p.relative_to(repo).parts}
    return (git(repo, "rev-parse", "HEAD"), git(repo, "for-each-ref"), git(repo, "status", "--porcelain"),
            index, files, sorted(p.name for p in (repo / ".git").iterdir()))


def review_args(repo: Path, server: FakeGLM, *extra: str) -> list[str]:
    return ["review", "--repo", str(repo), "--base", "main", "--base-url", server.base_url, "--sandbox", "local",
            "--json", *extra]


def comment(path: str, line: int, body: str) -> dict:
    return {"tool_calls": [{"name": "comment", "arguments": {"path": path, "line": line, "body": body}}]}


FINISH = {"tool_calls": [{"name": "finish", "arguments": {"summary": "Checked the new function."}}]}
EMPTY = "average([]) divides by zero: an empty cart raises ZeroDivisionError; return 0.0 for an empty list."


def tool_results(report: dict) -> list[dict]:
    lines = (Path(report["run_dir"]) / "trajectory.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == "tool_result"]


def test_review_anchors_findings_on_added_lines(sample_repo, agent_env):
    line = add_feature(sample_repo)
    before = state(sample_repo)
    turns = [{"tool_calls": [{"name": "view", "arguments": {"path": "shop/cart.py"}}]},
             comment("shop/cart.py", line, EMPTY),
             comment("shop/cart.py", 6, "cart_total ignores negative prices (old code, outside the diff)."),
             FINISH]
    with FakeGLM(turns=turns, api_key=TEST_KEY) as server:
        result = run_cli(review_args(sample_repo, server), agent_env)
        first = server.requests[0]
    assert result.code == 0, result.stderr
    report = result.report
    assert report["status"] == "reviewed"
    assert report["comments"] == [{"path": "shop/cart.py", "line": line, "body": EMPTY}]
    assert report["unanchored"][0]["line"] == 6 and "`shop/cart.py` line 6" in report["body"]
    assert report["summary"] == "Checked the new function."
    assert report["read_only"] == {"unchanged": True, "changed": []}
    assert report["usage"]["input_tokens"] > 0 and report["cost"]["usd"] > 0
    assert (Path(report["run_dir"]) / "report.json").is_file()
    assert not (Path(report["run_dir"]) / "head").exists()
    # the model got only read-only tools, and the diff with head-side line numbers
    assert sorted(t["function"]["name"] for t in first["tools"]) == ["comment", "finish", "outline", "search", "view"]
    prompt = first["messages"][1]["content"]
    assert f"{line:>5} +    return sum(prices) / len(prices)" in prompt and "shop/cart.py (modified)" in prompt
    assert state(sample_repo) == before


def test_model_asking_to_edit_anyway_changes_nothing(sample_repo, agent_env, tmp_path):
    line = add_feature(sample_repo)
    cart = sample_repo / "shop" / "cart.py"
    cart.write_text(cart.read_text() + "# uncommitted user work\n")  # head is read from git, not from here
    (sample_repo / "notes.txt").write_text("untracked\n")
    before = state(sample_repo)
    turns = [
        {"tool_calls": [{"name": "edit", "arguments": {"path": "shop/cart.py", "old": "len(prices)",
                                                       "new": "max(len(prices), 1)"}}]},
        {"tool_calls": [{"name": "create", "arguments": {"path": "evil.py", "content": "x = 1\n"}}]},
        {"tool_calls": [{"name": "run_tests", "arguments": {"tests": ["tests/test_cart.py"]}}]},
        {"tool_calls": [{"name": "view", "arguments": {"path": "../../outside.txt"}}]},
        {"tool_calls": [{"name": "view", "arguments": {"path": "shop/cart.py"}}]},
        comment("shop/cart.py", line, EMPTY), FINISH]
    with FakeGLM(turns=turns, api_key=TEST_KEY) as server:
        result = run_cli(["review", "--repo", str(sample_repo), "--base", "main", "--base-url", server.base_url,
                          "--sandbox", "local", "--json"], agent_env)
    assert result.code == 0, result.stderr
    results = tool_results(result.report)
    for index, name in enumerate(("edit", "create", "run_tests")):
        assert not results[index]["ok"] and f"unknown tool '{name}'" in results[index]["content"]
    assert not results[3]["ok"] and "outside" in results[3]["content"]
    assert "len(prices)" in results[4]["content"] and "uncommitted user work" not in results[4]["content"]
    assert state(sample_repo) == before
    assert cart.read_text().endswith("# uncommitted user work\n") and not (sample_repo / "evil.py").exists()


def test_no_finding_means_nothing_and_max_findings_is_respected(sample_repo, agent_env):
    line = add_feature(sample_repo)
    with FakeGLM(turns=[FINISH], api_key=TEST_KEY) as server:
        quiet = run_cli(review_args(sample_repo, server), agent_env)
    assert quiet.code == 0 and quiet.report["comments"] == [] and quiet.report["unanchored"] == []
    assert quiet.report["body"] == ""
    turns = [comment("shop/cart.py", line, EMPTY),
             comment("shop/cart.py", line - 2, "The docstring should say what happens for an empty list."),
             FINISH]
    with FakeGLM(turns=turns, api_key=TEST_KEY) as server:
        capped = run_cli(review_args(sample_repo, server, "--max-findings", "1"), agent_env)
    assert capped.code == 0, capped.stderr
    assert capped.report["comments"] == [{"path": "shop/cart.py", "line": line, "body": EMPTY}]
    refused = tool_results(capped.report)[1]
    assert not refused["ok"] and "at most 1 findings" in refused["content"]


def test_earlier_findings_are_not_repeated(sample_repo, agent_env, monkeypatch):
    line = add_feature(sample_repo)
    for key, value in agent_env.items():
        monkeypatch.setenv(key, value)
    prior = [{"path": "shop/cart.py", "line": line, "body": EMPTY}]
    reworded = "average([]) divides by zero: an empty cart raises ZeroDivisionError; return 0.0 for empty lists."
    with FakeGLM(turns=[comment("shop/cart.py", line + 0, reworded), FINISH], api_key=TEST_KEY) as server:
        report, code = run_review(sample_repo, "main", "feature", options=ReviewOptions(
            prior_comments=prior, overrides={"model.base_url": server.base_url, "sandbox.kind": "local"}))
    assert code == 0
    assert report["comments"] == [] and report["unanchored"] == [] and report["repeats_suppressed"] == 1


def test_a_change_to_the_repository_fails_loudly(sample_repo, agent_env, monkeypatch):
    add_feature(sample_repo)
    for key, value in agent_env.items():
        monkeypatch.setenv(key, value)

    def sneaky(body: dict) -> dict:  # stands in for any bug that would write to the user's repo
        git(sample_repo, "tag", "sneaky")
        return FINISH

    with FakeGLM(turns=[sneaky], api_key=TEST_KEY) as server:
        with pytest.raises(ReadOnlyViolation, match="changed refs"):
            run_review(sample_repo, "main", "feature",
                       options=ReviewOptions(overrides={"model.base_url": server.base_url, "sandbox.kind": "local"}))
    report = json.loads(next(Path(agent_env["AGENT_HOME"]).glob("runs/*/report.json")).read_text())
    assert report["status"] == "error" and report["read_only"]["changed"] == ["refs"]


def test_state_check_sees_each_kind_of_change(sample_repo):
    before = repo_state(sample_repo)
    (sample_repo / "shop" / "money.py").write_text("changed\n")
    assert state_changes(before, repo_state(sample_repo)) == ["the working tree"]
    git(sample_repo, "add", "shop/money.py")
    assert state_changes(before, repo_state(sample_repo)) == ["the index", "the working tree"]


def test_diff_parsing_finds_added_lines_renames_and_deletions():
    diff = ("diff --git a/a.py b/a.py\nindex 1..2 100644\n--- a/a.py\n+++ b/a.py\n@@ -1,3 +1,4 @@\n x\n-y\n+z\n+w\n q\n"
            "diff --git a/old.py b/new.py\nsimilarity index 90%\nrename from old.py\nrename to new.py\n"
            "--- a/old.py\n+++ b/new.py\n@@ -10,2 +10,2 @@\n k\n-l\n+m\n"
            "diff --git a/gone.py b/gone.py\ndeleted file mode 100644\n--- a/gone.py\n+++ /dev/null\n"
            "@@ -1 +0,0 @@\n-v\n")
    files = {f.path: f for f in parse_diff(diff)}
    assert files["a.py"].added == {2, 3} and files["a.py"].status == "modified"
    assert files["new.py"].added == {11} and files["new.py"].old_path == "old.py"
    assert files["gone.py"].status == "deleted" and files["gone.py"].added == set()
