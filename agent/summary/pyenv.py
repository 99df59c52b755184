"""Which top-level Python names come from outside the repository, and which files are auxiliary.

`import json` in a test means the standard library even when the project has a `json/` package of
its own; `import flask` means the project's declared package, not a test fixture named `flask.py`.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache

# Directories whose code is demonstration, fixture or documentation: rarely where a fix goes.
AUX_DIRS = frozenset({"examples", "example", "docs", "doc", "test_apps", "fixtures", "testdata", "test_data",
                      "benchmarks", "bench", "samples", "sample", "demo", "demos", "scripts"})
TEST_DIRS = frozenset({"test", "tests", "testing"})
SOURCE_PARENTS = ("", "src/", "lib/", "python/")  # where a project's top-level packages live


@lru_cache(maxsize=1)
def external_top_names() -> frozenset[str]:
    """Top-level modules the Python running this provides: the standard library and installed packages.

    Installed packages are this interpreter's, an approximation of the sandbox's; the project's own
    packages are resolved before this is asked, so an installed copy of the project does not hide it.
    """
    names = set(sys.stdlib_module_names) | set(sys.builtin_module_names)
    for entry in sys.path:  # a directory listing, not importlib.metadata (which takes a second or more)
        if not entry.endswith(("site-packages", "dist-packages")):
            continue
        try:
            listing = os.listdir(entry)
        except OSError:
            continue
        for name in listing:
            if name.endswith((".dist-info", ".egg-info", ".pth", ".data")) or name.startswith(("_", ".")):
                continue
            top = name.split(".", 1)[0]
            if top.isidentifier() and top not in ("tests", "test", "testing", "docs", "examples"):
                names.add(top)
    return frozenset(names)


def is_test_path(path: str) -> bool:
    parts = path.split("/")  # plain string work: this runs for every file of the ranking
    name = parts[-1]
    return (name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"
            or not TEST_DIRS.isdisjoint(parts[:-1]))


def is_auxiliary(path: str) -> bool:
    """Examples, docs, fixtures and test apps (by directory name)."""
    return not AUX_DIRS.isdisjoint(path.split("/")[:-1])


def project_packages(files: list[str]) -> dict[str, str]:
    """Top-level name -> its path prefix (`flask` -> `src/flask`, `six` -> `six.py`), for the project's
    own importable code: packages and modules directly in the root, src/, lib/ or python/."""
    found: dict[str, str] = {}
    for parent in SOURCE_PARENTS:
        for path in files:
            if not path.startswith(parent) or not path.endswith(".py"):
                continue
            rest = path[len(parent):].split("/")
            if len(rest) == 2 and rest[1] == "__init__.py":
                name, prefix = rest[0], parent + rest[0]
            elif len(rest) == 1 and rest[0] not in ("setup.py", "conftest.py", "noxfile.py", "__init__.py"):
                name, prefix = rest[0][:-3], path
            else:
                continue
            if not name.isidentifier() or name in found or name in TEST_DIRS or name in AUX_DIRS:
                continue
            if is_test_path(path):
                continue
            found[name] = prefix
    return found
