"""Materialise an instance's repository at base_commit: from a PyPI sdist or a local git mirror.

An sdist becomes a git repository with fixed author, committer and dates, so the
same sdist (and the same bug patch on top) always gives the same commit: the
instance's base_commit is checked, not trusted. Downloads go through pip (the
host's index configuration and CA) into a cache directory and are reused.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from evals.instances import EnvironmentSetup, Instance

FIXED_DATE = "2000-01-01T00:00:00+0000"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "evals", "GIT_AUTHOR_EMAIL": "evals@example.invalid", "GIT_AUTHOR_DATE": FIXED_DATE,
    "GIT_COMMITTER_NAME": "evals", "GIT_COMMITTER_EMAIL": "evals@example.invalid",
    "GIT_COMMITTER_DATE": FIXED_DATE, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
}


def with_version_file(root: Path) -> None:
    """Write the git-ignored version module a VCS-versioned build generates (humanize imports its
    `_version.py`), from `git describe`, as the agent's worktree gets it: a fresh checkout lacks it, and
    every test would error at import."""
    from agent.gitops import describe_version
    from sandbox.versionfile import write_version_files

    write_version_files(root, describe_version(root))


class MaterializeError(RuntimeError):
    """The source could not be fetched, unpacked, patched, or did not give base_commit."""


def git(root: Path, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, input=stdin,
                          env={**os.environ, **GIT_ENV})
    if proc.returncode != 0:
        raise MaterializeError(f"git {' '.join(args[:2])} failed in {root}: {proc.stderr.strip()[:500]}")
    return proc.stdout


def default_cache() -> Path:
    from agent.runs import cache_dir

    return cache_dir() / "evals" / "sdists"


def fetch_sdist(package: str, version: str, cache: Path | None = None) -> Path:
    """The sdist archive of package==version, downloaded once into `cache`."""
    cache = Path(cache or default_cache())
    cache.mkdir(parents=True, exist_ok=True)
    found = _cached(package, version, cache)
    if found:
        return found
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                           "--disable-pip-version-check", "-d", str(cache), f"{package}=={version}"],
                          capture_output=True, text=True, timeout=600)
    found = _cached(package, version, cache)
    if proc.returncode != 0 or not found:
        raise MaterializeError(f"pip download {package}=={version} failed: {proc.stderr.strip()[-500:]}")
    return found


def _cached(package: str, version: str, cache: Path) -> Path | None:
    stem = f"{package}-{version}".lower().replace('-', '_')
    for path in sorted(cache.iterdir()):
        name = path.name.lower().replace("-", "_")
        if name.startswith(stem + ".") and name.endswith((".tar.gz", ".zip", ".tar.bz2")):
            return path
    return None


def _unpack(archive: Path, dest: Path) -> None:
    """Extract the archive's single top directory's contents into `dest`."""
    scratch = dest.with_name(dest.name + ".unpack")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(scratch)
        else:
            with tarfile.open(archive) as tar:
                tar.extractall(scratch, filter="data")
        tops = list(scratch.iterdir())
        top = tops[0] if len(tops) == 1 and tops[0].is_dir() else scratch
        shutil.move(str(top), str(dest))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def commit_all(root: Path, message: str) -> str:
    git(root, "add", "-A", "-f")
    git(root, "commit", "-q", "--no-verify", "--allow-empty", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


def materialize_source(env: EnvironmentSetup, dest: Path, cache: Path | None = None,
                       base_commit: str | None = None) -> str:
    """Create the repository at `dest` (must not exist); returns its HEAD commit."""
    dest = Path(dest)
    if dest.exists():
        raise MaterializeError(f"{dest} already exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if env.source == "git":
        if not env.mirror:
            raise MaterializeError("environment_setup.mirror is empty for a git source")
        subprocess.run(["git", "clone", "-q", "--no-checkout", env.mirror, str(dest)], check=True,
                       capture_output=True, env={**os.environ, **GIT_ENV})
        git(dest, "checkout", "-q", "-B", "main", base_commit or "HEAD")
        head = git(dest, "rev-parse", "HEAD").strip()
    elif env.source == "sdist":
        _unpack(fetch_sdist(env.package, env.version, cache), dest)
        git(dest, "init", "-q", "-b", "main")
        commit_all(dest, f"{env.package} {env.version} (sdist)")
        if env.bug_patch:
            git(dest, "apply", "--whitespace=nowarn", "-", stdin=env.bug_patch)
            commit_all(dest, "base state")
        head = git(dest, "rev-parse", "HEAD").strip()
    else:
        raise MaterializeError(f"unknown source {env.source!r}: use sdist or git")
    if base_commit and head != base_commit:
        raise MaterializeError(f"materialised {head[:12]}, but the instance's base_commit is {base_commit[:12]}")
    return head


def materialize(inst: Instance, dest: Path, cache: Path | None = None) -> Path:
    """The instance's repository at base_commit, in `dest`."""
    materialize_source(inst.environment_setup, dest, cache, inst.base_commit or None)
    return Path(dest)


def apply_patch(root: Path, patch: str, *, include: list[str] | None = None,
                exclude: list[str] | None = None) -> bool:
    """Apply a unified diff (only the files `include` names, none `exclude` names) to the working tree;
    False when it does not apply."""
    if not patch.strip():
        return True
    only = [f"--include={p}" for p in include or []] + [f"--exclude={p}" for p in exclude or []]
    proc = subprocess.run(["git", "-C", str(root), "apply", "--whitespace=nowarn", *only, "-"], input=patch, text=True,
                          capture_output=True, env={**os.environ, **GIT_ENV})
    return proc.returncode == 0
