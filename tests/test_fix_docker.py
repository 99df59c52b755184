"""`agent fix --sandbox docker` end to end, and Ctrl-C during a run (local sandbox)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evals.fake_glm import FakeGLM
from evals.sample_repo import BUGGY_LINE, TARGET, fixing_script, git
from tests.conftest import TEST_KEY, run_cli


def _docker_ready() -> str | None:
    try:
        from evals.demo import docker_ready
    except ImportError as exc:  # pragma: no cover
        return str(exc)
    ok, why = docker_ready()
    return None if ok else why


@pytest.mark.docker
@pytest.mark.slow
def test_fix_in_the_docker_sandbox(sample_repo, agent_env):
    why = _docker_ready()
    if why:
        pytest.skip(f"no Docker sandbox here: {why}")
    with FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as server:
        result = run_cli(["fix", TARGET, "--repo", str(sample_repo), "--base-url", server.base_url, "--sandbox",
                          "docker", "--json"], agent_env, timeout=600)
    assert result.code == 0, result.stderr
    report = result.report
    assert report["status"] == "resolved" and report["sandbox"] == "docker"
    assert report["tests"]["after"]["targets"] == {TARGET: "passed"}
    # the worktree is released once committed (the container wrote nothing it could not remove)
    assert not (Path(report["run_dir"]) / "worktree").exists()
    assert git(sample_repo, "worktree", "list").count("\n") == 1
    # no container is left behind: none whose owner (the agent process, now ended) is gone
    import docker

    from sandbox.engine import LABEL, LABEL_PID

    def owner_alive(container) -> bool:
        return Path(f"/proc/{container.labels.get(LABEL_PID, '0')}").exists()

    containers = docker.from_env().containers.list(all=True, filters={"label": LABEL})
    assert not [c.name for c in containers if not owner_alive(c)]


def test_ctrl_c_commits_partial_work_and_exits_130(sample_repo, agent_env):
    edit = {"tool_calls": [{"name": "edit", "arguments": {"path": "shop/cart.py", "old": BUGGY_LINE.strip(),
                                                          "new": "    return total * 0.9  # partial"}}]}
    slow = {"content": "", "delay": 30, "tool_calls": [{"name": "view", "arguments": {"path": "shop/cart.py"}}]}
    with FakeGLM(turns=[edit, slow], api_key=TEST_KEY) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "fix", TARGET, "--repo", str(sample_repo), "--base-url",
             server.base_url, "--sandbox", "local", "--json"],
            env=agent_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while len(server.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(server.requests) == 2, "the second model call never started"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    report = json.loads(stdout)
    assert report["stop_reason"] == "interrupted by the user"
    assert report["commit"] and "# partial" in report["patch"]
    assert "# partial" in git(sample_repo, "show", f"{report['branch']}:shop/cart.py")
    assert (Path(report["run_dir"]) / "trajectory.jsonl").read_text().splitlines()[-1].count('"stop"')


def test_demo_runs_without_a_key(agent_env):
    env = {k: v for k, v in agent_env.items() if k not in ("GLM_API_KEY", "ZAI_API_KEY")}
    result = run_cli(["demo", "--sandbox", "local", "--json"], env)
    assert result.code == 0, result.stderr
    assert result.report["status"] == "resolved"
    assert "/ 100" in result.report["patch"]
