"""What pytest and Python load on their own, and a check that the verdict runs under the base commit's.

A run is judged by the repository's tests, so whatever decides how those tests run is part of
the judge: pytest's configuration (pytest.ini, the pytest sections of pyproject.toml, setup.cfg
and tox.ini), conftest.py files, files Python imports at start-up (sitecustomize.py,
usercustomize.py), and metadata that makes pytest autoload a plugin (`*.dist-info`,
`*.egg-info` with `entry_points.txt`; a path on sys.path is enough). A model that rewrote any
of these (a `-p` plugin that marks every report passed, say) could make the tests report a pass
with the bug in place. So the tools refuse edits to these files, and the verdict is only given
when they are byte-for-byte as the base commit had them and pytest loaded the same plugins as at
reproduction; otherwise the run is not resolved, and the reason says why. The test files
themselves are in the same snapshot: a shell command can rewrite a test that a tool may not.
"""

from __future__ import annotations

import configparser
import hashlib
import os
import re
import tomllib
from pathlib import Path, PurePosixPath

from sandbox.pytest_runs import is_test_file

# Files that decide how tests run wherever they are in the tree.
LOADED_NAMES = frozenset({"conftest.py", "pytest.ini", ".pytest.ini", "sitecustomize.py", "usercustomize.py"})
LOADED_SUFFIXES = (".pth",)
METADATA_DIRS = (".dist-info", ".egg-info")
# Files that also hold other things: only their pytest part is compared.
SHARED_CONFIG = {"pyproject.toml", "setup.cfg", "tox.ini"}
SKIP_DIRS = frozenset({".git", "node_modules", "__pycache__", ".tox", ".nox", ".mypy_cache", ".ruff_cache",
                       ".pytest_cache"})
_PLUGINS = re.compile(r"^plugins: (.*)$", re.M)


def is_loaded_implicitly(relpath: str) -> bool:
    """Would pytest or Python load this file without anyone importing it? (Edits to it are refused.)"""
    path = PurePosixPath(relpath)
    if path.name in LOADED_NAMES or path.name.endswith(LOADED_SUFFIXES):
        return True
    return any(part.endswith(METADATA_DIRS) for part in path.parts)


def _pytest_part(name: str, data: bytes) -> str:
    """The pytest section of a shared config file, normalised; the whole file when it cannot be parsed."""
    text = data.decode("utf-8", errors="replace")
    try:
        if name == "pyproject.toml":
            return repr((tomllib.loads(text).get("tool") or {}).get("pytest"))
        parser = configparser.RawConfigParser(strict=False, interpolation=None)
        parser.read_string(text)
        section = "tool:pytest" if name == "setup.cfg" else "pytest"
        return repr(sorted(parser.items(section))) if parser.has_section(section) else "None"
    except (tomllib.TOMLDecodeError, configparser.Error):
        return text


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> digest of everything under `root` that decides how the tests run."""
    root = Path(root)
    found: dict[str, str] = {}
    for current, dirs, files in os.walk(root):
        rel_dir = Path(current).relative_to(root)
        inside_metadata = any(part.endswith(METADATA_DIRS) for part in rel_dir.parts)
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in files:
            rel = (rel_dir / name).as_posix()
            if not (inside_metadata or is_loaded_implicitly(rel) or name in SHARED_CONFIG or is_test_file(rel)):
                continue
            path = Path(current) / name
            try:
                data = path.read_bytes() if path.is_file() else b"<not a regular file>"
            except OSError:
                data = b"<unreadable>"
            content = _pytest_part(name, data).encode() if name in SHARED_CONFIG else data
            found[rel] = hashlib.sha256(content).hexdigest()
    return found


def changed(base: dict[str, str], now: dict[str, str], allow_test_edits: bool = False) -> list[str]:
    """Paths whose test-deciding content differs from the base (test files and conftest.py count
    only when test edits are not allowed)."""
    paths = sorted(p for p in base.keys() | now.keys() if base.get(p) != now.get(p))
    if allow_test_edits:
        paths = [p for p in paths if not is_test_file(p)]
    return paths


def plugins(output: str) -> str:
    """The `plugins:` line of a pytest header ('' when pytest reported none)."""
    match = _PLUGINS.search(output)
    return match.group(1).strip() if match else ""


def tampering(base: dict[str, str], root: Path, *, allow_test_edits: bool = False, baseline_output: str = "",
              outputs: tuple[str, ...] = ()) -> str | None:
    """Why a verdict cannot be given under the base commit's test configuration, or None.

    `outputs` are the pytest outputs of the verification runs, whose plugins must be the ones
    loaded at reproduction (`baseline_output`).
    """
    paths = changed(base, snapshot(root), allow_test_edits)
    if paths:
        shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        return (f"verification environment changed: {shown} differ from the base commit; the verdict is given "
                "only under the base commit's test configuration")
    expected = plugins(baseline_output)
    for output in outputs:
        if plugins(output) != expected:
            return (f"verification environment changed: pytest loaded plugins [{plugins(output)}] instead of "
                    f"[{expected}] as at reproduction")
    return None
