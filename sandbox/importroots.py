"""Where a project's code is imported from: the worktree's import roots, and a check that they win.

The code under test must be the worktree's, not an installed copy (an editable install of the
user's checkout, or a release in the venv that also holds the agent). PYTHONPATH entries come
before site-packages and the .pth paths an editable install adds; setuptools' editable
meta-path finder is appended after the path finder, so it only answers for what PYTHONPATH
does not hold (measured: tests/test_local_layouts.py). The roots are the worktree itself,
`src/` and the package dirs the project's metadata declares.
"""

from __future__ import annotations

import configparser
import tomllib
from pathlib import Path
from typing import Any

# Top-level dirs of a flat layout that are not the project's packages.
NOT_PACKAGES = {"tests", "test", "testing", "docs", "doc", "examples", "example", "benchmarks", "bench",
                "scripts", "tools", "build", "dist", "site-packages"}

# Run in the sandbox's interpreter: where would each top-level name be imported from?
# find_spec consults the same finders an import does without running the package's code.
CHECK_CODE = """\
import importlib.util, json, sys
out = {}
for name in sys.argv[1:]:
    try:
        spec = importlib.util.find_spec(name)
    except Exception as exc:
        out[name] = "error: %s: %s" % (type(exc).__name__, exc)
        continue
    if spec is None:
        out[name] = None
    elif spec.origin and spec.origin not in ("namespace", "built-in", "frozen"):
        out[name] = spec.origin
    else:
        locs = list(spec.submodule_search_locations or [])
        out[name] = locs[0] if locs else str(spec.origin)
print(json.dumps(out))
"""


def _toml(root: Path) -> dict[str, Any]:
    try:
        return tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _setup_cfg_dirs(root: Path) -> list[str]:
    """`[options] package_dir` (`=src` or `pkg=lib/pkg` lines) and `[options.packages.find] where`."""
    cfg = configparser.ConfigParser()
    try:
        cfg.read(root / "setup.cfg", encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return []
    dirs = []
    for line in cfg.get("options", "package_dir", fallback="").replace(";", "\n").splitlines():
        name, _, target = line.partition("=")
        if target.strip():
            dirs.append(_mapped_parent(name.strip(), target.strip()))
    dirs += cfg.get("options.packages.find", "where", fallback="").split()
    return [d for d in dirs if d]


def _mapped_parent(package: str, target: str) -> str:
    """`"" = "src"` makes src a root; `"pkg" = "lib/pkg"` makes lib one (a renamed dir cannot be a root)."""
    if not package:
        return target
    target_path = Path(target)
    return str(target_path.parent) if target_path.name == package.split(".")[-1] else ""


def declared_dirs(root: Path) -> list[str]:
    """Package directories the project's build metadata names, relative to `root`."""
    data = _toml(root)
    dirs: list[str] = []
    dirs += _as_list(_dig(data, "tool", "setuptools", "packages", "find", "where"))
    package_dir = _dig(data, "tool", "setuptools", "package-dir")
    if isinstance(package_dir, dict):
        dirs += [_mapped_parent(k, v) for k, v in package_dir.items() if isinstance(v, str)]
    for entry in _dig(data, "tool", "poetry", "packages") or []:
        if isinstance(entry, dict) and isinstance(entry.get("from"), str):
            dirs.append(entry["from"])
    for pkg in _as_list(_dig(data, "tool", "hatch", "build", "targets", "wheel", "packages")):
        dirs.append(str(Path(pkg).parent))
    dirs += _as_list(_dig(data, "tool", "pdm", "build", "package-dir"))
    dirs += _setup_cfg_dirs(root)
    return [d for d in dirs if d]


def import_roots(root: Path) -> list[Path]:
    """The worktree, `src/` if present, then the declared package dirs: existing, inside `root`, no repeats."""
    root = Path(root).resolve()
    found = [root]
    for rel in ["src", *declared_dirs(root)]:
        path = (root / rel).resolve()
        if path.is_dir() and path.is_relative_to(root) and path not in found:
            found.append(path)
    return found


def top_level_packages(root: Path, roots: list[Path] | None = None) -> list[str]:
    """The project's importable top-level packages: dirs with an `__init__.py` (or, below `src/` and
    declared dirs, any dir holding .py files: a namespace package) under the import roots."""
    root = Path(root).resolve()
    names: list[str] = []
    for base in roots if roots is not None else import_roots(root):
        try:
            children = sorted(base.iterdir())
        except OSError:
            continue
        for child in children:
            if not child.is_dir() or not child.name.isidentifier() or child.name in names:
                continue
            if base == root and (child.name in NOT_PACKAGES or child.name.startswith(("_", "."))):
                continue
            if (child / "__init__.py").is_file() or (base != root and any(child.glob("*.py"))):
                names.append(child.name)
    return names
