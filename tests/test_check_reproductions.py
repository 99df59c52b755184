"""check_reproductions on a VCS-versioned project whose package imports its generated `_version.py`
(humanize does): a fresh checkout lacks that git-ignored file, so without it every test errored at
import and no reproduction could be seen to fail at base or pass with the gold patch."""

from __future__ import annotations

import json
import sys

from evals.check_reproductions import check
from evals.reproductions import addition_patch
from evals.sample_repo import BUGGY_LINE, FIXED_LINE, TARGET, git
from tests.test_version_file import scm_repo


def test_a_project_importing_its_generated_version_file_is_checked(tmp_path):
    repo = scm_repo(tmp_path, "shop/_version.py", {".gitignore": "shop/_version.py\n"})
    (repo / "shop" / "cart.py").write_text((repo / "shop" / "cart.py").read_text().replace(BUGGY_LINE, FIXED_LINE))
    gold = git(repo, "diff")
    git(repo, "checkout", "-q", "--", ".")
    repro = addition_patch(repo, {"tests/test_cart.py": "def test_quarter_off():\n"
                                                        "    assert apply_discount(100.0, 25) == 75.0\n"})
    record = {"instance_id": "shop-1", "repo": "dev/shop", "base_commit": git(repo, "rev-parse", "HEAD").strip(),
              "problem_statement": "", "patch": gold, "test_patch": "",
              "FAIL_TO_PASS": json.dumps([TARGET]), "PASS_TO_PASS": "[]",
              "environment_setup": {"source": "git", "mirror": str(repo)},
              "issue_statement": "apply_discount(100.0, 25) returns -150.0, expected 75.0.",
              "reproduction_patch": repro, "REPRO_TESTS": json.dumps(["tests/test_cart.py::test_quarter_off"])}
    row = check(record, tmp_path / "work", sys.executable)
    assert (row.fails_at_base, row.passes_with_gold, row.f2p_with_gold, row.note) == ("yes", "yes", "yes", "")
