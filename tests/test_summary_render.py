"""Rendering: budgets, seeded ranking, the two-part layout, byte-identical output across hash seeds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.summary import summary_for
from agent.summary.graph import build_graph, pagerank
from agent.summary.index import RepoIndex
from agent.summary.render import render_summary
from agent.summary.scope import compute_scope
from agent.tokens import rough_tokens as estimate_tokens


def make_repo(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, env=env, capture_output=True)
    return root


def corpus() -> dict[str, str]:
    """A hub module everyone uses, two feature areas, and tests."""
    util = "def log(msg):\n    pass\n\ndef slugify(text):\n    return text\n\nclass Base:\n    pass\n"
    files = {"core/util.py": util}
    for area in ("billing", "search"):
        for i in range(8):
            files[f"{area}/m{i}.py"] = (
                f"from core.util import log, Base\nfrom {area}.m{(i + 1) % 8} import {area}_step{(i + 1) % 8}\n\n"
                f"class {area.title()}Thing{i}(Base):\n    def run_{area}_{i}(self, value):\n"
                f"        log(value)\n        return {area}_step{(i + 1) % 8}(value)\n\n"
                f"def {area}_step{i}(value):\n    return value + {i}\n")
    files["tests/test_billing.py"] = ("from billing.m3 import billing_step3\n\n\ndef test_step():\n"
                                      "    assert billing_step3(1) == 5\n")
    return files


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "repo", corpus())


def test_ranking_prefers_the_seeded_area(repo, tmp_path):
    index = RepoIndex.build(repo, cache_dir=tmp_path / "c", workers=1)
    defs = {p: [d[0] for d in f.defs] for p, f in index.files.items()}
    graph = build_graph(defs, index.refs())
    glob = pagerank(graph)
    assert graph.nodes[max(range(len(glob)), key=glob.__getitem__)] == "core/util.py"
    personal = pagerank(graph, {"billing/m3.py": 1.0}, damping=0.6)
    rank = dict(zip(graph.nodes, personal, strict=True))
    billing = [rank[f"billing/m{i}.py"] for i in range(8)]
    search = [rank[f"search/m{i}.py"] for i in range(8)]
    assert min(billing) > max(search)
    assert rank["billing/m4.py"] > rank["billing/m2.py"]  # m3 calls m4's function


def test_summary_details_seeds_and_fits_every_budget(repo, tmp_path):
    index = RepoIndex.build(repo, cache_dir=tmp_path / "c", workers=1)
    scope = compute_scope(repo, index, ["tests/test_billing.py::test_step"], None, [], "")
    for tokens in (0, 20, 64, 150, 300, 600, 1200, 5000):
        summary = render_summary(index, scope, tokens)
        assert estimate_tokens(summary.text) <= tokens, tokens
    big = render_summary(index, scope, 1200)
    assert big.text == big.repo_part + big.task_part
    assert big.repo_part.startswith("# Repository map\n") and big.task_part.startswith("\n# Task scope\n")
    assert "## billing/m3.py\n" in big.task_part
    assert "    9 def billing_step3(value):" in big.task_part
    mid = render_summary(index, scope, 200)
    task = mid.task_part
    assert "billing/m4.py" in task  # neighbours before strangers:
    assert task.find("search/") == -1 or task.find("search/") > task.rfind("billing/")
    small = render_summary(index, scope, 150)
    assert "billing/m3.py" in small.text  # degraded to less detail, but the seed is still named


def test_repo_part_depends_on_repo_state_only(repo, tmp_path):
    index = RepoIndex.build(repo, cache_dir=tmp_path / "c", workers=1)
    a = render_summary(index, compute_scope(repo, index, ["tests/test_billing.py"], None, [], ""), 800)
    b = render_summary(index, compute_scope(repo, index, [], None, ["search"], "search_step2 fails"), 800)
    assert a.repo_part == b.repo_part and a.task_part != b.task_part
    assert "Edits are allowed only under: search" in b.task_part
    (repo / "core/util.py").write_text("def log(msg):\n    pass\n\ndef renamed_fn():\n    pass\n")
    index2 = RepoIndex.build(repo, cache_dir=tmp_path / "c", workers=1)
    c = render_summary(index2, compute_scope(repo, index2, ["tests/test_billing.py"], None, [], ""), 800)
    assert c.repo_part != a.repo_part and "renamed_fn" in c.repo_part


def run_cli(repo: Path, cache: Path, seed: str, *extra: str) -> bytes:
    env = {**os.environ, "PYTHONHASHSEED": seed, "XDG_CACHE_HOME": str(cache)}
    proc = subprocess.run([sys.executable, "-m", "agent.summary", "--repo", str(repo), "--tokens", "700",
                           "--test", "tests/test_billing.py::test_step", *extra],
                          capture_output=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_output_is_byte_identical_across_hash_seeds_and_cache_states(repo, tmp_path):
    outs = [run_cli(repo, tmp_path / f"cache{seed}", seed) for seed in ("0", "1", "12345")]
    warm = run_cli(repo, tmp_path / "cache0", "777")
    assert outs[0] == outs[1] == outs[2] == warm
    assert b"billing/m3.py" in outs[0]
    api = summary_for(repo, ["tests/test_billing.py::test_step"], [], 700, cache_dir=tmp_path / "cache0")
    assert api.text.encode() == outs[0]  # the CLI prints exactly summary.text


def test_cli_traceback_file_and_bad_repo(repo, tmp_path):
    tb = tmp_path / "tb.txt"
    tb.write_text(f'Traceback (most recent call last):\n  File "{repo}/search/m5.py", line 9, in run\nValueError\n')
    out = run_cli(repo, tmp_path / "cache", "0", "--traceback-file", str(tb)).decode()
    assert "Traceback (in repo): search/m5.py:9" in out and "## search/m5.py" in out
    proc = subprocess.run([sys.executable, "-m", "agent.summary", "--repo", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no such directory" in proc.stderr


def test_empty_repo_summary(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    subprocess.run(["git", "-C", str(root), "init", "-q"], check=True)
    summary = summary_for(root, [], [], 200, cache_dir=tmp_path / "c")
    assert summary.text == "# Repository map\nNo source files indexed.\n"
    assert any("no source files" in n for n in summary.notes)


def test_code_reached_by_a_string_key_ranks_first(tmp_path):
    files = {"lint/registry.py": ("RULES = {}\n\n\ndef register(cls):\n    RULES[cls.code] = cls\n    return cls\n\n\n"
                                  "def get_rule(code):\n    return RULES[code]()\n"),
             "tests/test_rules.py": ("from lint.registry import get_rule\n\n\ndef test_long_line():\n"
                                     "    assert get_rule('E501').check('x' * 100)\n")}
    for i in range(12):
        files[f"lint/rules/r{i:02d}.py"] = (f"from lint.registry import register\n\n\n@register\nclass Rule{i}:\n"
                                            f"    code = 'E{i}01'\n\n    def check(self, line):\n"
                                            f"        return len(line) > {i}\n")
    repo = make_repo(tmp_path / "repo", files)
    summary = summary_for(repo, ["tests/test_rules.py::test_long_line"], [], 400, cache_dir=tmp_path / "c")
    task = summary.task_part
    assert "lint/rules/r05.py" in task  # E501 lives in r05
    others = [task.find(f"lint/rules/r{i:02d}.py") for i in range(12) if i != 5]
    assert all(pos == -1 or pos > task.find("lint/rules/r05.py") for pos in others)
