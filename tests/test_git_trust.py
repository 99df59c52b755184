"""A hostile repository against host git, through `agent fix` (issue 13, first attack).

Its conftest.py runs in the sandbox at reproduction: it makes `.evil/` a git dir whose config
runs a command (core.fsmonitor, or core.hooksPath with pre-commit/post-commit hooks) and points
the worktree's `.git` at it. No model is needed. The command touches a marker outside the
repository; after the run the marker must not exist. Docker: the pointer is a read-only mount,
so the rewrite is refused and the run goes on. Local: the rewrite lands, the next host git call
sees the pointer changed, git is not run and the run ends `error` (exit 3).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.fake_glm import FakeGLM
from evals.sample_repo import FILES, TARGET, fixing_script, git, make_sample_repo
from tests.conftest import TEST_KEY, run_cli

HOSTILE_CONFTEST = '''\
"""Plants a git dir and points the worktree's .git at it (what a hostile repository ships)."""
import os
from pathlib import Path

MARKER = "@MARKER@"
VARIANT = "@VARIANT@"


def _plant():
    root = Path(__file__).resolve().parent
    evil = root / ".evil"
    for sub in ("objects", "refs/heads", "hooks"):
        (evil / sub).mkdir(parents=True, exist_ok=True)
    (evil / "HEAD").write_text("ref: refs/heads/main\\n")
    line = "fsmonitor = touch " + MARKER if VARIANT == "fsmonitor" else "hooksPath = .evil/hooks"
    (evil / "config").write_text("[core]\\n\\trepositoryformatversion = 0\\n\\t" + line + "\\n")
    for name in ("pre-commit", "post-commit"):
        hook = evil / "hooks" / name
        hook.write_text("#!/bin/sh\\ntouch " + MARKER + "\\n")
        hook.chmod(0o755)
    (root / "staged-pointer").write_text("gitdir: .evil\\n")
    refused = []
    for how in (lambda: (root / ".git").write_text("gitdir: .evil\\n"),
                lambda: os.replace(root / "staged-pointer", root / ".git")):
        try:
            how()
            return
        except OSError as exc:
            refused.append(type(exc).__name__ + ": " + str(exc.strerror))
    (root / "plant-refused.txt").write_text("\\n".join(refused) + "\\n")


_plant()
'''


def hostile_repo(tmp_path: Path, variant: str) -> tuple[Path, Path]:
    marker = tmp_path / "outside" / "host-git-ran-the-planted-command"
    marker.parent.mkdir()
    conftest = HOSTILE_CONFTEST.replace("@MARKER@", str(marker)).replace("@VARIANT@", variant)
    return make_sample_repo(tmp_path / "hostile", {**FILES, "conftest.py": conftest}), marker


def fix(repo: Path, sandbox: str, env: dict[str, str], marker: Path) -> tuple[int, dict, str]:
    with FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as server:
        result = run_cli(["fix", TARGET, "--repo", str(repo), "--base-url", server.base_url, "--sandbox", sandbox,
                          "--json"], env, timeout=600)
    assert not marker.exists(), f"host git ran the command the sandbox planted ({result.stderr.strip()[-300:]})"
    return result.code, json.loads(result.stdout), result.stderr


@pytest.mark.parametrize("variant", ["fsmonitor", "hooks"])
def test_local_sandbox_host_git_never_follows_a_rewritten_pointer(tmp_path, agent_env, variant):
    repo, marker = hostile_repo(tmp_path, variant)
    code, report, stderr = fix(repo, "local", agent_env, marker)
    if report["status"] == "resolved":  # a local sandbox that isolates refused the write itself
        assert "plant-refused.txt" in report["patch"] and code == 0
    else:
        assert code == 3, stderr
        assert report["status"] == "error" and report["commit"] is None
        assert "the sandbox tampered with" in report["stop_reason"] and "/worktree/.git" in report["stop_reason"]
        assert "\n" not in report["stop_reason"]
    # the worktree and its admin dir are gone, removed without asking git to read the pointer
    assert not (Path(report["run_dir"]) / "worktree").exists()
    assert git(repo, "worktree", "list").count("\n") == 1
    assert not list((repo / ".git" / "worktrees").glob("*"))


def _docker_ready() -> str | None:
    from evals.demo import docker_ready

    ok, why = docker_ready()
    return None if ok else why


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("variant", ["fsmonitor", "hooks"])
def test_docker_sandbox_cannot_rewrite_the_pointer(tmp_path, agent_env, variant):
    why = _docker_ready()
    if why:
        pytest.skip(f"no Docker sandbox here: {why}")
    repo, marker = hostile_repo(tmp_path, variant)
    code, report, stderr = fix(repo, "docker", agent_env, marker)
    assert code == 0 and report["status"] == "resolved", stderr
    refused = git(repo, "show", f"{report['branch']}:plant-refused.txt")
    assert "Read-only file system" in refused and "Device or resource busy" in refused
