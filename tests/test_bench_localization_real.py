"""Commit selection and bug-state reproduction of the real-commit localization benchmark, on a made-up history."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from evals.bench_localization_real import reproduce, select_candidates

ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}


def commit(root: Path, message: str, files: dict[str, str]) -> str:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=ENV)
    subprocess.run(["git", "commit", "-qm", message], cwd=root, check=True, env=ENV)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, check=True, env=ENV, capture_output=True,
                          text=True).stdout.strip()


BUGGY = "def last(xs):\n    return xs[0]\n\n\ndef first(xs):\n    return xs[0]\n"
FIXED = "def last(xs):\n    return xs[-1]\n\n\ndef first(xs):\n    return xs[0]\n"
TESTS = "from pkg.core import first\n\n\ndef test_first():\n    assert first([1, 2]) == 1\n"
NEW_TEST = TESTS + "\n\nclass TestLast:\n    def test_last(self):\n        from pkg.core import last\n\n" \
                   "        assert last([1, 2]) == 2\n"


def make_history(root: Path) -> dict[str, str]:
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    shas = {"init": commit(root, "initial", {"pkg/__init__.py": "", "pkg/core.py": BUGGY, "pkg/util.py": "X = 1\n",
                                             "tests/test_core.py": TESTS})}
    shas["fix"] = commit(root, "Fix last() returning the first item (#3)",
                         {"pkg/core.py": FIXED, "tests/test_core.py": NEW_TEST, "CHANGES.txt": "fixed\n"})
    shas["docs"] = commit(root, "fix typo in docs", {"README.md": "hello\n"})
    shas["two"] = commit(root, "Bugfix across two modules", {
        "pkg/core.py": FIXED + "\n# two\n", "pkg/util.py": "X = 2\n",
        "tests/test_core.py": NEW_TEST + "\n\ndef test_x():\n    assert True\n"})
    shas["feature"] = commit(root, "Add middle()", {
        "pkg/core.py": FIXED + "\n\ndef middle(xs):\n    return xs[len(xs) // 2]\n",
        "tests/test_core.py": NEW_TEST + "\n\ndef test_middle():\n    assert True\n"})
    shas["notest"] = commit(root, "Fix util constant", {"pkg/util.py": "X = 3\n", "tests/test_core.py":
                            NEW_TEST + "\n\ndef test_middle():\n    assert True  # only a comment changes\n"})
    return shas


def test_selects_only_single_source_fixes_that_change_a_test(tmp_path: Path) -> None:
    shas = make_history(tmp_path / "repo")
    cands = select_candidates(tmp_path / "repo")
    assert [c.sha for c in cands] == [shas["fix"]]
    (cand,) = cands
    assert cand.parent == shas["init"]
    assert cand.fixed_file == "pkg/core.py"
    assert cand.tests == ["tests/test_core.py::TestLast::test_last"]
    assert cand.test_files == ["tests/test_core.py"]


@pytest.mark.slow  # three pytest subprocesses
def test_bare_mirror_and_bug_state_reproduction(tmp_path: Path) -> None:
    shas = make_history(tmp_path / "repo")
    subprocess.run(["git", "clone", "-q", "--bare", str(tmp_path / "repo"), str(tmp_path / "mirror.git")], check=True)
    work = tmp_path / "work"
    subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", str(tmp_path / "mirror.git"), str(work)],
                   check=True)
    (cand,) = select_candidates(tmp_path / "mirror.git")
    targets, traceback, why = reproduce(work, cand)
    assert why == ""
    assert targets == ["tests/test_core.py::TestLast::test_last"]
    assert "assert 1 == 2" in traceback
    # left at the bug state: parent's source, the commit's tests
    assert (work / "pkg/core.py").read_text() == BUGGY
    assert (work / "tests/test_core.py").read_text() == NEW_TEST
    assert shas["fix"] == cand.sha


def test_a_fix_cherry_picked_twice_counts_once(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    commit(root, "initial", {"pkg/core.py": BUGGY, "tests/test_core.py": TESTS})
    commit(root, "Fix last()", {"pkg/core.py": FIXED, "tests/test_core.py": NEW_TEST})
    commit(root, "revert", {"pkg/core.py": BUGGY, "tests/test_core.py": TESTS})
    again = commit(root, "Fix last()", {"pkg/core.py": FIXED, "tests/test_core.py": NEW_TEST})
    assert [c.sha for c in select_candidates(root)] == [again]


@pytest.mark.slow  # pytest subprocesses: selection, then the rebuild from the list
def test_an_exported_instance_list_is_rebuilt_and_scored_exactly(tmp_path: Path) -> None:
    """An --export line holds what --instances needs to rebuild the same bug state from the mirror, re-verify
    it and score it; a listed commit that no longer reproduces is dropped, not scored."""
    import json

    from evals.bench_localization_real import Instance, export_line, from_instances

    shas = make_history(tmp_path / "src")
    mirrors = tmp_path / "mirrors"
    subprocess.run(["git", "clone", "-q", "--bare", str(tmp_path / "src"), str(mirrors / "me+pkg" / "repo")],
                   check=True)
    work = tmp_path / "pick"
    subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", str(mirrors / "me+pkg" / "repo"), str(work)],
                   check=True)
    (cand,) = select_candidates(work)
    targets, traceback, _ = reproduce(work, cand)
    line = json.loads(json.dumps(export_line(Instance("me/pkg", cand, targets, traceback))))
    assert line == {"repo": "me/pkg", "commit": shas["fix"], "parent": shas["init"], "subject": cand.subject,
                    "fixed_file": "pkg/core.py", "test_files": ["tests/test_core.py"],
                    "targets": ["tests/test_core.py::TestLast::test_last"]}
    stale = {**line, "commit": shas["docs"], "parent": shas["fix"]}  # the bug is gone at that parent
    logs: list[str] = []
    (tmp_path / "tmp").mkdir()
    rows = from_instances([line, stale], mirrors, tmp_path / "tmp", tmp_path / "cache", log=logs.append)
    assert [r.cand.sha for r in rows] == [shas["fix"]]
    assert rows[0].result[1024] and rows[0].result[4096] and "assert 1 == 2" in rows[0].traceback
    assert any("does not reproduce as listed" in m and shas["docs"][:10] in m for m in logs), logs
