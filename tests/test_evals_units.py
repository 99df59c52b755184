"""Evals, the parts: instance format, materialising from an sdist, mutations, oracle planning, metrics."""

from __future__ import annotations

import ast
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from evals.bugs.mutations import candidates, changes_code
from evals.instances import EnvironmentSetup, Instance, dump_instances, load_instances, patch_files
from evals.materialize import MaterializeError, apply_patch, git, materialize, materialize_source
from evals.metrics import summarize, summary_lines
from evals.oracle import OracleResponder, edit_for, parse_patch, plan_turns

GOLD = """diff --git a/pkg/core.py b/pkg/core.py
index 1111111..2222222 100644
--- a/pkg/core.py
+++ b/pkg/core.py
@@ -1,5 +1,5 @@
 def clamp(x, lo, hi):
-    if x < lo:
+    if x <= lo:
         return lo
     return x
""" + " \n"  # a blank context line is one space
CORE_BUGGY = ("def clamp(x, lo, hi):\n    if x < lo:\n        return lo\n    return x\n\n\n"
              "def other(x, lo):\n    if x < lo:\n        return 0\n")


def make_sdist(cache: Path, name: str = "tinypkg", version: str = "1.0", files: dict[str, str] | None = None) -> Path:
    """A real sdist archive (tar.gz, one top directory) in the download cache: no network needed."""
    cache.mkdir(parents=True, exist_ok=True)
    files = files or {"pyproject.toml": f'[project]\nname = "{name}"\nversion = "{version}"\n',
             "pkg/__init__.py": "", "pkg/core.py": CORE_BUGGY.replace("    if x < lo:\n        return lo",
                                                                       "    if x <= lo:\n        return lo"),
             "tests/test_core.py": "from pkg.core import clamp\n\n\ndef test_clamp():\n"
                                   "    assert clamp(1, 1, 3) == 1\n"}
    path = cache / f"{name}-{version}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for rel, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-{version}/{rel}")
            info.size, info.mtime = len(data), 1_000_000
            tar.addfile(info, io.BytesIO(data))
    return path


def make_instance(**changes) -> Instance:
    base = dict(instance_id="pkg__1", repo="pypi/tinypkg", base_commit="", problem_statement="clamp is wrong",
                FAIL_TO_PASS=["tests/test_core.py::test_clamp"], PASS_TO_PASS=["tests/test_core.py::test_other"],
                patch=GOLD, version="1.0",
                environment_setup=EnvironmentSetup(source="sdist", package="tinypkg", version="1.0"))
    base.update(changes)
    return Instance(**base)


# --- the instance format ---------------------------------------------------------------------------

def test_instances_round_trip_in_swe_bench_encoding(tmp_path):
    inst = make_instance()
    record = inst.to_dict()
    assert isinstance(record["FAIL_TO_PASS"], str) and json.loads(record["FAIL_TO_PASS"]) == inst.FAIL_TO_PASS
    assert record["environment_setup"]["package"] == "tinypkg"
    path = tmp_path / "set.jsonl"
    dump_instances([inst, make_instance(instance_id="pkg__2")], path)
    assert load_instances(path) == [inst, make_instance(instance_id="pkg__2")]
    assert [i.instance_id for i in load_instances(path, ["pkg__2"])] == ["pkg__2"]
    with pytest.raises(KeyError, match="pkg__9"):
        load_instances(path, ["pkg__9"])
    # plain lists (as some exports write them) are read too; unknown extra fields are ignored
    plain = {**record, "FAIL_TO_PASS": ["a.py::t"], "PASS_TO_PASS": [], "extra": 1}
    assert Instance.from_dict(plain).FAIL_TO_PASS == ["a.py::t"]


def test_patch_files_and_hidden_tests():
    assert patch_files(GOLD) == ["pkg/core.py"]
    assert make_instance().fixed_files == ["pkg/core.py"]
    assert not make_instance().hidden_tests and make_instance(test_patch=GOLD).hidden_tests


# --- materialising -------------------------------------------------------------------------------

