"""What a repository's environment should contain, read from its files on the host (no code run).

Lock files and pins come first (the versions the project's developers test with); requirement
files, PEP 735 test groups, tox deps and the project's own metadata add the rest. The Python is
chosen from `requires-python`, classifiers, `.python-version` and tox envs among the base images
the sandbox can build.
"""

from __future__ import annotations

import configparser
import json
import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox.importroots import import_roots as roots_of
from sandbox.releases import RELEASED, RELEASES

DEP_GLOBS = ("pyproject.toml", "setup.cfg", "setup.py", "tox.ini", "*requirements*.txt", "requirements/*.txt",
             "constraints*.txt", "uv.lock", "poetry.lock", "pdm.lock", "Pipfile", "Pipfile.lock", ".python-version")
TEST_EXTRAS = ("test", "tests", "testing")
TEST_GROUPS = ("dev", "test", "tests", "testing")
DEFAULT_PYTHON = "3.11"
# In a requirements/ folder only these are what tests need (not docs, packaging or type checks).
_WANTED_IN_DIR = re.compile(r"test|base|common|main|prod|install|^requirements\.txt$")
_PY_NAMED = re.compile(r"(?:^|[-_.]|requirements)(py|python)?([23])[._]?(\d{0,2})$", re.IGNORECASE)
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*===?\s*[^\s,;]+\s*(;.*)?$")


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}


def pyproject(repo: Path) -> dict[str, Any]:
    return _toml(repo / "pyproject.toml")


def dependency_files(repo: Path) -> list[Path]:
    found = {p for pattern in DEP_GLOBS for p in repo.glob(pattern) if p.is_file()}
    return sorted(found)


def filtered_requirements(text: str) -> str:
    """A requirements file without lines that install the repo itself (`.`, `-e .`, local paths)."""
    keep = []
    for line in text.splitlines():
        bare = line.split(" #", 1)[0].strip()
        target = bare[2:].strip() if bare.startswith("-e") else bare
        if bare.startswith(("-e", "--editable")) or target.startswith((".", "/", "file:")):
            continue
        keep.append(line)
    return "\n".join(keep) + "\n"


def tox_deps(repo: Path) -> list[str]:
    """Plain requirement strings from tox.ini's [testenv] deps (factors and -r lines skipped)."""
    parser = _tox(repo)
    raw = parser.get("testenv", "deps", fallback="") if parser else ""
    deps = [d.strip() for d in raw.splitlines()]
    return [d for d in deps if d and not d.startswith(("-", ".", "/", "#")) and not re.search(r"[{}:]\s", d + " ")]


def _tox(repo: Path) -> configparser.ConfigParser | None:
    path = repo / "tox.ini"
    if not path.is_file():
        return None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text(errors="replace"))
    except configparser.Error:
        return None
    return parser


def requirement_files(repo: Path, python: str | None = None) -> list[Path]:
    """The requirements files to install: root ones except docs, and test/base ones in requirements/;
    not those written for another Python (jmespath's `requirements26.txt`: Python 2.6's backports)."""
    wanted = []
    for path in dependency_files(repo):
        if path.suffix != ".txt" or path.name.startswith("constraints") or for_another_python(path.name, python):
            continue
        at_root = path.parent == repo
        if (at_root and "doc" not in path.name) or (not at_root and _WANTED_IN_DIR.search(path.name)):
            wanted.append(path)
    return wanted


def for_another_python(name: str, python: str | None) -> bool:
    """Does a requirements file's name say it is for a Python other than `python` (`requirements26.txt`,
    `requirements-py27.txt`, `requirements-3.8.txt`)? Python 2 files always are: no sandbox runs Python 2."""
    match = _PY_NAMED.search(Path(name).stem)
    if not match:
        return False
    tagged, major, minor = match.group(1), match.group(2), match.group(3)
    if not (tagged or minor):  # `requirements2.txt` may be a second file, `requirements_py2.txt` is not
        return False
    if major == "2":
        return True
    return bool(python and minor) and python != f"{major}.{minor}"


