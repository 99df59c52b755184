"""Shared fixtures: isolated agent homes, sample repos made with real git, the CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from evals.sample_repo import make_sample_repo

TEST_KEY = "sk-test-7f3a9c1e5b2d4f60-secret"


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def report(self) -> dict[str, Any]:
        return json.loads(self.stdout)


@pytest.fixture
def agent_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "GLM_", "ZAI_"))}
    env.update({
        "AGENT_HOME": str(tmp_path / "agent-home"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "GLM_API_KEY": TEST_KEY,
        "NO_COLOR": "1",
        "COLUMNS": "200",
    })
    return env


@pytest.fixture
def sample_repo(tmp_path: Path) -> Path:
    return make_sample_repo(tmp_path / "shop")


@pytest.fixture(scope="module")
def base() -> str:
    """The Docker base image for Python 3.11 (a skip, which CI turns into a failure, without one)."""
    from sandbox.base import SandboxError
    from sandbox.base_image import base_image_status

    try:
        exists, tag = base_image_status("3.11")
    except SandboxError as exc:
        pytest.skip(f"no Docker engine reachable: {exc}")
    if not exists:
        pytest.skip(f"base image {tag} missing: run .ci/setup-docker.sh")
    return tag


def write_user_config(env: dict[str, str], text: str) -> Path:
    """The user's own config file (`$XDG_CONFIG_HOME/agent/config.toml`) for a CLI run with `env`."""
    path = Path(env["XDG_CONFIG_HOME"]) / "agent" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def run_cli(args: list[str], env: dict[str, str], timeout: float = 180, cwd: Path | None = None) -> CliResult:
    proc = subprocess.run([sys.executable, "-m", "agent.cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI a Docker test must run for real: a skip (no engine, no image) is turned into a failure."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") and item.get_closest_marker("docker") is not None:
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"Docker test skipped in CI (CI=true requires the engine and base image): {reason}"


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This process (the eval runner in-process) with a private agent home and no key or sandbox choice."""
    monkeypatch.setenv("AGENT_HOME", str(tmp_path / "agent-home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for var in ("GLM_API_KEY", "ZAI_API_KEY", "AGENT_SANDBOX", "AGENT_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def env_image(tmp_path_factory) -> str:
    """An environment image with pytest only, for Docker tests of a file (skips without an engine)."""
    from sandbox.base import SandboxError
    from sandbox.base_image import base_image_status
    from sandbox.environment import ensure_environment

    try:
        exists, tag = base_image_status("3.11")
    except SandboxError as exc:
        pytest.skip(f"no Docker engine reachable: {exc}")
    if not exists and os.geteuid() != 0:
        pytest.skip(f"base image {tag} missing and building it needs root: run .ci/setup-docker.sh")
    empty = tmp_path_factory.mktemp("emptyrepo")  # no dependency files: a venv with pytest only
    return ensure_environment(empty, "3.11", [], log=lambda _m: None)
