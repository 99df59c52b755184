"""A PEP 440 version from `git describe`, so the build never needs the repository's `.git`.

setuptools-scm, hatch-vcs, versioneer, dunamai and pbr derive a version from VCS metadata that
the build copy does not have; the host reads `git describe` (through agent.gitops, the one way
git is run) and the build passes this version on as each tool's "pretend version" variable.
"""

from __future__ import annotations

import re


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
