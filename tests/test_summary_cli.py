"""`agent summary` prints the summary exactly as `fix` puts it in the prompt."""

from __future__ import annotations

from agent.prompting import render
from evals.fake_glm import FakeGLM
from evals.sample_repo import TARGET, fixing_script
from tests.conftest import TEST_KEY, run_cli


def test_summary_command_matches_the_prompt_of_fix(sample_repo, agent_env):
    with FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as server:
        fixed = run_cli(["fix", TARGET, "--repo", str(sample_repo), "--base-url", server.base_url, "--sandbox",
                         "local", "--json"], agent_env)
        system, user = server.requests[0]["messages"][:2]
    assert fixed.code == 0, fixed.stderr
    shown = run_cli(["summary", "--repo", str(sample_repo), "--test", TARGET, "--run", "--sandbox", "local"],
                    agent_env)
    assert shown.code == 0, shown.stderr
    repo_block = system["content"][len(render("system.md")):]  # the system prompt, then the repo-wide part
    assert repo_block.strip() and shown.stdout.startswith(repo_block)
    task_part = shown.stdout[len(repo_block) + 1:]  # then the task-scoped part opens the task message
    assert "Task scope" in task_part and user["content"].startswith(task_part.rstrip("\n"))
    assert "shop/cart.py" in shown.stdout and "apply_discount" in shown.stdout
    again = run_cli(["summary", "--repo", str(sample_repo), "--test", TARGET, "--run", "--sandbox", "local"],
                    agent_env)
    assert again.stdout == shown.stdout  # warm cache, same bytes


def test_summary_on_a_directory_that_is_not_a_repo(tmp_path, agent_env):
    result = run_cli(["summary", "--repo", str(tmp_path)], agent_env)
    assert result.code == 2 and "not a git repository" in result.stderr
