"""The task: what the user asked for, as target tests and/or free text."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# A pytest node id or file: path ending in .py, optionally ::name[::name][param].
_SELECTOR = re.compile(r"^[\w./-]+\.py(::[\w\[\]\-.,=: ]+)?$")


def is_selector(text: str) -> bool:
    return bool(_SELECTOR.match(text.strip()))


def slugify(text: str, limit: int = 40) -> str:
    """A branch-safe slug: lowercase words joined by dashes."""
    words = re.findall(r"[A-Za-z0-9]+", text.lower())
    slug = "-".join(words)[:limit].strip("-")
    return slug or "task"


@dataclass
class Task:
    text: str
    targets: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str, tests: list[str] | None = None) -> Task:
        text = text.strip()
        targets: list[str] = []
        if is_selector(text):
            targets.append(text)
        for selector in tests or []:
            selector = selector.strip()
            if selector and selector not in targets:
                targets.append(selector)
        return cls(text=text, targets=targets)

    @property
    def slug(self) -> str:
        if self.targets and self.text in self.targets:
            tail = self.text.split("::")[-1] if "::" in self.text else self.text.rsplit("/", 1)[-1]
            return slugify(tail.removesuffix(".py"))
        return slugify(self.text)

    @property
    def target_files(self) -> list[str]:
        files: list[str] = []
        for target in self.targets:
            path = target.split("::", 1)[0]
            if path not in files:
                files.append(path)
        return files
