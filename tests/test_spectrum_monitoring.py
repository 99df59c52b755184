"""The sys.monitoring tracer (Python 3.12+): the repository's own 3.12+ venv runs the traced rerun in a real
local sandbox, and the rule reached through a string-keyed registry is still found, by that path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.spectrum import executed_definitions
from evals.sample_repo import make_sample_repo
from sandbox.local import LocalSandbox
from sandbox.pytest_runs import run_pytest
from tests.test_spectrum import COMMAND, FILES, TARGET

pytestmark = pytest.mark.slow  # a venv and a pytest install


def python_312() -> str | None:
    """A working interpreter with sys.monitoring: python3.12+ on PATH, else one under pyenv's versions."""
    names = [shutil.which(f"python3.{minor}") for minor in range(12, 16)]
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found = [*names, *(str(p) for p in sorted(pyenv.glob("3.1[2-9]*/bin/python")))]
    check = "import sys; sys.exit(not hasattr(sys, 'monitoring'))"
    for exe in filter(None, found):  # a pyenv shim exists on PATH even when that version is not selected
        if subprocess.run([exe, "-c", check], capture_output=True).returncode == 0:
            return exe
    return None


def test_the_sys_monitoring_path_finds_the_registered_rule(tmp_path: Path) -> None:
    exe = python_312()
    if exe is None:
        pytest.skip("no Python >= 3.12 interpreter on this machine (PATH or pyenv)")
    root = make_sample_repo(tmp_path / "repo", {**FILES, ".gitignore": ".venv/\n"})
    venv = root / ".venv"
    subprocess.run([exe, "-m", "venv", str(venv)], check=True, capture_output=True)
    install = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "pytest"],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]

    sandbox = LocalSandbox(root)
    version = sandbox.exec(["python", "-c", "import sys; print(sys.version_info[:2] >= (3, 12))"], 60)
    assert version.stdout.strip() == "True", (sandbox.python, version.output)  # the repo's venv, not ours
    baseline = run_pytest(sandbox, ["tests/test_lint.py"], COMMAND, 120)
    assert baseline.outcomes[TARGET] == "failed", baseline.output
    logs: list[str] = []
    ranked = executed_definitions(sandbox, baseline, [TARGET], COMMAND, 120, logs.append)
    assert ranked, logs
    assert "via sys.monitoring" in logs[-1], logs
    assert (ranked[0].path, ranked[0].name) == ("linty/rules/spacing.py", "trailing")
    assert "linty/core.py" in {e.path for e in ranked}  # `lint`, run by every test, ranks below
    assert "linty/rules/naming.py" not in {e.path for e in ranked}
    assert not any(".venv" in e.path or e.path.startswith("tests/") for e in ranked)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="this interpreter has sys.monitoring")
def test_an_older_python_traces_with_settrace(tmp_path: Path) -> None:
    root = make_sample_repo(tmp_path / "repo", FILES)
    sandbox = LocalSandbox(root, python=sys.executable)
    baseline = run_pytest(sandbox, ["tests/test_lint.py"], COMMAND, 120)
    logs: list[str] = []
    ranked = executed_definitions(sandbox, baseline, [TARGET], COMMAND, 120, logs.append)
    assert ranked and "via settrace" in logs[-1], logs
    assert (ranked[0].path, ranked[0].name) == ("linty/rules/spacing.py", "trailing")
