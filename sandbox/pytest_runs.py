"""Run pytest through a Sandbox and read per-test outcomes from its report.

Shared by the `run_tests` tool and the loop's own verification, so the model and
the harness judge a run the same way. Outcomes come from pytest's short test
summary (`-r` flags, one `STATUS nodeid` line each) plus the verbose progress
lines (the only place a skipped test's node id appears).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath
from typing import Any

from sandbox.base import Sandbox
from sandbox.text import cut_middle

# -rfEsxXp: a summary line for every outcome, without -rA's "PASSES" section of captured output.
REPORT_FLAGS = ["-rfEsxXp", "-v", "--color=no", "-p", "no:cacheprovider"]
OUTPUT_KEEP = 40_000  # chars of pytest output kept on a TestRun (head and tail)
NO_TESTS_EXIT = (4, 5)  # usage error (e.g. "not found") and "no tests collected"

_STATUS = {"PASSED": "passed", "FAILED": "failed", "ERROR": "error", "SKIPPED": "skipped",
           "XFAIL": "xfailed", "XPASS": "xpassed"}
# Worst first: when two lines disagree (a pass then a teardown error), the worse one wins.
_RANK = {"error": 0, "failed": 1, "xpassed": 2, "skipped": 3, "xfailed": 4, "passed": 5}
# A node id: no spaces outside [parameter ids], which may hold spaces, "::" or " - ".
_NODE = r"(?:[^\s\[]|\[[^\]]*\])+"
_SUMMARY_LINE = re.compile(rf"^(PASSED|FAILED|ERROR|XFAIL|XPASS) ({_NODE})(?: - .*)?$")
_PROGRESS_LINE = re.compile(
    rf"^({_NODE}) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b.*\[\s*[\d/ ]+%?\]$"
)
_SUMMARY_HEADER = re.compile(r"^=+ short test summary info =+$", re.M)
GOOD = ("passed", "xfailed", "xpassed")


@dataclass
class TestRun:
    """One pytest run: per-node outcomes plus how the process ended."""

    __test__ = False  # not a pytest test class, despite the name

    outcomes: dict[str, str] = field(default_factory=dict)  # node id -> passed/failed/error/skipped/...
    exit_code: int = 0
    output: str = ""
    duration: float = 0.0
    timed_out: bool = False
    collected_none: bool = False

    def matching(self, selector: str) -> dict[str, str]:
        """Outcomes of the nodes a selector names (a dir, file, or node id prefix).

        A file that failed to collect counts as an error for every selector inside it.
        """
        sel = normalize_selector(selector)
        hits = {}
        for node, outcome in self.outcomes.items():
            if _under(node, sel) or (outcome == "error" and _under(sel, node)):
                hits[node] = outcome
        return hits

    def matches(self, selector: str) -> bool:
        """Did the run report any node for this selector (a selector naming no test is bad input)?"""
        return bool(self.matching(selector))

    def passed(self, selector: str) -> bool:
        """True when the selector matched something, nothing of it failed or errored, and one passed.

        xfailed/xpassed count as not failing (pytest's own exit status agrees); a
        selector whose every node was skipped has not passed.
        """
        hits = self.matching(selector)
        return bool(hits) and not any(o in ("failed", "error") for o in hits.values()) and any(
            o in GOOD for o in hits.values()
        )

    def failed_ids(self) -> list[str]:
        return sorted(node for node, o in self.outcomes.items() if o in ("failed", "error"))

    def counts(self) -> dict[str, int]:
        """Outcome -> number of nodes, worst outcome first."""
        tally: dict[str, int] = {}
        for outcome in self.outcomes.values():
            tally[outcome] = tally.get(outcome, 0) + 1
        return dict(sorted(tally.items(), key=lambda kv: _RANK.get(kv[0], 9)))

    summary_counts = counts

    def short_summary(self) -> str:
        """One line for progress output: `2 failed, 5 passed (exit 1)`, or why there are no outcomes."""
        if self.timed_out:
            return f"timed out after {self.duration:.0f}s"
        if self.collected_none:
            return f"no tests collected (pytest exit {self.exit_code})"
        counts = ", ".join(f"{n} {outcome}" for outcome, n in self.counts().items()) or "no outcomes parsed"
        return f"{counts} (pytest exit {self.exit_code})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TestRun:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def normalize_selector(selector: str) -> str:
    selector = selector.strip()
    while selector.startswith("./"):
        selector = selector[2:]
    return selector.rstrip("/") if "::" not in selector else selector


def _under(node: str, selector: str) -> bool:
    """Is `node` the selector itself, inside it (a directory or file), or one of its parameter cases?"""
    if selector in ("", "."):
        return True
    return node == selector or node.startswith((selector + "::", selector + "[", selector + "/"))


def selector_file(selector: str) -> str:
    """The path part of a selector (`tests/test_x.py::test_y[1]` -> `tests/test_x.py`)."""
    return normalize_selector(selector).split("::", 1)[0]


def is_test_file(relpath: str) -> bool:
    """Would pytest (default conventions) collect this file, or is it a conftest? Such files are evidence."""
    name = PurePosixPath(relpath).name
    if name == "conftest.py":
        return True
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def parse_outcomes(output: str) -> dict[str, str]:
    """Node id -> outcome, from the verbose progress lines and the short test summary."""
    outcomes: dict[str, str] = {}

    def record(node: str, status: str) -> None:
        outcome = _STATUS[status]
        old = outcomes.get(node)
        if old is None or _RANK[outcome] < _RANK[old]:
            outcomes[node] = outcome

    header = _SUMMARY_HEADER.search(output)
    progress_part = output[: header.start()] if header else output
    for line in progress_part.splitlines():
        m = _PROGRESS_LINE.match(line.rstrip())
        if m and "::" in m.group(1):
            record(m.group(1), m.group(2))
    if header:
        for line in output[header.end():].splitlines():
            if line.startswith("="):
                break
            m = _SUMMARY_LINE.match(line.rstrip())
            if m:
                record(m.group(2), m.group(1))
    return outcomes


def pytest_argv(selectors: list[str], test_command: list[str]) -> list[str]:
    return [*test_command, *REPORT_FLAGS, *(normalize_selector(s) for s in selectors)]


def run_pytest(sandbox: Sandbox, selectors: list[str], test_command: list[str], timeout: float) -> TestRun:
    """Run `test_command` on `selectors` (all tests when empty) in the sandbox and parse the outcomes."""
    result = sandbox.exec(pytest_argv(selectors, test_command), timeout)
    output = result.output
    outcomes = parse_outcomes(output)
    return TestRun(
        outcomes=outcomes,
        exit_code=result.exit_code,
        output=cut_middle(output, OUTPUT_KEEP),
        duration=round(result.duration, 3),
        timed_out=result.timed_out,
        collected_none=not result.timed_out and not outcomes and result.exit_code in NO_TESTS_EXIT,
    )