def test_materialise_from_an_sdist_is_deterministic_and_checks_base_commit(tmp_path):
    cache = tmp_path / "cache"
    make_sdist(cache)
    bug = EnvironmentSetup(source="sdist", package="tinypkg", version="1.0")
    pristine = materialize_source(bug, tmp_path / "a", cache)
    again = materialize_source(bug, tmp_path / "b", cache)
    assert pristine == again and len(pristine) == 40
    # a bug patch on top gives another deterministic commit: the instance's base_commit
    reverse = GOLD.replace("-    if x < lo:", "+    if x << lo:").replace("+    if x <= lo:", "-    if x <= lo:") \
        .replace("+    if x << lo:", "+    if x < lo:")
    bug.bug_patch = reverse
    base = materialize_source(bug, tmp_path / "c", cache)
    assert base != pristine
    inst = make_instance(base_commit=base, environment_setup=bug)
    repo = materialize(inst, tmp_path / "d", cache)
    assert "if x < lo:" in (repo / "pkg/core.py").read_text()
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "log", "--format=%an %ad", "--date=iso").splitlines()[0].startswith("evals 2000-01-01")
    assert apply_patch(repo, GOLD) and "if x <= lo:" in (repo / "pkg/core.py").read_text()
    assert not apply_patch(repo, GOLD)  # already applied
    with pytest.raises(MaterializeError, match="base_commit"):
        materialize(make_instance(base_commit="0" * 40, environment_setup=bug), tmp_path / "e", cache)
    with pytest.raises(MaterializeError, match="exists"):
        materialize(inst, tmp_path / "d", cache)


@pytest.mark.slow
def test_materialise_downloads_a_real_sdist_into_the_cache(tmp_path):
    """PyPI is reachable here (the index configured for pip); inflection's sdist is ~12 kB."""
    env = EnvironmentSetup(source="sdist", package="inflection", version="0.5.1")
    first = materialize_source(env, tmp_path / "a", tmp_path / "cache")
    assert (tmp_path / "a" / "inflection" / "__init__.py").is_file()
    assert (tmp_path / "a" / "test_inflection.py").is_file()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["inflection-0.5.1.tar.gz"]
    assert materialize_source(env, tmp_path / "b", tmp_path / "cache") == first


def test_materialise_from_a_git_mirror(tmp_path):
    from evals.sample_repo import make_sample_repo

    mirror = make_sample_repo(tmp_path / "mirror")
    head = git(mirror, "rev-parse", "HEAD").strip()
    (mirror / "later.txt").write_text("later\n")
    git(mirror, "add", "later.txt")
    git(mirror, "commit", "-qm", "later")
    env = EnvironmentSetup(source="git", mirror=str(mirror))
    assert materialize_source(env, tmp_path / "clone", base_commit=head) == head
    assert not (tmp_path / "clone" / "later.txt").exists()


# --- mutations -----------------------------------------------------------------------------------

MODULE = '''
def f(items, n=3, strict=False, key=None):
    if key is None:
        return None
    total = 0
    if len(items) < n and strict:
        total = max(total, n)
    return items[1:] + [n - 1]
'''


def test_mutations_cover_each_kind_once_per_site():
    found = candidates(MODULE)
    kinds = {m.kind for m in found}
    assert kinds == {"wrong comparison", "off-by-one", "missing None check", "swapped arguments",
                     "wrong default", "wrong boolean operator"}
    text = {m.kind: m.apply(MODULE) for m in found}
    assert "len(items) <= n" in text["wrong comparison"]
    assert "if key is None" not in text["missing None check"]
    assert "max(n, total)" in text["swapped arguments"]
    assert "len(items) < n or strict" in text["wrong boolean operator"]
    for m in found:
        ast.parse(m.apply(MODULE))
        assert changes_code(MODULE, m.apply(MODULE))
    assert not changes_code("x = 'a < b'\n", "x = 'a <= b'\n")  # strings only: not a bug


# --- the oracle's plan -----------------------------------------------------------------------------

def test_oracle_edit_widens_context_until_unique(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "core.py").write_text(CORE_BUGGY)
    [fp] = parse_patch(GOLD)
    old, new = edit_for(fp.hunks[0], CORE_BUGGY)
    # "if x < lo:" occurs twice; one line of context after it is the least that is unique
    assert (old, new) == ("    if x < lo:\n        return lo", "    if x <= lo:\n        return lo")
    turns = plan_turns(GOLD, tmp_path)
    names = [t["tool_calls"][0]["name"] for t in turns]
    assert names == ["search", "view", "edit", "run_tests", "finish"]
    assert turns[0]["tool_calls"][0]["arguments"]["pattern"] == r"def clamp\b"
    responder = OracleResponder(turns)
    body = {"messages": [{"role": "system"}, {"role": "user"}, {"role": "assistant"}, {"role": "tool"}]}
    assert responder(body)["tool_calls"][0]["name"] == "view"
    body["messages"] += [{"role": "assistant"}] * 10
    assert responder(body)["tool_calls"][0]["name"] == "finish"