def constraint_files(repo: Path) -> list[Path]:
    return sorted(p for p in repo.glob("constraints*.txt") if p.is_file())


def test_groups(repo: Path) -> list[str]:
    """The PEP 735 groups the tests need: test/tests/testing; `dev` only where none of those exists (pytest
    is then usually there). Not a project's other groups (typing, docs, lint: flask's mypy, pyright, ruff,
    tox) that uv would add by default: they are not what the tests import, and cost seconds per build."""
    groups = pyproject(repo).get("dependency-groups", {})
    named = [g for g in ("test", "tests", "testing") if g in groups]
    return named or (["dev"] if "dev" in groups else [])


def dependency_groups(repo: Path) -> list[str]:
    """Requirements of the PEP 735 test groups in pyproject.toml, `include-group`s resolved."""
    groups = pyproject(repo).get("dependency-groups", {})

    def expand(name: str, seen: frozenset[str]) -> list[str]:
        out: list[str] = []
        for item in groups.get(name, []):
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict) and item.get("include-group") not in seen | {None}:
                out += expand(item["include-group"], seen | {name})
        return out

    reqs = [r for name in test_groups(repo) for r in expand(name, frozenset())]
    return list(dict.fromkeys(reqs))


def tool_dev_dependencies(repo: Path) -> list[str]:
    """Names of Poetry's and PDM's dev/test dependencies (not in the package metadata; the lock pins them)."""
    tool = pyproject(repo).get("tool", {})
    poetry, pdm = tool.get("poetry", {}), tool.get("pdm", {})
    names: list[str] = list(poetry.get("dev-dependencies", {}))
    for group in TEST_GROUPS:
        names += list(poetry.get("group", {}).get(group, {}).get("dependencies", {}))
        names += list(pdm.get("dev-dependencies", {}).get(group, []))
    return [n for n in dict.fromkeys(names) if n.lower() != "python"]


def is_installable(repo: Path) -> bool:
    """Does the repo declare a project (so installing it resolves its dependencies)?"""
    if (repo / "setup.py").is_file():
        return True
    data = pyproject(repo)
    return "project" in data or "build-system" in data  # a setup.cfg alone is not buildable by pip


def test_extras(repo: Path) -> list[str]:
    """The test extras the project declares (PEP 621 or setup.cfg), so no installer warns about missing ones."""
    declared = set(pyproject(repo).get("project", {}).get("optional-dependencies", {}))
    cfg = configparser.ConfigParser(interpolation=None)
    try:
        cfg.read_string((repo / "setup.cfg").read_text(errors="replace"))
        declared |= set(cfg["options.extras_require"]) if cfg.has_section("options.extras_require") else set()
    except (OSError, configparser.Error):
        pass
    setup_py = repo / "setup.py"
    text = setup_py.read_text(errors="replace") if setup_py.is_file() else ""
    declared |= {e for e in TEST_EXTRAS if re.search(rf"['\"]{e}['\"]\s*:", text)}
    return [e for e in TEST_EXTRAS if e in declared]


def dist_name(repo: Path) -> str | None:
    """The project's distribution name (pyproject or setup.cfg), for the per-dist version variables."""
    name = pyproject(repo).get("project", {}).get("name") or pyproject(repo).get("tool", {}).get(
        "poetry", {}).get("name")
    if not name and (repo / "setup.cfg").is_file():
        cfg = configparser.ConfigParser(interpolation=None)
        try:
            cfg.read_string((repo / "setup.cfg").read_text(errors="replace"))
            name = cfg.get("metadata", "name", fallback=None)
        except configparser.Error:
            name = None
    if not name and (repo / "setup.py").is_file():
        match = re.search(r"\bname\s*=\s*['\"]([A-Za-z0-9._-]+)['\"]", (repo / "setup.py").read_text(errors="replace"))
        name = match.group(1) if match else None
    return name


# --- locks and pins ----------------------------------------------------------------------------

def lock_kind(repo: Path) -> str | None:
    for name in ("uv.lock", "poetry.lock", "pdm.lock", "Pipfile.lock"):
        if (repo / name).is_file():
            return name
    return None


