"""A small real repository with a real failing test: the demo's and the tests' subject."""

from __future__ import annotations

import subprocess
from pathlib import Path

FILES: dict[str, str] = {
    "pyproject.toml": '[project]\nname = "shop"\nversion = "0.1.0"\n\n'
                      '[tool.pytest.ini_options]\npythonpath = ["."]\n',
    "shop/__init__.py": '"""A tiny shop."""\n',
    "shop/cart.py": (
        '"""Shopping cart arithmetic."""\n\n\n'
        'def cart_total(prices: list[float]) -> float:\n'
        '    """Sum of the item prices."""\n'
        '    return sum(prices)\n\n\n'
        'def apply_discount(total: float, percent: float) -> float:\n'
        '    """Return `total` reduced by `percent` (0-100)."""\n'
        '    if not 0 <= percent <= 100:\n'
        '        raise ValueError("percent must be within 0..100")\n'
        '    return total - total * percent / 10\n'
    ),
    "shop/money.py": (
        '"""Formatting of amounts."""\n\n\n'
        'def fmt(amount: float) -> str:\n'
        '    return f"{amount:.2f}"\n'
    ),
    "tests/__init__.py": "",
    "tests/test_cart.py": (
        'import pytest\n\n'
        'from shop.cart import apply_discount, cart_total\n\n\n'
        'def test_total():\n'
        '    assert cart_total([1.0, 2.5]) == 3.5\n\n\n'
        'def test_discount():\n'
        '    assert apply_discount(200.0, 10) == 180.0\n\n\n'
        'def test_discount_range():\n'
        '    with pytest.raises(ValueError):\n'
        '        apply_discount(10.0, 120)\n'
    ),
    "tests/test_money.py": (
        'from shop.money import fmt\n\n\n'
        'def test_fmt():\n'
        '    assert fmt(3) == "3.00"\n'
    ),
}

BUGGY_LINE = "    return total - total * percent / 10\n"
FIXED_LINE = "    return total - total * percent / 100\n"
TARGET = "tests/test_cart.py::test_discount"


def git(root: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.com", "GIT_COMMITTER_NAME": "dev",
           "GIT_COMMITTER_EMAIL": "dev@example.com", "HOME": str(root), "PATH": "/usr/bin:/bin:/usr/local/bin"}
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True, env=env).stdout


def make_sample_repo(root: Path, files: dict[str, str] | None = None) -> Path:
    """Write the files, `git init` and commit them; returns the repo root."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in (files or FILES).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


def fixing_script() -> list[dict]:
    """The scripted model's turns: search, read, fix, test, finish — what a good model would do."""
    return [
        {"reasoning": "The discount test fails; find apply_discount.",
         "tool_calls": [{"name": "search", "arguments": {"pattern": "def apply_discount"}}]},
        {"reasoning": "Read the function.",
         "tool_calls": [{"name": "view", "arguments": {"path": "shop/cart.py"}}]},
        {"reasoning": "A percentage must be divided by 100, not 10.",
         "tool_calls": [{"name": "edit", "arguments": {"path": "shop/cart.py", "old": BUGGY_LINE.strip(),
                                                       "new": FIXED_LINE.strip()}}]},
        {"reasoning": "Check the targets.", "tool_calls": [{"name": "run_tests", "arguments": {}}]},
        {"content": "Fixed.", "tool_calls": [{"name": "finish", "arguments": {
            "summary": "apply_discount divided the percentage by 10; it now divides by 100."}}]},
    ]