# --- metrics --------------------------------------------------------------------------------------

def test_summarize_aggregates_and_renders():
    def result(iid, resolved, tin, cached, high, mx, loc):
        return {"instance_id": iid, "resolved": resolved, "usage": {"input_tokens": tin, "cached_tokens": cached,
                "output_tokens": 10}, "cost": {"usd": 0.5, "rmb": 3.5}, "calls": {"high": high, "max": mx},
                "turns": 4, "wall_seconds": 10.0, "agent_wall_seconds": 8.0, "overhead_seconds": 1.0,
                "model_seconds": 2.0, "test_seconds": 5.0, "localization": loc, "first_touch_turn": 2}
    s = summarize([result("a", True, 100, 80, 3, 1, {"1024": True, "4096": True}),
                   result("b", False, 100, 20, 4, 0, {"1024": False, "4096": True}),
                   {"instance_id": "c", "resolved": False, "error": "boom", "wall_seconds": 1.0}])
    assert (s["instances"], s["resolved"], s["errors"]) == (3, 1, 1)
    assert s["cached_share"] == 0.5 and s["max_share"] == 0.125
    assert s["cost"] == {"usd": 1.0, "rmb": 7.0} and s["tokens"] == {"input": 200, "cached": 100, "output": 20}
    assert s["localization"]["1024"]["hits"] == 1 and s["localization"]["4096"]["share"] == 1.0
    text = "\n".join(summary_lines(s))
    assert "resolved 1/3" in text and "at 4096 tokens: 2/2" in text and "overhead" in text


def test_bundled_set_is_well_formed():
    from evals.instances import BUNDLED

    if not BUNDLED.is_file():
        pytest.skip("bundled set not generated")
    instances = load_instances(BUNDLED)
    assert len(instances) >= 20
    assert len({i.instance_id for i in instances}) == len(instances)
    for inst in instances:
        assert inst.FAIL_TO_PASS and inst.patch.startswith("diff --git a/") and len(inst.base_commit) == 40
        assert inst.environment_setup.source == "sdist" and inst.environment_setup.bug_patch
        assert not set(inst.FAIL_TO_PASS) & set(inst.PASS_TO_PASS)
        assert os.path.splitext(inst.fixed_files[0])[1] == ".py"


CLAMP = {
    "pyproject.toml": '[project]\nname = "clampy"\nversion = "2.0"\n',
    "clampy/__init__.py": "",
    "clampy/core.py": ("def clamp(x, lo=0, hi=10):\n    if x < lo:\n        return lo\n    if x > hi:\n"
                       "        return hi\n    return x\n\n\ndef between(x, lo, hi):\n"
                       "    return lo <= x and x <= hi\n\n\ndef inside(x):\n    return between(x, 0, 10)\n"),
    "tests/test_core.py": ("from clampy.core import clamp, inside\n\n\ndef test_low():\n    assert clamp(-1) == 0\n\n\n"
                           "def test_high():\n    assert clamp(11) == 10\n\n\n"
                           "def test_inside():\n    assert clamp(5) == 5\n\n\n"
                           "def test_between():\n    assert inside(5) and not inside(20) and not inside(-3)\n"),
}


@pytest.mark.slow
def test_generator_keeps_bugs_that_fail_tests_and_records_instances(tmp_path):
    """About a dozen real pytest runs on a tiny library built as an sdist in the cache (no network)."""
    import random

    from evals.bugs.generate import Library, bugs_for

    cache = tmp_path / "cache"
    make_sdist(cache, "clampy", "2.0", CLAMP)
    found = bugs_for(Library("clampy", "2.0", ("clampy",), "tests"), tmp_path / "work", cache, 2,
                     random.Random(1), log=lambda line: None)
    assert len(found) == 2 and len({i.instance_id.split("__")[1].rsplit("-", 1)[0] for i in found}) == 2
    for inst in found:
        assert inst.FAIL_TO_PASS and not set(inst.FAIL_TO_PASS) & set(inst.PASS_TO_PASS)
        assert inst.fixed_files == ["clampy/core.py"] and inst.patch.startswith("diff --git a/clampy/core.py")
        assert inst.FAIL_TO_PASS[0] in inst.problem_statement
        repo = materialize(inst, tmp_path / inst.instance_id, cache)  # checks base_commit
        buggy = (repo / "clampy/core.py").read_text()
        assert buggy != CLAMP["clampy/core.py"]
        assert apply_patch(repo, inst.patch) and (repo / "clampy/core.py").read_text() == CLAMP["clampy/core.py"]
