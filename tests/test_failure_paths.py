"""Failure paths through the public CLI: each error said once, early, and nothing left behind."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from evals.fake_glm import FakeGLM
from evals.sample_repo import TARGET, fixing_script
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
