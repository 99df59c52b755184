"""Scope from a real pytest failure: traceback frames, the test file and what it imports, task words."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from agent.summary.index import RepoIndex
from agent.summary.scope import compute_scope, parse_frames

FILES = {
    "src/shop/__init__.py": "from .cart import Cart\nfrom .pricing import discount\n",
    "src/shop/cart.py": ("from .pricing import discount\n\n\nclass Cart:\n    def __init__(self):\n"
                         "        self.items = []\n\n    def total(self):\n"
                         "        return discount(sum(self.items))\n"),
    "src/shop/pricing.py": ("RATES = {'gold': 0.1}\n\n\ndef discount(amount, level='gold'):\n"
                            "    return amount * (1 - RATES[level + 'x'])\n"),
    "src/shop/unrelated.py": "def unrelated_helper():\n    return 42\n",
    "src/shop/registry.py": "def lookup_rule(code):\n    return code\n",
    "tests/test_cart.py": ("from shop import Cart\nimport shop.registry as reg\n\n\ndef test_total():\n"
                           "    cart = Cart()\n    cart.items.append(10)\n    assert cart.total() == 9\n"),
}


def make_repo(root: Path) -> Path:
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, env=env, capture_output=True)
    return root


def pytest_output(root: Path, *extra: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/test_cart.py", *extra],
                          cwd=root, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1, proc.stdout
    return proc.stdout


def test_scope_from_a_real_pytest_traceback(tmp_path):
    root = make_repo(tmp_path / "repo")
    out = pytest_output(root, "--tb=long")
    index = RepoIndex.build(root, cache_dir=tmp_path / "c", workers=1)
    scope = compute_scope(root, index, ["tests/test_cart.py::test_total"], out, [], "")
    assert scope.seed_files[0] == "src/shop/pricing.py"  # the innermost frame, where it failed
    assert [f for f, _ in scope.frames] == ["tests/test_cart.py", "src/shop/cart.py", "src/shop/pricing.py"]
    assert ("src/shop/pricing.py", 5) in scope.frames
    for path in ("tests/test_cart.py", "src/shop/cart.py", "src/shop/__init__.py", "src/shop/registry.py"):
        assert path in scope.seed_files, path
    assert "src/shop/unrelated.py" not in scope.seed_files
    assert scope.fence == [] and "src/shop" in scope.dirs


def test_python_style_traceback_with_foreign_absolute_paths(tmp_path):
    root = make_repo(tmp_path / "repo")
    tb = ('Traceback (most recent call last):\n'
          '  File "/sandbox/work/src/shop/cart.py", line 9, in total\n'
          '  File "/usr/lib/python3.11/json/decoder.py", line 3, in decode\n'
          f'  File "{root}/src/shop/pricing.py", line 5, in discount\nKeyError: \'goldx\'\n')
    assert parse_frames(tb)[0] == ("/sandbox/work/src/shop/cart.py", 9)
    index = RepoIndex.build(root, cache_dir=tmp_path / "c", workers=1)
    scope = compute_scope(root, index, [], tb, [], "")
    assert scope.frames == [("src/shop/cart.py", 9), ("src/shop/pricing.py", 5)]


def test_imports_resolve_through_reexports_and_relative_imports(tmp_path):
    root = make_repo(tmp_path / "repo")
    index = RepoIndex.build(root, cache_dir=tmp_path / "c", workers=1)
    scope = compute_scope(root, index, ["tests/test_cart.py::test_total"], None, [], "")
    # `from shop import Cart` -> shop/__init__.py and, through the re-export, cart.py
    assert {"src/shop/__init__.py", "src/shop/cart.py", "src/shop/registry.py"} <= set(scope.seed_files)
    assert scope.weights["src/shop/cart.py"] > scope.weights["tests/test_cart.py"]


def test_scope_dirs_fence_and_task_identifiers(tmp_path):
    root = make_repo(tmp_path / "repo")
    index = RepoIndex.build(root, cache_dir=tmp_path / "c", workers=1)
    scope = compute_scope(root, index, [], None, ["src/shop/", "nope"],
                          "lookup_rule returns the wrong rule; see src/shop/cart.py")
    assert scope.fence == ["src/shop", "nope"] and any("nope" in n for n in scope.notes)
    assert scope.seed_files[:2] == ["src/shop/cart.py", "src/shop/registry.py"]
    assert "src/shop/unrelated.py" in scope.weights and "src/shop/unrelated.py" not in scope.seed_files
    absolute = compute_scope(root, index, [], None, [str(root / "src"), "/elsewhere"], "")
    assert absolute.fence == ["src"] and any("outside the repository" in n for n in absolute.notes)
    missing = compute_scope(root, index, ["tests/test_nope.py::t"], "garbage\nno frames", [], "")
    assert missing.seed_files == [] and any("not found" in n for n in missing.notes)
