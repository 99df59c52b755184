"""Every third-party module the product imports is a declared dependency (not merely installed here).

`pip install -e .` on a fresh machine installs the declared dependencies and nothing else: an import
that works only because a dev tool happens to bring the module (click did, until typer vendored it)
breaks `agent` for users while every test here passes.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("agent", "tools", "sandbox", "prompts")
FIRST_PARTY = {*PRODUCT, "evals"}


def _declared() -> set[str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower().replace("_", "-") for d in deps}


def _imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_product_imports_only_declared_dependencies():
    declared = _declared()
    providers = packages_distributions()
    missing = {}
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            for name in _imported(path):
                if name in FIRST_PARTY or name in sys.stdlib_module_names or name == "__future__":
                    continue
                dists = {d.lower().replace("_", "-") for d in providers.get(name, [])}
                if not dists & declared:
                    missing.setdefault(name, []).append(path.relative_to(ROOT).as_posix())
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
