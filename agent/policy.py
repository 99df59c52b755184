"""Reasoning policy: High by default, Max only where the work touches a critical module.

The rule is data (`[policy]` in config); this module only evaluates it and
says why, so every Max call carries its reason into the trajectory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from agent.config import PolicySettings


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Git-style glob: `**` spans directories, `*` and `?` stay within one segment."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        out.append({"*": "[^/]*", "?": "[^/]"}.get(ch, re.escape(ch)))
        i += 1
    return re.compile("".join(out) + r"(?:/.*)?$")


def _without_dot_slash(path: str) -> str:
    while path.startswith("./"):
        path = path[2:]
    return path


def matches(path: str, pattern: str) -> bool:
    return bool(_glob_regex(pattern.strip("/")).match(_without_dot_slash(path)))


@dataclass
class Decision:
    mode: str
    reason: str


@dataclass
class Policy:
    settings: PolicySettings
    forced_mode: str | None = None
    default_mode: str = "high"
    failures: dict[str, int] = field(default_factory=dict)

    def record_test_run(self, target_key: str, passed: bool) -> None:
        self.failures[target_key] = 0 if passed else self.failures.get(target_key, 0) + 1

    def decide(self, working_set: Iterable[str]) -> Decision:
        if self.forced_mode:
            return Decision(self.forced_mode, f"forced by --mode {self.forced_mode}")
        for path in sorted(set(working_set)):
            for pattern in self.settings.critical:
                if matches(path, pattern):
                    return Decision("max", f"working set has critical file {path} (matches {pattern!r})")
        limit = self.settings.max_after_failures
        if limit:
            for key, count in sorted(self.failures.items()):
                if count >= limit:
                    return Decision("max", f"{count} failed test runs on {key} (max_after_failures={limit})")
        return Decision(self.default_mode, "default")
