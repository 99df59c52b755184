"""The version and date of a commit, read on the host so the build never needs the repository's `.git`.

setuptools-scm, hatch-vcs, versioneer, dunamai and pbr derive a version from VCS metadata that
the build copy does not have; the caller reads it here (plain `git`, no config-driven commands)
and the build passes it on as each tool's "pretend version" variable.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

# git with nothing from the repository's or the user's config that could run a command.
_SAFE = ["-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "-c", "protocol.allow=never",
         "--no-pager"]


def _git(repo: Path, *args: str) -> str | None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "HOME": "/nonexistent"}
    try:
        done = subprocess.run(["git", *_SAFE, "-C", str(repo), *args], capture_output=True, text=True,
                              timeout=20, env=env)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def pep440_from_describe(described: str) -> str:
    """`v1.2.3-5-gabc123` -> `1.2.4.dev5+gabc123` (setuptools-scm's guess-next-dev); `-0-` is the tag."""
    match = re.match(r"^(?:.*?[-_/])?v?(\d+(?:\.\d+)*)((?:[._-]?(?:a|b|rc|post|dev)\d*)*)-(\d+)-g([0-9a-f]+)$",
                     described)
    if not match:
        sha = described if re.fullmatch(r"[0-9a-f]{4,40}", described) else ""
        return f"0.0.0+g{sha}" if sha else "0.0.0"
    release, suffix, distance, sha = match.groups()
    suffix = suffix.replace("-", "").replace("_", "")
    if distance == "0":
        return release + suffix
    parts = release.split(".")
    parts[-1] = str(int(parts[-1]) + 1)
    return f"{'.'.join(parts)}.dev{distance}+g{sha}"


def describe_version(repo: Path, rev: str = "HEAD") -> str | None:
    """A PEP 440 version for `rev` from the nearest tag (None when git cannot say)."""
    described = _git(repo, "describe", "--tags", "--long", "--always", "--match", "*[0-9]*", rev)
    return pep440_from_describe(described) if described else None


def commit_date(repo: Path, rev: str = "HEAD") -> str | None:
    """The committer date of `rev` in ISO 8601 (the resolver's exclude-newer cut-off)."""
    return _git(repo, "show", "-s", "--format=%cI", rev)
