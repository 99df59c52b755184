"""A `sitecustomize` that hands the worktree back the packages a `.pth` file imported at startup.

PYTHONPATH puts the worktree's import roots first, but a `.pth` file runs before any import of
the tests: the `-nspkg.pth` of an editable install of a pkg_resources-style namespace package
(`jaraco`, `zope`...) puts `sys.modules["jaraco"]` in place with the user's checkout as its only
path, and every later `import jaraco.functools` then reads the checkout, not the worktree. This
module's code runs from a directory first on PYTHONPATH: it forgets such a package when the
worktree has it, so the import goes through sys.path (the worktree first), then runs the next
`sitecustomize` on the path as Python would have.
"""

from __future__ import annotations

from pathlib import Path

ROOTS_VAR = "AGENT_WORKTREE_ROOTS"

SITECUSTOMIZE = '''\
import importlib.util, os, sys


def _agent_worktree_first():
    roots = [os.path.realpath(p) for p in os.environ.get("AGENT_WORKTREE_ROOTS", "").split(os.pathsep) if p]
    for name, module in list(sys.modules.items()):
        if "." in name or module is None or not roots:
            continue
        paths = [os.path.realpath(p) for p in (getattr(module, "__path__", None) or [])]
        ours = [os.path.join(r, name) for r in roots if os.path.isdir(os.path.join(r, name))]
        if not paths or not ours or paths[0] == ours[0]:
            continue
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]


def _agent_next_sitecustomize():
    here = os.path.dirname(os.path.realpath(__file__))
    for entry in sys.path:
        candidate = os.path.join(entry or ".", "sitecustomize.py")
        if os.path.realpath(entry or ".") == here or not os.path.isfile(candidate):
            continue
        spec = importlib.util.spec_from_file_location("sitecustomize", candidate)
        module = importlib.util.module_from_spec(spec)
        sys.modules["sitecustomize"] = module
        spec.loader.exec_module(module)
        return


_agent_worktree_first()
_agent_next_sitecustomize()
'''


def write_site(directory: Path) -> Path:
    """Write the sitecustomize into `directory` (put it first on PYTHONPATH); returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    return directory
