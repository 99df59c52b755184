"""The version file a VCS-versioned project's build writes, written into the agent's worktree.

setuptools-scm (`version_file`, `write_to`), hatch-vcs (`version-file`) and pdm-backend (`write_to`)
generate a module such as `src/pkg/_version.py` at install time; it is git-ignored, so the user's
checkout has it (from `pip install -e .`) and a fresh worktree does not, and `import pkg` fails there
in both sandboxes. The file is written from the version host git describes, with the project's
template when it declares one. Its path comes from the repository, so it must stay inside the
worktree: no `..`, no symlinked directory on the way, never over an existing file.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

_SETUP_PY = re.compile(r"""['"]?(?:write_to|version_file)['"]?\s*[:=]\s*['"]([^'"]+\.(?:py|txt))['"]""")
_PY_TEMPLATE = (
    "# Written by the agent from `git describe`, as the project's build would write it.\n"
    "__version__ = version = {version!r}\n"
    "__version_tuple__ = version_tuple = {version_tuple!r}\n"
    "__commit_id__ = commit_id = None\n"
)


def declared(repo: Path) -> list[tuple[str, str | None, str]]:
    """(relative path, template or None, placeholder style) for each version file the project declares:
    style "format" takes {version}/{version_tuple} (setuptools-scm, hatch-vcs), "positional" takes {}
    (pdm-backend)."""
    try:
        data: dict[str, Any] = tomllib.loads((repo / "pyproject.toml").read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        data = {}
    tool = data.get("tool", {}) if isinstance(data.get("tool"), dict) else {}
    found: list[tuple[str, str | None, str]] = []
    scm = tool.get("setuptools_scm", {})
    if isinstance(scm, dict):
        for key, template in (("version_file", "version_file_template"), ("write_to", "write_to_template")):
            if isinstance(scm.get(key), str):
                found.append((scm[key], _text(scm.get(template)), "format"))
    hook = tool.get("hatch", {}).get("build", {}).get("hooks", {}).get("vcs", {}) if isinstance(
        tool.get("hatch"), dict) else {}
    if isinstance(hook, dict) and isinstance(hook.get("version-file"), str):
        found.append((hook["version-file"], _text(hook.get("template")), "format"))
    pdm = tool.get("pdm", {}).get("version", {}) if isinstance(tool.get("pdm"), dict) else {}
    if isinstance(pdm, dict) and pdm.get("source") == "scm" and isinstance(pdm.get("write_to"), str):
        found.append((pdm["write_to"], _text(pdm.get("write_template")), "positional"))
    setup_py = repo / "setup.py"
    if setup_py.is_file() and "use_scm_version" in (text := setup_py.read_text(errors="replace")):
        found += [(m.group(1), None, "format") for m in _SETUP_PY.finditer(text)]
    return list({path: (path, tpl, style) for path, tpl, style in found}.values())


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def version_tuple(version: str) -> tuple[int | str, ...]:
    """`1.2.3.dev4+gabc` -> (1, 2, 3, 'dev4', 'gabc'), as setuptools-scm writes it."""
    public, _, local = version.partition("+")
    parts: list[int | str] = [int(p) if p.isdigit() else p for p in public.split(".") if p]
    return tuple(parts + ([local] if local else []))


def render(rel: str, template: str | None, style: str, version: str) -> str | None:
    """The file's text, or None when its template needs what only the real build knows."""
    if template is None:
        if rel.endswith(".py"):
            return _PY_TEMPLATE.format(version=version, version_tuple=version_tuple(version))
        return f"{version}\n" if rel.endswith(".txt") else None
    try:
        text = template.format(version) if style == "positional" else template.format(
            version=version, version_tuple=version_tuple(version))
    except (KeyError, IndexError, AttributeError, ValueError):
        return None
    return text if text.endswith("\n") else text + "\n"


def write_version_files(root: Path, version: str | None) -> list[str]:
    """Write each declared version file missing from the worktree at `root`; returns the paths written."""
    if not version:
        return []
    root = root.resolve()
    written = []
    for rel, template, style in declared(root):
        text = render(rel, template, style, version)
        target = _inside(root, rel)
        if text is None or target is None:
            continue
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except OSError:  # already there (tracked, or the repo's own), or not writable: leave it
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        written.append(target.relative_to(root).as_posix())
    return written


def _inside(root: Path, rel: str) -> Path | None:
    """`root/rel` when it is a plain path inside `root` whose directories exist and are no symlinks."""
    path = Path(rel)
    if path.is_absolute() or ".." in path.parts or not path.name or path.name.startswith("."):
        return None
    current = root
    for part in path.parts[:-1]:
        current = current / part
        if current.is_symlink() or not current.is_dir():
            return None
    return root / path
