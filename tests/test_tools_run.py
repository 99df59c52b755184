"""The `run` tool: a bash command in the sandbox, its exit code and bounded output, a time cap."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from evals.fake_glm import FakeGLM
from evals.sample_repo import BUGGY_LINE, TARGET, git
from sandbox.local import LocalSandbox
from tests.conftest import TEST_KEY, run_cli
from tests.test_fix_docker import _docker_ready
from tools.base import ToolContext, ToolLimits, dispatch
from tools.registry import by_name, fix_tools


def _call(ctx: ToolContext, **args: object):
    return dispatch(by_name(fix_tools(shell=True)), "run", json.dumps(args), ctx)


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    (tmp_path / "data.txt").write_text("hello\n")
    return ToolContext(root=tmp_path, sandbox=LocalSandbox(tmp_path), test_timeout=5,
                       limits=ToolLimits(test_output_chars=600))


def test_exit_code_and_output(ctx):
    ok = _call(ctx, command="cat data.txt && echo err >&2")
    assert ok.ok and ok.text.startswith("exit 0") and "hello" in ok.text and "err" in ok.text
    failed = _call(ctx, command="exit 7")
    assert not failed.ok and failed.text.startswith("exit 7")


def test_output_is_bounded(ctx):
    observation = _call(ctx, command="python3 -c \"print('x' * 100000)\"")
    assert len(observation.text) < 1000 and "x" * 100 in observation.text


def test_time_is_capped_by_the_task(ctx):
    started = time.monotonic()
    observation = _call(ctx, command="sleep 60", timeout=600)
    assert time.monotonic() - started < 30
    assert not observation.ok and observation.text.startswith("timed out after 5s")


def test_no_sandbox_no_command(tmp_path):
    observation = _call(ToolContext(root=tmp_path), command="true")
    assert not observation.ok and "no sandbox" in observation.text


@pytest.mark.docker
@pytest.mark.slow
def test_a_test_rewritten_by_a_command_is_no_pass(sample_repo, agent_env):
    """What the tools refuse (editing the target test), a shell command can do: the verdict catches it."""
    why = _docker_ready()
    if why:
        pytest.skip(f"no Docker sandbox here: {why}")
    cheat = "sed -i 's/== 180.0/== 20.0/' tests/test_cart.py"
    turns = [{"tool_calls": [{"name": "run", "arguments": {"command": cheat}}]},
             {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]
    with FakeGLM(turns=turns, api_key=TEST_KEY) as server:
        result = run_cli(["fix", TARGET, "--repo", str(sample_repo), "--base-url", server.base_url, "--sandbox",
                          "docker", "--json", "--max-turns", "4"], agent_env, timeout=600)
        tools = [t["function"]["name"] for t in server.requests[0]["tools"]]
    assert "run" in tools
    assert result.code == 1, result.stderr
    report = result.report
    assert report["status"] != "resolved"
    assert BUGGY_LINE.strip() in git(sample_repo, "show", f"{report['branch']}:shop/cart.py")
    events = [json.loads(line) for line in (Path(report["run_dir"]) / "trajectory.jsonl").read_text().splitlines()]
    verdicts = [e["detail"] for e in events if e["event"] == "test_run" and e.get("purpose") == "verify"]
    assert verdicts and all("tests/test_cart.py" in v and "verification environment changed" in v
                            for v in verdicts)