def lock_pins(repo: Path) -> list[str]:
    """`name==version` for every package a poetry/pdm/Pipfile lock pins once (used as constraints)."""
    kind = lock_kind(repo)
    versions: dict[str, set[str]] = {}
    if kind in ("poetry.lock", "pdm.lock"):
        for pkg in _toml(repo / kind).get("package", []):
            source = pkg.get("source", {})
            if isinstance(source, dict) and source.get("type") in ("directory", "file", "git", "url"):
                continue
            if pkg.get("name") and pkg.get("version"):
                versions.setdefault(pkg["name"].lower(), set()).add(pkg["version"])
    elif kind == "Pipfile.lock":
        for name, spec in _pipfile_lock(repo).items():
            version = spec.get("version", "") if isinstance(spec, dict) else ""
            if version.startswith("=="):
                versions.setdefault(name.lower(), set()).add(version[2:])
    return [f"{n}=={next(iter(v))}" for n, v in sorted(versions.items()) if len(v) == 1]


def _pipfile_lock(repo: Path) -> dict[str, Any]:
    try:
        data = json.loads((repo / "Pipfile.lock").read_text())
    except (OSError, ValueError):
        return {}
    return {**data.get("default", {}), **data.get("develop", {})}


def pipfile_requirements(repo: Path) -> list[str]:
    """Pipfile.lock's default and develop packages as pinned requirements (with their markers)."""
    out = []
    for name, spec in _pipfile_lock(repo).items():
        if isinstance(spec, dict) and str(spec.get("version", "")).startswith("=="):
            marker = f"; {spec['markers']}" if spec.get("markers") else ""
            out.append(f"{name}{spec['version']}{marker}")
    return out


def fully_pinned(repo: Path, python: str | None = None) -> bool:
    """Do the requirement files (for `python`) pin every line (`==`)? Then no date cut-off is needed."""
    files = requirement_files(repo, python)
    lines = [ln.split(" #", 1)[0].strip() for f in files for ln in f.read_text(errors="replace").splitlines()]
    reqs = [ln for ln in lines if ln and not ln.startswith(("#", "-"))]
    return bool(reqs) and all(_PIN.match(r) for r in reqs)


def resolution_date(date: str, python: str) -> str:
    """The cut-off of an unpinned resolution: the commit's date, but never before `python`'s release.
    Releases older than the interpreter often do not run on it (hypothesis 3.56 of 2018 fails to import
    on Python 3.8+, pytest 2.9 and setuptools 20 on 3.11): who ran these tests on this Python had at
    least the versions of its release."""
    released = RELEASED.get(python)
    return released if released and _instant(date) < _instant(released) else date


def _instant(stamp: str) -> datetime:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- the Python of the sandbox ----------------------------------------------------------------

def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:2])


def _satisfies(version: str, spec: str) -> bool:
    """Does `3.x` satisfy a `requires-python` specifier (>=, >, <, <=, ==, !=, ~= and wildcards)?"""
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        match = re.match(r"^(~=|===|==|!=|>=|<=|>|<)\s*([\d.*]+)", clause)
        if not match:
            continue
        op, bound = match.groups()
        have, want = _version_key(version), _version_key(bound.replace("*", "0"))
        want = want + (0,) * (2 - len(want))
        if bound.endswith("*"):
            ok = have[:len(want) - 1] == want[:len(want) - 1]
            ok = not ok if op == "!=" else ok
        else:
            ok = {"==": have == want, "===": have == want, "!=": have != want, ">=": have >= want,
                  "<=": have <= want, ">": have > want, "<": have < want,
                  "~=": have >= want and have[0] == want[0]}[op]
        if not ok:
            return False
    return True


