"""The real-repositories benchmark's pipeline on a made-up library: instance built from its fix commit,
`agent fix` through the CLI in setup (a) (a venv with the project installed editable), independent grading."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evals import bench_real_repos as bench
from evals.instances import Instance
from evals.real_instances import pick

ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
BUGGY = "def clamp(x, lo, hi):\n    return max(lo, min(x, lo))\n\n\ndef double(x):\n    return 2 * x\n"
FIXED = BUGGY.replace("min(x, lo)", "min(x, hi)")
TESTS = "from minilib.core import double\n\n\ndef test_double():\n    assert double(2) == 4\n"
NEW_TESTS = TESTS + "\n\ndef test_clamp():\n    from minilib.core import clamp\n\n    assert clamp(5, 0, 3) == 3\n"
PYPROJECT = ('[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
             '[project]\nname = "minilib"\nversion = "1.0"\n\n[tool.setuptools]\npackages = ["minilib"]\n')


def commit(root: Path, message: str, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=ENV)
    subprocess.run(["git", "commit", "-qm", message], cwd=root, check=True, env=ENV)


@pytest.mark.slow  # a venv, an editable install, `agent fix` and three pytest runs
def test_pipeline_setup_a_on_a_made_up_library(tmp_path: Path) -> None:
    mirror = tmp_path / "minilib"
    subprocess.run(["git", "init", "-q", "-b", "main", str(mirror)], check=True)
    commit(mirror, "initial", {"pyproject.toml": PYPROJECT, "minilib/__init__.py": "",
                               "minilib/core.py": BUGGY, "tests/test_core.py": TESTS})
    commit(mirror, "Fix clamp ignoring the upper bound", {"minilib/core.py": FIXED, "tests/test_core.py": NEW_TESTS})
    work = tmp_path / "pick"
    subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", str(mirror), str(work)], check=True)

    (record,) = pick(work, "minilib", per_repo=3, max_tries=5, log=lambda s: None)
    assert json.loads(record["FAIL_TO_PASS"]) == ["tests/test_core.py::test_clamp"]
    assert json.loads(record["PASS_TO_PASS"]) == ["tests/test_core.py::test_double"]
    assert record["properties"]["layout"] == "flat" and record["properties"]["namespace"] == []
    assert "min(x, hi)" in record["patch"] and "tests/" not in record["patch"]
    data = tmp_path / "set.jsonl"
    data.write_text(json.dumps(record) + "\n")

    opts = bench.Options(work=tmp_path / "bench", offline=True, agent_timeout=300)
    (loaded,) = bench.load(data, bench.find_mirrors([], [str(mirror)]))
    rows = bench.run([loaded], ["a"], opts, tmp_path / "results.jsonl")
    (row,) = rows
    assert (row["exit"], row["status"], row["grade"]) == (0, "resolved", True), row
    assert row["first_request_s"] is not None and row["first_request_s"] > 0
    text = bench.table(rows, "a")
    assert "resolved (exit 0, status resolved, independent grade passes): 1/1 = 100%" in text
    assert "false resolved (reported resolved, independent grade fails): 0" in text

    # the grader is not a rubber stamp: the user's checkout (the bug state) fails it
    inst = Instance.from_dict(loaded)
    repo = tmp_path / "user"
    bug_state = bench.user_checkout(inst, repo)
    ok, why = bench.grade_commit(repo, bug_state, bug_state, inst, opts.work / "venvs" / "minilib-a",
                                 tmp_path / "grade", opts)
    assert not ok and "test_clamp" in why


def test_pytest_starts_tells_a_venv_whose_pytest_cannot_run(tmp_path: Path) -> None:
    # the fallback to a newer pytest depends on this probe: the host's pytest starts, a venv without one does not
    assert bench._pytest_starts(Path(sys.executable))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "v")], check=True)
    assert not bench._pytest_starts(tmp_path / "v" / "bin" / "python")


def test_pytest_crasher_names_a_period_pin_that_crashes_todays_pytest(tmp_path: Path) -> None:
    """dateutil 2018's grading venv: py 1.5 from the dev pins, today's pytest: AttributeError: __spec__ at
    startup, which no pytest upgrade cures; the grader graded a correct fix as failing."""
    assert bench._pytest_crasher(Path(sys.executable)) == ""
    venv = tmp_path / "v"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "py==1.5.4"], check=True, capture_output=True)
    assert bench._pytest_crasher(python) == "py"
