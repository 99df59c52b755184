"""Environment images against a real engine: built once through the host's pip config, then reused."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def make_project(root: Path) -> Path:
    """A src-layout project declaring `six`, with a dev requirements file that also installs itself."""
    (root / "src" / "tinyproj").mkdir(parents=True)
    (root / "src" / "tinyproj" / "__init__.py").write_text("import six\nVALUE = six.PY3\n")
    (root / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "tinyproj"\nversion = "0.1"\ndependencies = ["six"]\n# {uuid.uuid4()}\n')
    (root / "requirements-dev.txt").write_text("-e .\niniconfig\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_value.py").write_text(
        "import tinyproj\n\ndef test_value():\n    assert tinyproj.VALUE\n")
    return root


def test_environment_cache_miss_then_hit_and_repo_not_baked_in(base, tmp_path):
    from sandbox.docker import DockerSandbox
    from sandbox.engine import ensure_engine
    from sandbox.environment import ensure_environment

    repo = make_project(tmp_path / "proj")
    logs: list[str] = []
    tag = ensure_environment(repo, "3.11", [], log=logs.append)  # unique key: a real build (miss)
    try:
        assert any("building environment" in line for line in logs)
        hit_logs: list[str] = []
        assert ensure_environment(repo, "3.11", [], log=hit_logs.append) == tag
        assert not any("building" in line for line in hit_logs)

        with DockerSandbox(repo, image=tag) as box:  # network none: everything must already be there
            run = box.exec(["python", "-m", "pytest", "-q"], 60)
            pip = box.exec(["python", "-m", "pip", "list", "--format=freeze"], 30)
            baked = box.exec(["sh", "-c", "ls -d /build /opt/venv/lib/python3.11/site-packages/tinyproj*"], 10)
            where = box.exec(["python", "-c", "import tinyproj; print(tinyproj.__file__)"], 10)
        assert run.exit_code == 0 and "1 passed" in run.stdout, run.output
        names = {line.split("==")[0].lower() for line in pip.stdout.split()}
        assert {"six", "iniconfig", "pytest", "tinyproj"} <= names  # its metadata stays installed
        assert baked.stdout.split() == ["/opt/venv/lib/python3.11/site-packages/tinyproj-0.1.dist-info"]
        assert where.stdout.strip() == "/repo/src/tinyproj/__init__.py"  # its code comes from the worktree
    finally:
        ensure_engine().images.remove(tag, force=True)


def test_setup_commands_change_the_key_and_run_in_the_build(base, tmp_path):
    from sandbox.docker import DockerSandbox
    from sandbox.engine import ensure_engine
    from sandbox.environment import ensure_environment, environment_key

    repo = tmp_path / "plain"
    repo.mkdir()
    marker = uuid.uuid4().hex
    setup = [f"pip install -q six && echo {marker} > /opt/venv/marker"]
    assert environment_key(repo, setup, base) != environment_key(repo, [], base)
    tag = ensure_environment(repo, "3.11", setup, log=lambda _m: None)
    try:
        with DockerSandbox(repo, image=tag) as box:
            result = box.exec(["sh", "-c", "cat /opt/venv/marker && python -c 'import six'"], 20)
        assert result.exit_code == 0 and result.stdout.strip() == marker, result.output
    finally:
        ensure_engine().images.remove(tag, force=True)


def test_failed_setup_is_a_clear_error_and_leaves_no_container(base, tmp_path):
    from sandbox.base import SandboxError
    from sandbox.engine import ensure_engine
    from sandbox.environment import ensure_environment

    with pytest.raises(SandboxError, match="environment build failed: setup 'exit 7' exited 7"):
        ensure_environment(tmp_path, "3.11", ["exit 7"], log=lambda _m: None)
    name = f"agent-envbuild-.*-{os.getpid()}"
    leftovers = ensure_engine().containers.list(all=True, filters={"name": name})
    assert leftovers == []