def _requires_python(repo: Path) -> str:
    spec = pyproject(repo).get("project", {}).get("requires-python", "")
    spec = spec or str(pyproject(repo).get("tool", {}).get("poetry", {}).get("dependencies", {}).get("python", ""))
    if not spec:
        for name in ("setup.cfg", "setup.py"):
            path = repo / name
            if path.is_file():
                match = re.search(r"python_requires\s*=\s*['\"]?([^'\"\n]+)", path.read_text(errors="replace"))
                if match:
                    spec = match.group(1)
                    break
    if spec.startswith("^"):  # Poetry's caret: ^3.8 means >=3.8,<4
        spec = f">={spec[1:]},<4"
    return spec


def _declared_versions(repo: Path) -> list[str]:
    """Python versions the project says it tests: classifiers, tox envs."""
    text = "".join((repo / n).read_text(errors="replace") for n in ("pyproject.toml", "setup.cfg", "setup.py")
                   if (repo / n).is_file())
    found = set(re.findall(r"Programming Language :: Python :: (3\.\d+)", text))
    parser = _tox(repo)
    envlist = parser.get("tox", "envlist", fallback="") if parser else ""
    found |= {f"3.{m}" for m in re.findall(r"py3(\d+)", envlist)}
    return sorted(found, key=_version_key)


def choose_python(repo: Path, available: list[str] | None = None) -> str:
    """The base image Python closest to the default that the project accepts and (if it says) tests."""
    available = sorted(available or list(RELEASES), key=_version_key)
    pinned = (repo / ".python-version").read_text().split()[0] if (repo / ".python-version").is_file() else ""
    spec = _requires_python(repo)
    ok = [v for v in available if _satisfies(v, spec)] or available
    if pinned and re.match(r"^3\.\d+", pinned):
        want = _version_key(pinned)
        return min(ok, key=lambda v: (abs(_version_key(v)[1] - want[1]), _version_key(v)))
    declared = _declared_versions(repo)
    if declared:
        low, high = _version_key(declared[0]), _version_key(declared[-1])
        inside = [v for v in ok if low <= _version_key(v) <= high]
        if DEFAULT_PYTHON in inside:
            return DEFAULT_PYTHON
        if inside:
            return inside[-1]
        return min(ok, key=lambda v: min(abs(_version_key(v)[1] - low[1]), abs(_version_key(v)[1] - high[1])))
    if DEFAULT_PYTHON in ok:
        return DEFAULT_PYTHON
    return min(ok, key=lambda v: abs(_version_key(v)[1] - _version_key(DEFAULT_PYTHON)[1]))


# --- where the worktree's code is imported from ------------------------------------------------

def import_roots(repo: Path) -> list[str]:
    """Directories (relative; "." is the root) that hold the project's top-level packages, in the local
    sandbox's order (sandbox.importroots: the root, `src`, the declared package dirs): one rule for both."""
    base = Path(repo).resolve()
    return [p.relative_to(base).as_posix() or "." for p in roots_of(base)]


# --- versions from VCS -------------------------------------------------------------------------

def version_environment(repo: Path, version: str) -> dict[str, str]:
    """Each VCS-version tool's "pretend" variable, scoped to this project so dependencies built from
    sdists (which carry their own version) are not renamed."""
    text = "".join((repo / n).read_text(errors="replace") for n in ("pyproject.toml", "setup.cfg", "setup.py")
                   if (repo / n).is_file())
    env: dict[str, str] = {}
    name = dist_name(repo)
    if name:
        env["SETUPTOOLS_SCM_PRETEND_VERSION_FOR_" + re.sub(r"[-_.]+", "_", name).upper()] = version
    # hatch-vcs asks setuptools-scm without a distribution name, so only the global variable reaches it
    if re.search(r"hatch-vcs", text) or (not name and re.search(r"setuptools[_-]scm|use_scm_version", text)):
        env["SETUPTOOLS_SCM_PRETEND_VERSION"] = version
    if re.search(r"\bpbr\b", text):
        env["PBR_VERSION"] = version
    if "poetry-dynamic-versioning" in text or "poetry_dynamic_versioning" in text:
        env["POETRY_DYNAMIC_VERSIONING_BYPASS"] = version
    if "uv-dynamic-versioning" in text:
        env["UV_DYNAMIC_VERSIONING_BYPASS"] = version
    return env
