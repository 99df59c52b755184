"""Description-only eval tasks (issue 16): the oracle reproduces first, the runner grades the reproduction itself.

A tiny instance made here on the sample repo (served as a local git mirror), with the fields the bundled
sets gain: issue_statement (naming no test), reproduction_patch (only adds a test file) and REPRO_TESTS.
Real git, real pytest in the local sandbox, the oracle on loopback HTTP, `python -m evals.run` in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evals.instances import Instance, dump_instances
from evals.materialize import git as mgit
from evals.runner import RunConfig, grade, grade_reproduction
from evals.sample_repo import FIXED_LINE, TARGET, make_sample_repo
from tests.test_evals_pipeline import diff_of, shop_instance

REPRO_FILE = "tests/test_issue_discount.py"
REPRO_TEST = f"{REPRO_FILE}::test_ten_percent_leaves_ninety"
REPRO_TEXT = ("from shop.cart import apply_discount\n\n\n"
              "def test_ten_percent_leaves_ninety():\n    assert apply_discount(100.0, 10) == 90.0\n")


def new_file_diff(repo: Path, rel: str, text: str) -> str:
    """The diff that adds `rel` with `text` (the repository is left as it was)."""
    path = repo / rel
    path.write_text(text)
    try:
        mgit(repo, "add", "-N", rel)
        return mgit(repo, "diff")
    finally:
        mgit(repo, "reset", "-q", rel)
        path.unlink()


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    return make_sample_repo(tmp_path / "mirror")


@pytest.fixture
def instance(mirror: Path) -> Instance:
    return shop_instance(
        mirror, "shop__discount-description",
        issue_statement="A 10% discount takes off the whole price instead of a tenth of it.",
        reproduction_patch=new_file_diff(mirror, REPRO_FILE, REPRO_TEXT), REPRO_TESTS=[REPRO_TEST])


def cfg(tmp_path: Path, task: str = "description") -> RunConfig:
    return RunConfig(work=str(tmp_path / "work"), sandbox="local", test_timeout=120, task=task)


def test_eval_run_description_task_reproduces_first_and_is_graded_independently(instance, tmp_path, isolated):
    instances = tmp_path / "set.jsonl"
    dump_instances([instance], instances)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "evals.run", "--instances", str(instances), "--sandbox", "local", "--workers", "1",
            "--out", str(out), "--task", "description"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=400,
                          env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout
    [result] = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert result["resolved"] and result["status"] == "resolved" and result["task"] == "description"
    assert result["verdict"]["kind"] == "reproduction" and result["verdict"]["tests"] == [REPRO_TEST]
    assert result["reproduction_grade"] == {"ok": True, "tests": [REPRO_TEST], "fail_at_base": [REPRO_TEST],
                                            "pass_on_branch": [REPRO_TEST], "why": ""}
    assert result["grade"]["FAIL_TO_PASS"] == {TARGET: True}
    assert REPRO_FILE in result["model_patch"] and FIXED_LINE.strip() in result["model_patch"]
    # the agent was given the issue text alone: no test id
    log = (out / "work" / instance.instance_id / "agent.log").read_text()
    assert "--test" not in log.splitlines()[0]


def test_without_a_reproduction_patch_the_oracle_replays_the_test_patch(instance, mirror, tmp_path, isolated):
    """A hidden-test instance (tests only in test_patch) gives the agent no test id: it reproduces with the
    test patch, and grading resets the test patch's files before applying it (as SWE-bench does)."""
    from evals.runner import run_instance

    test_patch = diff_of(mirror, {"tests/test_money.py": ('    assert fmt(3) == "3.00"\n',
                                                           '    assert fmt(3) == "3.00"\n\n\n'
                                                           'def test_discount_half():\n'
                                                           '    from shop.cart import apply_discount\n'
                                                           '    assert apply_discount(10.0, 50) == 5.0\n')})
    hidden = Instance(**{**instance.__dict__, "test_patch": test_patch, "reproduction_patch": "", "REPRO_TESTS": [],
                         "FAIL_TO_PASS": ["tests/test_money.py::test_discount_half"]})
    result = run_instance(hidden.to_dict(), cfg(tmp_path).__dict__)
    assert result["error"] is None, result
    assert result["status"] == "resolved" and result["resolved"], result
    assert result["reproduction_grade"]["fail_at_base"] == ["tests/test_money.py::test_discount_half"]
    assert result["grade"].get("test_patch_applies") is not False and result["grade"]["FAIL_TO_PASS"] == {
        "tests/test_money.py::test_discount_half": True}


def test_the_grader_wants_a_branch_test_that_fails_at_base(instance, mirror, tmp_path, isolated):
    """Checked by running, not read from a report: a fix without a test, and a test that passes at base, fail."""
    config = cfg(tmp_path)
    no_test = grade_reproduction(instance, instance.patch, tmp_path / "g1", config)
    assert not no_test["ok"] and "adds no test" in no_test["why"]
    passing = REPRO_TEXT.replace("apply_discount(100.0, 10) == 90.0", "apply_discount(100.0, 0) == 100.0")
    weak = new_file_diff(mirror, REPRO_FILE, passing) + instance.patch
    graded = grade_reproduction(instance, weak, tmp_path / "g2", config)
    assert not graded["ok"] and graded["fail_at_base"] == [] and graded["pass_on_branch"] == [REPRO_TEST]
    good = grade_reproduction(instance, instance.reproduction_patch + instance.patch, tmp_path / "g3", config)
    assert good["ok"] and good["fail_at_base"] == [REPRO_TEST]
    assert grade(instance, instance.reproduction_patch + instance.patch, tmp_path / "g4", config)["resolved"]
