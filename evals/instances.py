"""Eval instances in SWE-bench's format, plus how to materialise their repository.

The fields are SWE-bench's (instance_id, repo, base_commit, problem_statement,
FAIL_TO_PASS, PASS_TO_PASS, patch, test_patch, version), so sets and predictions
move between this runner and the official harness. As SWE-bench stores them,
FAIL_TO_PASS and PASS_TO_PASS are JSON-encoded lists of test ids; both encoded
and plain lists are accepted on read. `environment_setup` is our extension: where
the source comes from (a PyPI sdist or a local git mirror), the Python version,
setup commands and the test command. `issue_statement`, `reproduction_patch` and
REPRO_TESTS (JSON-encoded like FAIL_TO_PASS) are our extension for tasks that name
no test (evals/reproductions.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LIST_FIELDS = ("FAIL_TO_PASS", "PASS_TO_PASS", "REPRO_TESTS")


@dataclass
class EnvironmentSetup:
    """How to get the source and build the environment (our extension of the SWE-bench record)."""

    source: str = "sdist"            # sdist | git
    package: str = ""                # sdist: the PyPI name
    version: str = ""                # sdist: the pinned version
    mirror: str = ""                 # git: a local path or URL of a mirror holding base_commit
    bug_patch: str = ""              # applied on the pristine source (then committed) to make base_commit
    python: str = "3.11"
    setup: list[str] = field(default_factory=list)    # commands that build the environment (default: declared deps)
    test_command: str = "python -m pytest -o addopts="

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> EnvironmentSetup:
        data = data or {}
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class Instance:
    instance_id: str
    repo: str
    base_commit: str
    problem_statement: str
    FAIL_TO_PASS: list[str]
    PASS_TO_PASS: list[str]
    patch: str
    test_patch: str = ""
    version: str = ""
    environment_setup: EnvironmentSetup = field(default_factory=EnvironmentSetup)
    hints_text: str = ""
    created_at: str = ""
    # Description-only mode (issue 16): the issue as a user files it, naming no test; a diff that only adds
    # tests (fail at base_commit, pass with the gold patch); the node ids it adds. Checked by
    # evals.check_reproductions; empty for instances that have none.
    issue_statement: str = ""
    reproduction_patch: str = ""
    REPRO_TESTS: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Instance:
        values = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        for key in LIST_FIELDS:
            raw = values.get(key, [])
            values[key] = json.loads(raw) if isinstance(raw, str) else list(raw)
        values["environment_setup"] = EnvironmentSetup.from_dict(data.get("environment_setup"))
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """SWE-bench's record: the test lists JSON-encoded, as its datasets store them."""
        out = asdict(self)
        for key in LIST_FIELDS:
            out[key] = json.dumps(out[key])
        return out

    @property
    def fixed_files(self) -> list[str]:
        """Files the gold patch changes: where a fix belongs (localization)."""
        return patch_files(self.patch)

    @property
    def description(self) -> str:
        """The task as an issue states it, naming no test (the problem statement when there is none)."""
        return self.issue_statement or self.problem_statement

    def reproduction(self) -> tuple[str, list[str]]:
        """(patch, test ids) the oracle replays as its reproduction: the instance's own, else its test patch."""
        if self.reproduction_patch.strip():
            return self.reproduction_patch, list(self.REPRO_TESTS or self.FAIL_TO_PASS)
        return self.test_patch, list(self.FAIL_TO_PASS)

    @property
    def hidden_tests(self) -> bool:
        """True when the failing tests only exist once test_patch is applied (SWE-bench proper)."""
        return bool(self.test_patch.strip())


def patch_files(patch: str, deleted: bool = False) -> list[str]:
    """Head-side paths the patch changes, in order (deletions left out unless `deleted`), by the agent's
    one diff parser."""
    from agent.diffs import parse_diff

    if not patch.strip():
        return []
    files: list[str] = []
    for item in parse_diff(patch):
        if (deleted or item.status != "deleted") and item.path not in files:
            files.append(item.path)
    return files


def load_instances(path: Path | str, ids: Iterable[str] | None = None) -> list[Instance]:
    wanted = set(ids or [])
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            inst = Instance.from_dict(json.loads(line))
            if not wanted or inst.instance_id in wanted:
                out.append(inst)
    missing = wanted - {i.instance_id for i in out}
    if missing:
        raise KeyError(f"no such instance(s) in {path}: {', '.join(sorted(missing))}")
    return out


def dump_instances(instances: Iterable[Instance], path: Path | str) -> None:
    Path(path).write_text("".join(json.dumps(i.to_dict(), ensure_ascii=False) + "\n" for i in instances),
                          encoding="utf-8")


BUNDLED = Path(__file__).parent / "data" / "bugs.jsonl"
