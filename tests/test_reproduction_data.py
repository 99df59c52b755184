"""The reproduction data of both instance sets keeps its rules: tests only added, no test named in the issue.

Whether each reproduction fails at base and passes with the gold patch needs the libraries and takes
minutes: evals.check_reproductions does that. These checks are structural and run on the data alone.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from evals.instances import BUNDLED, Instance, load_instances
from evals.reproductions import added_tests, addition_patch, structural_problems

DATA = Path(BUNDLED).parent
RECORDS = [json.loads(line) for name in ("bugs.jsonl", "real_repos.jsonl")
           for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("record", RECORDS, ids=[r["instance_id"] for r in RECORDS])
def test_instance_reproduction_keeps_the_rules(record):
    assert structural_problems(record) == []


def test_every_instance_has_a_reproduction():
    assert len(RECORDS) == 66  # 27 bundled, 39 real commits
    assert all(json.loads(r["REPRO_TESTS"]) for r in RECORDS)


def test_instances_load_with_the_new_fields():
    inst = load_instances(BUNDLED)[0]
    assert inst.issue_statement and inst.reproduction_patch.startswith("diff --git")
    assert inst.REPRO_TESTS and isinstance(inst.REPRO_TESTS, list)
    assert json.loads(inst.to_dict()["REPRO_TESTS"]) == inst.REPRO_TESTS
    old = Instance.from_dict({k: v for k, v in RECORDS[0].items() if k not in ("issue_statement", "REPRO_TESTS")})
    assert old.REPRO_TESTS == [] and old.issue_statement == ""


GOOD_PATCH = """diff --git a/tests/test_a.py b/tests/test_a.py
--- a/tests/test_a.py
+++ b/tests/test_a.py
@@ -1,2 +1,6 @@
 def test_old():
     assert f() == 1
+
+
+def test_new():
+    assert f(2) == 2
"""


def _record(**over):
    base = {"instance_id": "x", "issue_statement": "f(2) returns 3 instead of 2.",
            "reproduction_patch": GOOD_PATCH, "REPRO_TESTS": json.dumps(["tests/test_a.py::test_new"]),
            "FAIL_TO_PASS": json.dumps(["tests/test_a.py::test_old"]), "PASS_TO_PASS": "[]"}
    return {**base, **over}


def test_rules_accept_a_pure_test_addition():
    assert structural_problems(_record()) == []


@pytest.mark.parametrize(("change", "why"), [
    ({"reproduction_patch": GOOD_PATCH.replace("     assert f() == 1\n", "-    assert f() == 1\n+    assert 0\n")},
     "removes or changes lines"),
    ({"reproduction_patch": GOOD_PATCH.replace("tests/test_a.py", "pkg/core.py")}, "non-test file"),
    ({"issue_statement": "tests/test_a.py::test_old fails"}, "names the test"),
    ({"issue_statement": "test_a.py fails since the last release"}, "names the test"),
    ({"issue_statement": "see test_new"}, "names the test"),
    ({"REPRO_TESTS": json.dumps(["tests/test_a.py::test_missing"])}, "not a function the reproduction_patch adds"),
    ({"REPRO_TESTS": json.dumps(["tests/test_b.py::test_new"])}, "not in a file the reproduction_patch adds to"),
    ({"REPRO_TESTS": ["tests/test_a.py::test_new"]}, "not JSON-encoded"),
    ({"reproduction_patch": ""}, "missing reproduction_patch"),
])
def test_rules_reject_each_violation(change, why):
    problems = structural_problems(_record(**change))
    assert any(why in p for p in problems), problems


def test_addition_patch_appends_and_creates_then_leaves_the_tree_clean(tmp_path):
    git = ["git", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("def test_old():\n    assert True\n")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"], check=True)
    code = "def test_new():\n    assert 1 + 1 == 2\n"
    patch = addition_patch(tmp_path, {"tests/test_a.py": code, "tests/test_b.py": code})
    assert subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True).stdout == ""
    assert "new file mode" in patch and patch.count("+def test_new():") == 2
    subprocess.run([*git, "apply", "-"], input=patch, text=True, check=True)
    assert (tmp_path / "tests" / "test_a.py").read_text().endswith("\n\n\ndef test_new():\n    assert 1 + 1 == 2\n")
    assert added_tests("tests/test_b.py", code) == ["tests/test_b.py::test_new"]
