"""Review runs the change's tests only behind a read-only mount: findings checked by running something."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.fake_glm import FakeGLM
from evals.sample_repo import git
from tests.conftest import TEST_KEY, run_cli
from tests.test_fix_docker import _docker_ready
from tests.test_review import FINISH, add_feature, comment, review_args, state

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PROBE = (
    "from pathlib import Path\n\n"
    "from shop.cart import average\n\n\n"
    "def test_average_of_nothing():\n"
    "    assert average([]) == 0.0\n\n\n"
    "def test_writes_into_the_repo():\n"
    "    Path('written-by-review.txt').write_text('x')\n"
)


def test_review_runs_tests_read_only_in_docker(sample_repo, agent_env):
    why = _docker_ready()
    if why:
        pytest.skip(f"no Docker sandbox here: {why}")
    from sandbox.environment import ensure_environment

    ensure_environment(sample_repo, "3.11", [], log=lambda s: None)  # built from trusted base, as fix would
    line = add_feature(sample_repo)
    (sample_repo / "tests" / "test_average.py").write_text(PROBE)
    git(sample_repo, "add", "-A")
    git(sample_repo, "commit", "-q", "-m", "tests for average")
    before = state(sample_repo)
    run = {"tool_calls": [{"name": "run_tests", "arguments": {"tests": ["tests/test_average.py"]}}]}
    edit = {"tool_calls": [{"name": "edit", "arguments": {"path": "shop/cart.py", "old": "len(prices)", "new": "1"}}]}
    turns = [run, edit, comment("shop/cart.py", line, "average([]) raises ZeroDivisionError (confirmed by "
                                                       "tests/test_average.py::test_average_of_nothing)."), FINISH]
    with FakeGLM(turns=turns, api_key=TEST_KEY) as server:
        args = [a for a in review_args(sample_repo, server) if a not in ("--sandbox", "local")]
        result = run_cli([*args, "--sandbox", "docker"], agent_env, timeout=600)
        offered = [t["function"]["name"] for t in server.requests[0]["tools"]]
    assert result.code == 0, result.stderr
    report = result.report
    assert report["sandbox"] == "docker"
    assert offered == ["search", "view", "outline", "run_tests", "run", "comment", "finish"]
    results = [e for e in map(json.loads, (Path(report["run_dir"]) / "trajectory.jsonl").read_text().splitlines())
               if e["event"] == "tool_result"]
    outcomes = results[0]["data"]["run"]["outcomes"]
    assert outcomes["tests/test_average.py::test_average_of_nothing"] == "failed"  # the finding, confirmed
    assert outcomes["tests/test_average.py::test_writes_into_the_repo"] == "failed"  # the mount is read-only
    assert "Read-only file system" in results[0]["content"] or "Read-only" in json.dumps(results[0])
    assert "unknown tool" in results[1]["content"]  # no edit tool in review mode
    assert len(report["comments"]) == 1 and report["read_only"]["unchanged"]
    assert state(sample_repo) == before


def test_review_without_docker_reads_but_does_not_run(sample_repo, agent_env):
    add_feature(sample_repo)
    with FakeGLM(turns=[FINISH], api_key=TEST_KEY) as server:
        result = run_cli(review_args(sample_repo, server), agent_env)
        offered = [t["function"]["name"] for t in server.requests[0]["tools"]]
    assert result.code == 0, result.stderr
    assert "run_tests" not in offered and result.report["sandbox"] == "none"
    assert any("tests not run" in note for note in result.report["notes"])
