"""The package versions of the user's working local environment, to build the Docker one like it.

The environment is the repository's `.venv`, else the active virtualenv when the project is installed
in it (`pip install -e .` names the checkout in `direct_url.json`; `setup.py develop` in an `.egg-link`):
the agent's own venv is not the project's. Versions are read from the `.dist-info` metadata files:
nothing of that environment runs. Packages installed from a path or a VCS cannot come from an index
and are left out, as is the project itself (its code is the worktree's).
"""

from __future__ import annotations

import json
import re
from email.parser import HeaderParser
from pathlib import Path

_VERSION_INFO = re.compile(r"^\s*version(?:_info)?\s*=\s*(\d+)\.(\d+)", re.MULTILINE)


def site_packages(venv: Path) -> list[Path]:
    return sorted(p for p in venv.glob("lib/python3*/site-packages") if p.is_dir())


def venv_python(venv: Path) -> str | None:
    """`3.11` from the venv's pyvenv.cfg, or None."""
    try:
        match = _VERSION_INFO.search((venv / "pyvenv.cfg").read_text(errors="replace"))
    except OSError:
        return None
    return f"{match.group(1)}.{match.group(2)}" if match else None


def _dists(venv: Path):
    """(name, version, installed directly) per distribution: a direct_url.json marks a path, file or VCS
    install, which no index can serve."""
    for site in site_packages(venv):
        for info in sorted(site.glob("*.dist-info")):
            try:
                meta = HeaderParser().parsestr((info / "METADATA").read_text(errors="replace"), headersonly=True)
            except OSError:
                continue
            if meta.get("Name") and meta.get("Version"):
                yield str(meta["Name"]).strip(), str(meta["Version"]).strip(), (info / "direct_url.json").exists()


def installs(venv: Path, checkout: Path) -> bool:
    """Is the project at `checkout` installed in `venv` (editable or from that directory)?"""
    root = Path(checkout).resolve()
    for site in site_packages(venv):
        for direct in site.glob("*.dist-info/direct_url.json"):
            try:
                url = json.loads(direct.read_text()).get("url", "")
            except (OSError, ValueError, AttributeError):
                continue
            if str(url).rstrip("/") == f"file://{root}":
                return True
        for link in site.glob("*.egg-link"):
            try:
                first = link.read_text(errors="replace").splitlines()[0].strip()
            except (OSError, IndexError):
                continue
            if Path(first).resolve() == root:
                return True
    return False


def project_environment(checkout: Path, active: str | None) -> Path | None:
    """The local environment to mirror: the checkout's `.venv`, else `active` when it installs the project."""
    local = Path(checkout) / ".venv"
    # a `.venv` that leads out of the checkout (a link the repository may carry) is not read
    if (local / "pyvenv.cfg").is_file() and local.resolve().is_relative_to(Path(checkout).resolve()):
        return local.resolve()
    if active and (Path(active) / "pyvenv.cfg").is_file() and installs(Path(active), checkout):
        return Path(active).resolve()
    return None


def canonical(name: str) -> str:
    """A distribution name as indexes compare them (PEP 503): `Flask_Login` -> `flask-login`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(venv: Path, skip: set[str]) -> list[str]:
    """`name==version` for every distribution an index can serve, but those named in `skip`."""
    skipped = {canonical(name) for name in skip}
    out = {}
    for name, version, direct in _dists(venv):
        key = canonical(name)
        if key in skipped or direct or not re.fullmatch(r"[A-Za-z0-9.!+_-]+", version):
            continue
        out[key] = f"{key}=={version}"
    return [out[k] for k in sorted(out)]
